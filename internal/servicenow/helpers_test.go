package servicenow_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// The emulator is only started by the tests that read secrets.
func TestMain(m *testing.M) { awstest.Main(m) }

// Test credentials; no error or log line may show them.
const (
	testUser         = "integration.user"
	testPassword     = "pw-Zq81!sensitive"
	testClientID     = "client-4711"
	testClientSecret = "cs-Hq77#sensitive"
)

// reply is one canned answer of a fake instance.
type reply struct {
	status int
	header map[string]string
	body   string
	// hold keeps the answer back until the request's context ends.
	hold bool
}

// seen is a request as the fake instance received it.
type seen struct {
	Method string
	Path   string
	Query  string
	Body   string
	Auth   string
}

// fakeInstance answers requests with replies in order, repeating the last,
// and keeps what it received.
type fakeInstance struct {
	*httptest.Server
	mu      sync.Mutex
	replies []reply
	got     []seen
}

func newFake(t *testing.T, replies ...reply) *fakeInstance {
	t.Helper()
	f := &fakeInstance{replies: replies}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeInstance) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.got = append(f.got, seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body), Auth: r.Header.Get("Authorization")})
	rep := f.replies[min(len(f.got), len(f.replies))-1]
	f.mu.Unlock()
	if rep.hold {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if rep.body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeInstance) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.got...)
}

// waits records the waits a client chose between attempts, returning at
// once.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func newClient(t *testing.T, url string, auth servicenow.Auth, opts ...servicenow.Option) *servicenow.Client {
	t.Helper()
	c, err := servicenow.New(url, auth, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", url, err)
	}
	return c
}

const (
	sysID1 = "0123456789abcdef0123456789abcdef"
	sysID2 = "fedcba9876543210fedcba9876543210"
)

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func errorBody(message, detail string) string {
	return `{"error":{"message":"` + message + `","detail":"` + detail + `"},"status":"failure"}`
}
