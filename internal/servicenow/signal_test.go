package servicenow_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// ignoreErr leaves Signal.Err (tests check it with errors.Is) and the raw
// Header (the cases spell what was read of it) out of a comparison.
var ignoreErr = cmpopts.IgnoreFields(servicenow.Signal{}, "Err", "Header")

// signals records the Signals a client hands its observer.
type signals struct {
	mu sync.Mutex
	s  []servicenow.Signal
}

func (r *signals) observe(s servicenow.Signal) {
	r.mu.Lock()
	r.s = append(r.s, s)
	r.mu.Unlock()
}

func (r *signals) all() []servicenow.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]servicenow.Signal(nil), r.s...)
}

// TestSignalHeaders reads one answer each, so that every way an instance
// or a proxy in front of it may word its limits is covered: what the
// Signal says, and the *Error of a failure.
func TestSignalHeaders(t *testing.T) {
	reset := now.Add(20 * time.Minute).Truncate(time.Second)
	epoch := strconv.FormatInt(reset.Unix(), 10)
	const rule = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
	ruleHeaders := map[string]string{"X-RateLimit-Limit": "500", "X-RateLimit-Reset": epoch, "X-RateLimit-Rule": rule}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	unknown := servicenow.RateLimit{Remaining: -1}
	tests := []struct {
		name  string
		reply reply
		want  servicenow.Signal
		// wantIs are the errors errors.Is must match; wantNot those it
		// must not.
		wantIs, wantNot []error
		// wantText is part of the error's message.
		wantText string
	}{
		{
			name:    "200 without a rule",
			reply:   reply{status: 200, body: okIncident},
			want:    servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeServed, RateLimit: unknown},
			wantNot: []error{servicenow.ErrThrottled},
		},
		{
			name:  "200 counted by a rule: no Remaining on ServiceNow's answers",
			reply: reply{status: 200, body: okIncident, header: ruleHeaders},
			want: servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeServed,
				RateLimit: servicenow.RateLimit{Limit: 500, Remaining: -1, Reset: reset, Rule: rule}},
		},
		{
			name:  "200 that used the window's last request",
			reply: reply{status: 200, body: okIncident, header: with(ruleHeaders, "X-RateLimit-Remaining", "0")},
			want: servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeServed,
				RateLimit:  servicenow.RateLimit{Limit: 500, Remaining: 0, Reset: reset, Rule: rule},
				RetryAfter: 20 * time.Minute},
		},
		{
			name:  "200 with requests left",
			reply: reply{status: 200, body: okIncident, header: with(ruleHeaders, "X-RateLimit-Remaining", "42")},
			want: servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeServed,
				RateLimit: servicenow.RateLimit{Limit: 500, Remaining: 42, Reset: reset, Rule: rule}},
		},
		{
			name:  "429 of a rule: Retry-After rules, nothing remains",
			reply: reply{status: 429, body: errorBody("Rate limit exceeded", ""), header: with(ruleHeaders, "Retry-After", "1200")},
			want: servicenow.Signal{Status: 429, Outcome: servicenow.OutcomeRateLimited,
				RateLimit:  servicenow.RateLimit{Limit: 500, Remaining: 0, Reset: reset, Rule: rule},
				RetryAfter: 20 * time.Minute},
			wantIs:   []error{servicenow.ErrThrottled, servicenow.ErrRateLimited},
			wantNot:  []error{servicenow.ErrQueueFull},
			wantText: "[rate limit rule " + rule + ", 500 requests per window], retry after 20m0s",
		},
		{
			name:  "429 with X-RateLimit-Reset alone waits for the reset",
			reply: reply{status: 429, header: map[string]string{"X-RateLimit-Reset": epoch}},
			want: servicenow.Signal{Status: 429, Outcome: servicenow.OutcomeRateLimited,
				RateLimit: servicenow.RateLimit{Remaining: 0, Reset: reset}, RetryAfter: 20 * time.Minute},
			wantIs: []error{servicenow.ErrThrottled, servicenow.ErrRateLimited},
		},
		{
			name:  "429 with Retry-After alone is a rule's",
			reply: reply{status: 429, header: map[string]string{"Retry-After": "30"}},
			want: servicenow.Signal{Status: 429, Outcome: servicenow.OutcomeRateLimited,
				RateLimit: unknown, RetryAfter: 30 * time.Second},
			wantIs: []error{servicenow.ErrThrottled, servicenow.ErrRateLimited},
		},
		{
			name:     "429 with neither is a full queue",
			reply:    reply{status: 429, body: errorBody("Too Many Requests", "")},
			want:     servicenow.Signal{Status: 429, Outcome: servicenow.OutcomeQueueFull, RateLimit: unknown},
			wantIs:   []error{servicenow.ErrThrottled, servicenow.ErrQueueFull},
			wantNot:  []error{servicenow.ErrRateLimited},
			wantText: "[API queue full]",
		},
		{
			name:  "503 Retry-After is honoured",
			reply: reply{status: 503, header: map[string]string{"Retry-After": "7"}},
			want: servicenow.Signal{Status: 503, Outcome: servicenow.OutcomeFailed,
				RateLimit: unknown, RetryAfter: 7 * time.Second},
			wantNot: []error{servicenow.ErrThrottled},
		},
		{
			name:  "503 does not wait for a reset while requests may remain",
			reply: reply{status: 503, header: ruleHeaders},
			want: servicenow.Signal{Status: 503, Outcome: servicenow.OutcomeFailed,
				RateLimit: servicenow.RateLimit{Limit: 500, Remaining: -1, Reset: reset, Rule: rule}},
		},
		{
			name:  "500 is a failure",
			reply: reply{status: 500, body: errorBody("Transaction cancelled", "")},
			want:  servicenow.Signal{Status: 500, Outcome: servicenow.OutcomeFailed, RateLimit: unknown},
		},
		{
			name:  "a hibernating instance's page is a failure",
			reply: reply{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html>hibernating</html>"},
			want:  servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeFailed, RateLimit: unknown},
		},
		{
			name:  "401 is denied",
			reply: reply{status: 401, body: errorBody("User Not Authenticated", "")},
			want:  servicenow.Signal{Status: 401, Outcome: servicenow.OutcomeDenied, RateLimit: unknown},
		},
		{
			name:   "403 is denied",
			reply:  reply{status: 403, body: errorBody("Insufficient rights to query records", "")},
			want:   servicenow.Signal{Status: 403, Outcome: servicenow.OutcomeDenied, RateLimit: unknown},
			wantIs: []error{servicenow.ErrForbidden},
		},
		{
			name:    "404 was served",
			reply:   reply{status: 404, body: errorBody("No Record found", ""), header: ruleHeaders},
			want:    servicenow.Signal{Status: 404, Outcome: servicenow.OutcomeServed, RateLimit: servicenow.RateLimit{Limit: 500, Remaining: -1, Reset: reset, Rule: rule}},
			wantIs:  []error{servicenow.ErrNotFound},
			wantNot: []error{servicenow.ErrThrottled},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tc.reply)
			var got signals
			c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithMaxAttempts(1),
				servicenow.WithClock(func() time.Time { return now }), servicenow.WithObserver(got.observe))

			_, err := c.Get(context.Background(), "incident", sysID1)

			want := tc.want
			want.At, want.Method, want.Table, want.Attempt = now, http.MethodGet, "incident", 1
			if diff := cmp.Diff([]servicenow.Signal{want}, got.all(), ignoreErr); diff != "" {
				t.Errorf("signals (-want +got):\n%s", diff)
			}
			if sigs := got.all(); len(sigs) == 1 && !errors.Is(err, sigs[0].Err) {
				t.Errorf("Signal.Err = %v, want the error the call returned: %v", sigs[0].Err, err)
			}
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false, want true", err, target)
				}
			}
			for _, target := range tc.wantNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = true, want false", err, target)
				}
			}
			if tc.wantText != "" && (err == nil || !strings.Contains(err.Error(), tc.wantText)) {
				t.Errorf("error %v, want it to say %q", err, tc.wantText)
			}
			var se *servicenow.Error
			if errors.As(err, &se) {
				if se.Outcome != want.Outcome || se.RetryAfter != want.RetryAfter || se.RateLimit != want.RateLimit {
					t.Errorf("Error = {Outcome %v, RetryAfter %v, RateLimit %+v}, want the signal's {%v, %v, %+v}",
						se.Outcome, se.RetryAfter, se.RateLimit, want.Outcome, want.RetryAfter, want.RateLimit)
				}
				if got, wantT := se.Throttled(), want.Outcome.Throttled(); got != wantT {
					t.Errorf("Error.Throttled() = %v, want %v", got, wantT)
				}
			}
		})
	}
}

// TestSignalRetrying: every request of a retried call is observed, and
// only the last says the client stops there. A 401 that the client cures
// with a new token is not the caller's answer either.
func TestSignalRetrying(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		f := newFake(t, reply{status: 502}, reply{status: 500}, reply{status: 200, body: okIncident})
		var got signals
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep((&waits{}).sleep),
			servicenow.WithClock(func() time.Time { return now }), servicenow.WithObserver(got.observe))
		if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
			t.Fatalf("Get: %v", err)
		}
		type brief struct {
			Attempt, Status int
			Outcome         servicenow.Outcome
			Retrying        bool
		}
		var briefs []brief
		for _, s := range got.all() {
			briefs = append(briefs, brief{s.Attempt, s.Status, s.Outcome, s.Retrying})
		}
		want := []brief{
			{1, 502, servicenow.OutcomeFailed, true},
			{2, 500, servicenow.OutcomeFailed, true},
			{3, 200, servicenow.OutcomeServed, false},
		}
		if diff := cmp.Diff(want, briefs); diff != "" {
			t.Errorf("signals (-want +got):\n%s", diff)
		}
	})
	t.Run("several observers, in order", func(t *testing.T) {
		f := newFake(t, reply{status: 200, body: okIncident})
		var order []string
		var mu sync.Mutex
		note := func(name string) func(servicenow.Signal) {
			return func(servicenow.Signal) { mu.Lock(); order = append(order, name); mu.Unlock() }
		}
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword),
			servicenow.WithObserver(note("first")), servicenow.WithObserver(nil), servicenow.WithObserver(note("second")))
		if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff([]string{"first", "second"}, order); diff != "" {
			t.Errorf("observers called (-want +got):\n%s", diff)
		}
	})
	t.Run("a cancelled call says nothing", func(t *testing.T) {
		f := newFake(t, reply{hold: true})
		var got signals
		c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithObserver(got.observe))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Get(ctx, "incident", sysID1)
			done <- err
		}()
		for len(f.requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Get = %v, want context.Canceled", err)
		}
		if s := got.all(); len(s) != 0 {
			t.Errorf("signals %+v, want none: the caller gave up, the instance said nothing", s)
		}
	})
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[servicenow.Outcome]string{
		servicenow.OutcomeServed:      "served",
		servicenow.OutcomeRateLimited: "rate_limited",
		servicenow.OutcomeQueueFull:   "queue_full",
		servicenow.OutcomeFailed:      "failed",
		servicenow.OutcomeDenied:      "denied",
		servicenow.Outcome(42):        "outcome(42)",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}
