package snowsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// Sys_ids of the groups in testdata/records.json. Records refer to a group
// by sys_id, as writes to a real instance must unless they ask for display
// values to be resolved.
const (
	groupNetwork  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"
	groupDatabase = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"
)

// start serves a new Sim seeded with testdata/records.json.
func start(t *testing.T, opts ...snowsim.Option) (*snowsim.Sim, *httptest.Server) {
	t.Helper()
	sim := snowsim.New(opts...)
	f, err := os.Open("testdata/records.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sim.Seed(f); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// response is a decoded Table API answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
}

// call sends a request with an optional JSON body and basic auth "admin".
func call(t *testing.T, method, url string, body any, auth ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch len(auth) {
	case 1:
		req.Header.Set("Authorization", "Bearer "+auth[0])
	case 2:
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, url, raw, err)
		}
	}
	return r
}

// result returns the single record of a GET/POST/PATCH answer.
func (r response) result(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.Body["result"].(map[string]any)
	if !ok {
		t.Fatalf("result is %T, want an object (status %d, body %v)", r.Body["result"], r.Status, r.Body)
	}
	return m
}

// column returns field of every record of a query answer.
func (r response) column(t *testing.T, field string) []string {
	t.Helper()
	rows, ok := r.Body["result"].([]any)
	if !ok {
		t.Fatalf("result is %T, want a list (status %d, body %v)", r.Body["result"], r.Status, r.Body)
	}
	out := []string{}
	for _, row := range rows {
		v, _ := row.(map[string]any)[field].(string)
		out = append(out, v)
	}
	return out
}

// nextLink returns the rel="next" URL of a Link header.
func nextLink(h http.Header) string {
	for _, part := range strings.Split(h.Get("Link"), ",<") {
		if strings.HasSuffix(part, `rel="next"`) {
			u := strings.TrimPrefix(part, "<")
			return u[:strings.Index(u, ">")]
		}
	}
	return ""
}

// clock is a settable clock for the Sim.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
