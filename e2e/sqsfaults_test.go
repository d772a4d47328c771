package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/emulatorfix"
)

// sqsFaults stands between a function and the emulator and refuses the
// sends to one queue it is told to, as SQS does when the function's role
// lost its permission or the queue's key is disabled: SendMessage and
// SendMessageBatch answer AccessDenied, which the SDK does not retry.
// Everything else (and every other queue) goes through untouched.
type sqsFaults struct {
	mu sync.Mutex
	// queue is the URL of the queue whose sends may be refused.
	queue string
	// denied refuses every send to queue.
	denied bool
	// held are the next sends to queue to hold for hold and then refuse,
	// as a send that hangs and times out does.
	held int
	hold time.Duration
	// sent and refused count the sends to queue.
	sent, refused int
}

// serve starts the proxy in front of the emulator at emulatorURL and
// returns its URL, for localOptions.processorEndpoint.
func (f *sqsFaults) serve(t *testing.T, emulatorURL string) string {
	t.Helper()
	target, err := url.Parse(emulatorURL)
	if err != nil {
		t.Fatalf("parse emulator URL %q: %v", emulatorURL, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	proxy := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			emulatorfix.ForwardBody(r.Out)
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
		if action == "SendMessage" || action == "SendMessageBatch" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			var in struct {
				QueueURL string `json:"QueueUrl"`
			}
			_ = json.Unmarshal(body, &in)
			if wait, refuse := f.decide(in.QueueURL); refuse {
				if wait > 0 {
					select {
					case <-time.After(wait):
					case <-r.Context().Done():
						return
					}
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.Header().Set("X-Amzn-Query-Error", "AccessDenied;Sender")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#AccessDenied","message":"Access to the resource %s is denied."}`, in.QueueURL)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// decide counts a send to queueURL and says whether to refuse it, and
// after how long.
func (f *sqsFaults) decide(queueURL string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if queueURL != f.queue || f.queue == "" {
		return 0, false
	}
	f.sent++
	switch {
	case f.denied:
		f.refused++
		return 0, true
	case f.held > 0:
		f.held--
		f.refused++
		return f.hold, true
	}
	return 0, false
}

// deny refuses every send to queueURL (on) or none (off).
func (f *sqsFaults) deny(queueURL string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue, f.denied = queueURL, on
}

// holdThenRefuse holds the next n sends to queueURL for d each, then
// refuses them.
func (f *sqsFaults) holdThenRefuse(queueURL string, n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue, f.held, f.hold = queueURL, n, d
}

// counts returns the sends to the queue seen and those refused.
func (f *sqsFaults) counts() (sent, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent, f.refused
}
