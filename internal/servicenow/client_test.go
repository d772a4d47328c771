package servicenow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// now is the fixed clock of the tests that compute waits from dates.
var now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const okIncident = `{"result":{"sys_id":"` + sysID1 + `","number":"INC0010001","sys_mod_count":"3"}}`

func TestGet(t *testing.T) {
	const (
		base = 100 * time.Millisecond
		maxB = 8 * time.Second
	)
	want := servicenow.Record{"sys_id": sysID1, "number": "INC0010001", "sys_mod_count": "3"}
	tests := []struct {
		name    string
		replies []reply
		want    servicenow.Record
		// wantErr is matched with errors.Is; wantStatus with the *Error.
		wantErr       error
		wantStatus    int
		wantMessage   string
		wantDetail    string
		wantRetryable bool
		wantRequests  int
		// wantWaits are exact waits; a negative entry is a backoff wait,
		// checked to lie within [base/2·2ⁿ, base·2ⁿ].
		wantWaits []time.Duration
	}{
		{
			name:         "ok",
			replies:      []reply{{status: 200, body: okIncident}},
			want:         want,
			wantRequests: 1,
		},
		{
			name:          "404 is ErrNotFound with ServiceNow's message",
			replies:       []reply{{status: 404, body: errorBody("No Record found", "Record doesn't exist or ACL restricts the record retrieval")}},
			wantErr:       servicenow.ErrNotFound,
			wantStatus:    404,
			wantMessage:   "No Record found",
			wantDetail:    "Record doesn't exist or ACL restricts the record retrieval",
			wantRequests:  1,
			wantRetryable: false,
		},
		{
			name:         "403 is not retried",
			replies:      []reply{{status: 403, body: errorBody("Operation Failed", "ACL Exception Update Failed due to security constraints")}, {status: 200, body: okIncident}},
			wantStatus:   403,
			wantMessage:  "Operation Failed",
			wantDetail:   "ACL Exception Update Failed due to security constraints",
			wantRequests: 1,
		},
		{
			name:         "401 with basic auth is not retried",
			replies:      []reply{{status: 401, body: errorBody("User Not Authenticated", "Required to provide Auth information")}, {status: 200, body: okIncident}},
			wantStatus:   401,
			wantMessage:  "User Not Authenticated",
			wantDetail:   "Required to provide Auth information",
			wantRequests: 1,
		},
		{
			name:         "500 retried then succeeding",
			replies:      []reply{{status: 500, body: errorBody("boom", "")}, {status: 502}, {status: 200, body: okIncident}},
			want:         want,
			wantRequests: 3,
			wantWaits:    []time.Duration{-1, -1},
		},
		{
			name:          "5xx until attempts run out",
			replies:       []reply{{status: 504, body: "<html>gateway timeout</html>"}},
			wantStatus:    504,
			wantMessage:   "Gateway Timeout",
			wantRetryable: true,
			wantRequests:  servicenow.DefaultMaxAttempts,
			wantWaits:     []time.Duration{-1, -1, -1},
		},
		{
			name:         "429 Retry-After in seconds",
			replies:      []reply{{status: 429, header: map[string]string{"Retry-After": "3"}}, {status: 200, body: okIncident}},
			want:         want,
			wantRequests: 2,
			wantWaits:    []time.Duration{3 * time.Second},
		},
		{
			name:         "503 Retry-After as an HTTP date",
			replies:      []reply{{status: 503, header: map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}}, {status: 200, body: okIncident}},
			want:         want,
			wantRequests: 2,
			wantWaits:    []time.Duration{7 * time.Second},
		},
		{
			name:         "429 X-RateLimit-Reset in epoch seconds",
			replies:      []reply{{status: 429, header: map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Add(5*time.Second).Unix(), 10)}}, {status: 200, body: okIncident}},
			want:         want,
			wantRequests: 2,
			wantWaits:    []time.Duration{5 * time.Second},
		},
		{
			name:         "429 without a hint backs off",
			replies:      []reply{{status: 429}, {status: 200, body: okIncident}},
			want:         want,
			wantRequests: 2,
			wantWaits:    []time.Duration{-1},
		},
		{
			name:          "Retry-After longer than the backoff cap is handed back",
			replies:       []reply{{status: 429, header: map[string]string{"Retry-After": "3600"}, body: errorBody("Rate limit exceeded", "")}, {status: 200, body: okIncident}},
			wantStatus:    429,
			wantMessage:   "Rate limit exceeded",
			wantRetryable: true,
			wantRequests:  1,
		},
		{
			name:         "malformed JSON",
			replies:      []reply{{status: 200, body: `{"result":{"sys_id":`}},
			wantErr:      servicenow.ErrBadResponse,
			wantRequests: 1,
		},
		{
			// Was ErrBadResponse, final: now a retryable ErrNotAPI, the
			// answer of a hibernating instance (TestAnswerIsNotAPage).
			name:          "HTML instead of JSON",
			replies:       []reply{{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html>Your instance is hibernating</html>"}},
			wantErr:       servicenow.ErrNotAPI,
			wantRetryable: true,
			wantRequests:  1,
		},
		{
			name:         "202 with no body",
			replies:      []reply{{status: 202}},
			wantErr:      servicenow.ErrBadResponse,
			wantRequests: 1,
		},
		{
			name:         "no result object",
			replies:      []reply{{status: 200, body: `{"status":"success"}`}},
			wantErr:      servicenow.ErrBadResponse,
			wantRequests: 1,
		},
		{
			name:         "reference links are reduced to their value",
			replies:      []reply{{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","number":"INC0010001","sys_mod_count":3,"assignment_group":{"link":"https://x/api/now/table/sys_user_group/g1","value":"g1"}}}`}},
			want:         servicenow.Record{"sys_id": sysID1, "number": "INC0010001", "sys_mod_count": "3", "assignment_group": "g1"},
			wantRequests: 1,
		},
		{
			name:         "a redirect to a login page is not followed",
			replies:      []reply{{status: 302, header: map[string]string{"Location": "/login.do"}}},
			wantStatus:   302,
			wantRequests: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tc.replies...)
			w := &waits{}
			c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword),
				servicenow.WithBackoff(base, maxB), servicenow.WithClock(func() time.Time { return now }),
				servicenow.WithSleep(w.sleep))

			got, err := c.Get(context.Background(), "incident", sysID1, "sys_id", "number", "sys_mod_count")

			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Get() record mismatch (-want +got):\n%s", diff)
			}
			wantFail := tc.wantErr != nil || tc.wantStatus != 0
			if (err != nil) != wantFail {
				t.Fatalf("Get() error = %v, want failure %v", err, wantFail)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Get() error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantStatus != 0 {
				var se *servicenow.Error
				if !errors.As(err, &se) {
					t.Fatalf("Get() error = %v, want a *servicenow.Error", err)
				}
				if se.Status != tc.wantStatus || (tc.wantMessage != "" && se.Message != tc.wantMessage) || se.Detail != tc.wantDetail {
					t.Errorf("Get() error = %+v, want status %d, message %q, detail %q", se, tc.wantStatus, tc.wantMessage, tc.wantDetail)
				}
			}
			if err != nil {
				if got := servicenow.IsRetryable(err); got != tc.wantRetryable {
					t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
				}
			}
			if got := len(f.requests()); got != tc.wantRequests {
				t.Errorf("instance received %d requests, want %d", got, tc.wantRequests)
			}
			gotWaits := w.all()
			if len(gotWaits) != len(tc.wantWaits) {
				t.Fatalf("waits = %v, want %v", gotWaits, tc.wantWaits)
			}
			for i, want := range tc.wantWaits {
				if want >= 0 {
					if gotWaits[i] != want {
						t.Errorf("wait %d = %v, want %v", i, gotWaits[i], want)
					}
					continue
				}
				hi := min(maxB, base<<i)
				if gotWaits[i] < hi/2 || gotWaits[i] > hi {
					t.Errorf("backoff wait %d = %v, want within [%v, %v]", i, gotWaits[i], hi/2, hi)
				}
			}
		})
	}
}

func TestGetRequest(t *testing.T) {
	f := newFake(t, reply{status: 200, body: okIncident})
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithUserAgent("snowgate-test"))
	if _, err := c.Get(context.Background(), "incident", sysID1, servicenow.IncidentFields...); err != nil {
		t.Fatalf("Get: %v", err)
	}
	got := f.requests()[0]
	q, _ := url.ParseQuery(got.Query)
	want := seen{
		Method: "GET",
		Path:   "/api/now/table/incident/" + sysID1,
		Query:  got.Query,
		Auth:   "Basic " + basic(testUser, testPassword),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
	wantQ := url.Values{
		"sysparm_display_value":          {"false"},
		"sysparm_exclude_reference_link": {"true"},
		"sysparm_fields":                 {strings.Join(servicenow.IncidentFields, ",")},
	}
	if diff := cmp.Diff(wantQ, q); diff != "" {
		t.Errorf("query parameters mismatch (-want +got):\n%s", diff)
	}
}

func TestGetRejectsBadIdentifiers(t *testing.T) {
	f := newFake(t, reply{status: 200, body: okIncident})
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword))
	tests := []struct{ name, table, sysID string }{
		{"path in sys_id", "incident", "../../sys_user/" + sysID1},
		{"short sys_id", "incident", "abc"},
		{"path in table", "incident/x", sysID1},
		{"empty table", "", sysID1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Get(context.Background(), tc.table, tc.sysID); err == nil {
				t.Errorf("Get(%q, %q) = nil error, want one", tc.table, tc.sysID)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("instance received %d requests, want none", n)
	}
}

func TestDeadline(t *testing.T) {
	t.Run("a wait past the deadline returns the retryable error at once", func(t *testing.T) {
		f := newFake(t, reply{status: 429, header: map[string]string{"Retry-After": "5"}}, reply{status: 200, body: okIncident})
		w := &waits{}
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()

		_, err := c.Get(ctx, "incident", sysID1)

		var se *servicenow.Error
		if !errors.As(err, &se) || se.Status != 429 || se.RetryAfter != 5*time.Second {
			t.Fatalf("Get() error = %v, want 429 with RetryAfter 5s", err)
		}
		if !servicenow.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = false, want true", err)
		}
		if got := w.all(); len(got) != 0 {
			t.Errorf("waits = %v, want none", got)
		}
		if ctx.Err() != nil {
			t.Errorf("Get() returned after the deadline")
		}
	})
	t.Run("a slow server ends at the caller's deadline", func(t *testing.T) {
		f := newFake(t, reply{hold: true})
		w := &waits{}
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()

		_, err := c.Get(ctx, "incident", sysID1)

		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get() error = %v, want context.DeadlineExceeded", err)
		}
		if !servicenow.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = false, want true: the next attempt gets a new budget", err)
		}
		if got := len(f.requests()); got != 1 {
			t.Errorf("instance received %d requests, want 1", got)
		}
	})
	t.Run("a canceled call is final", func(t *testing.T) {
		f := newFake(t, reply{hold: true})
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)

		_, err := c.Get(ctx, "incident", sysID1)

		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Get() error = %v, want context.Canceled", err)
		}
		if servicenow.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true, want false", err)
		}
	})
}

func TestConnectionFailure(t *testing.T) {
	f := newFake(t, reply{status: 200})
	addr := f.URL
	f.Close()
	w := &waits{}
	c := newClient(t, addr, servicenow.BasicAuth(testUser, testPassword), servicenow.WithMaxAttempts(3), servicenow.WithSleep(w.sleep))

	_, err := c.Get(context.Background(), "incident", sysID1)

	if err == nil || !servicenow.IsRetryable(err) {
		t.Fatalf("Get() error = %v, want a retryable error", err)
	}
	if got := len(w.all()); got != 2 {
		t.Errorf("waited %d times, want 2 (3 attempts)", got)
	}
}

func TestWrites(t *testing.T) {
	ctx := context.Background()
	// A write counts as done only when the answer is the record (Table API
	// reference: PATCH answers 200 with the updated record).
	t.Run("update answered 202 without a body is not confirmed", func(t *testing.T) {
		f := newFake(t, reply{status: 202})
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword))
		got, err := c.Update(ctx, "incident", sysID1, map[string]string{"state": "2"})
		if !errors.Is(err, servicenow.ErrBadResponse) || got != nil {
			t.Fatalf("Update() = %v, %v; want nil, ErrBadResponse", got, err)
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%d PATCH requests, want 1", n)
		}
	})
	t.Run("update returns the record", func(t *testing.T) {
		f := newFake(t, reply{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","state":"2"}}`})
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword))
		got, err := c.Update(ctx, "incident", sysID1, map[string]string{"state": "2"})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if diff := cmp.Diff(servicenow.Record{"sys_id": sysID1, "state": "2"}, got); diff != "" {
			t.Errorf("Update() mismatch (-want +got):\n%s", diff)
		}
		if got := f.requests()[0].Body; got != `{"state":"2"}` {
			t.Errorf("request body = %s", got)
		}
	})
	t.Run("insert returns the stored record", func(t *testing.T) {
		f := newFake(t, reply{status: 201, body: `{"result":{"sys_id":"` + sysID2 + `","number":"INC0010002"}}`})
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword))
		got, err := c.Insert(ctx, "incident", map[string]string{"short_description": "disk full"})
		if err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if got.SysID() != sysID2 {
			t.Errorf("Insert().SysID() = %q, want %q", got.SysID(), sysID2)
		}
		r := f.requests()[0]
		if r.Method != "POST" || r.Path != "/api/now/table/incident" || r.Body != `{"short_description":"disk full"}` {
			t.Errorf("request = %+v", r)
		}
	})
	t.Run("insert is not retried after a 500", func(t *testing.T) {
		f := newFake(t, reply{status: 500}, reply{status: 201, body: `{"result":{"sys_id":"` + sysID2 + `"}}`})
		w := &waits{}
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
		if _, err := c.Insert(ctx, "incident", map[string]string{"short_description": "x"}); err == nil {
			t.Fatal("Insert() = nil error, want the 500")
		}
		if got := len(f.requests()); got != 1 {
			t.Errorf("instance received %d requests, want 1: a retry could create the record twice", got)
		}
	})
	t.Run("insert is retried after a 429", func(t *testing.T) {
		f := newFake(t, reply{status: 429, header: map[string]string{"Retry-After": "1"}}, reply{status: 201, body: `{"result":{"sys_id":"` + sysID2 + `"}}`})
		w := &waits{}
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
		if _, err := c.Insert(ctx, "incident", map[string]string{"short_description": "x"}); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if diff := cmp.Diff([]time.Duration{time.Second}, w.all()); diff != "" {
			t.Errorf("waits mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestNew(t *testing.T) {
	auth := servicenow.BasicAuth(testUser, testPassword)
	tests := []struct {
		name, url string
		opts      []servicenow.Option
		wantErr   bool
		wantURL   string
	}{
		{name: "https instance", url: "https://example.service-now.com/", wantURL: "https://example.service-now.com"},
		{name: "http on loopback", url: "http://127.0.0.1:8080", wantURL: "http://127.0.0.1:8080"},
		{name: "http on localhost", url: "http://localhost:8080", wantURL: "http://localhost:8080"},
		{name: "http elsewhere refused", url: "http://example.com", wantErr: true},
		{name: "http elsewhere allowed explicitly", url: "http://example.com", opts: []servicenow.Option{servicenow.WithInsecureHTTP()}, wantURL: "http://example.com"},
		{name: "credentials in the URL", url: "https://user:" + testPassword + "@example.service-now.com", wantErr: true},
		{name: "no scheme", url: "example.service-now.com", wantErr: true},
		{name: "ftp", url: "ftp://example.com", wantErr: true},
		{name: "query", url: "https://example.com/?a=b", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := servicenow.New(tc.url, auth, tc.opts...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New(%q) error = %v, want error %v", tc.url, err, tc.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), testPassword) {
					t.Errorf("New() error %q shows the password", err)
				}
				return
			}
			if got := c.InstanceURL(); got != tc.wantURL {
				t.Errorf("InstanceURL() = %q, want %q", got, tc.wantURL)
			}
		})
	}
}

// TestCookiesIgnored checks that a session cookie set by the instance is
// not sent back: ServiceNow serialises the requests of one session.
func TestCookiesIgnored(t *testing.T) {
	var (
		mu      sync.Mutex
		cookies []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cookies = append(cookies, r.Header.Get("Cookie"))
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "abc", Path: "/"})
		fmt.Fprint(w, okIncident)
	}))
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	jarClient := &http.Client{Jar: jar}
	c := newClient(t, srv.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithHTTPClient(jarClient))
	for range 2 {
		if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"", ""}, cookies); diff != "" {
		t.Errorf("Cookie headers mismatch (-want +got):\n%s", diff)
	}
}
