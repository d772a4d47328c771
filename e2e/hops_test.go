package e2e_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// hopTransport keeps as many idle loopback connections as a hop has
// requests in flight, as localrun's hops do.
func hopTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 256
	tr.IdleConnTimeout = time.Minute
	return tr
}

// awsCall names one kind of AWS request: the operation (X-Amz-Target, as
// "DynamoDB_20120810.GetItem" or "AmazonSQS.SendMessage") and the table it
// names, if any.
type awsCall struct {
	Target string
	Table  string
}

// awsHop is a loopback hop in front of the emulator that counts the AWS
// requests a function makes, by operation and table.
type awsHop struct {
	url string

	mu    sync.Mutex
	calls map[awsCall]int
}

// newAWSHop forwards to the emulator at emulatorURL; it stops with the
// test.
func newAWSHop(t *testing.T, emulatorURL string) *awsHop {
	t.Helper()
	target, err := url.Parse(emulatorURL)
	if err != nil {
		t.Fatalf("parse emulator URL %q: %v", emulatorURL, err)
	}
	h := &awsHop{calls: map[awsCall]int{}}
	proxy := &httputil.ReverseProxy{
		Transport: hopTransport(),
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // what the request was signed for
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if target := r.Header.Get("X-Amz-Target"); target != "" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var named struct{ TableName string }
			_ = json.Unmarshal(body, &named) // not every operation names a table
			h.mu.Lock()
			h.calls[awsCall{target, named.TableName}]++
			h.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// snapshot returns the counts so far.
func (h *awsHop) snapshot() map[awsCall]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.calls)
}

// countCalls adds up the calls of a snapshot whose operation ends in op (after
// the dot) and, when table is not empty, that name table.
func countCalls(calls map[awsCall]int, op, table string) int {
	n := 0
	for c, v := range calls {
		if strings.HasSuffix(c.Target, "."+op) && (table == "" || c.Table == table) {
			n += v
		}
	}
	return n
}

// callsSince subtracts an earlier snapshot from a later one.
func callsSince(later, earlier map[awsCall]int) map[awsCall]int {
	out := map[awsCall]int{}
	for c, v := range later {
		if d := v - earlier[c]; d != 0 {
			out[c] = d
		}
	}
	return out
}

// tapped is one request that went through a tap, and its answer.
type tapped struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
	status int // 0: no answer (the API could not be reached)
}

// tap is a loopback hop in front of the HTTP API that records every
// request through it, headers and body, with the status it got: given as
// the API's URL to the CLI, it is where a webhook's Business Rule posts.
type tap struct {
	url string

	mu   sync.Mutex
	reqs []tapped
}

func newTap(t *testing.T, apiURL string) *tap {
	t.Helper()
	target, err := url.Parse(apiURL)
	if err != nil {
		t.Fatalf("parse API URL %q: %v", apiURL, err)
	}
	tp := &tap{}
	proxy := &httputil.ReverseProxy{
		Transport: hopTransport(),
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &codeWriter{ResponseWriter: w}
		at := time.Now()
		proxy.ServeHTTP(rec, r)
		tp.mu.Lock()
		tp.reqs = append(tp.reqs, tapped{at: at, path: r.URL.Path, header: r.Header.Clone(), body: body, status: rec.code})
		tp.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	tp.url = srv.URL
	return tp
}

// requests returns the requests recorded so far whose URL path ends in
// suffix.
func (tp *tap) requests(suffix string) []tapped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []tapped
	for _, r := range tp.reqs {
		if strings.HasSuffix(r.path, suffix) {
			out = append(out, r)
		}
	}
	return out
}
