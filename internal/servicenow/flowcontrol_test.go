package servicenow_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// The tests in this file hold the client's flow-control signals to the
// simulator's limits: rate limit rules per user per hour ("Inbound REST
// API rate limiting": X-RateLimit-Limit, X-RateLimit-Reset as a UNIX time,
// X-RateLimit-Rule, and 429 with Retry-After over the limit) and a node's
// API semaphore (KB0635398: a full queue answers 429 without Retry-After).

const ruleName = "integration hourly"

// holdAPIThread makes the simulated node's only API thread busy and its
// queue full (depth 0) until the test ends.
func holdAPIThread(t *testing.T, sim *snowsim.Sim, url string) {
	holdThread(t, sim, url, snowsim.APISemaphore{Threads: 1, QueueDepth: 0})
}

// holdThread bounds the node's API threads by sem and keeps one of them
// busy until the test ends: a request holds it for as long as the
// injected latency, which outlasts the test.
func holdThread(t *testing.T, sim *snowsim.Sim, url string, sem snowsim.APISemaphore) {
	t.Helper()
	sim.SetAPISemaphore(sem)
	sim.SetFaults(snowsim.Faults{Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/now/table/incident?sysparm_limit=1", nil)
		if err != nil {
			return
		}
		req.SetBasicAuth(testUser, testPassword)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	// Wait for the request to hold the thread, whatever the machine's
	// speed; the simulator's own semaphore test does the same.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if active, _ := sim.APILoad(); active == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the holding request never got the API thread")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// answered counts the simulator's answers with status.
func answered(sim *snowsim.Sim, status int) int {
	n := 0
	for k, v := range sim.Stats().Requests {
		if k.Status == status {
			n += v
		}
	}
	return n
}

// TestFidelityRateLimitSignals: each answer a rule counts hands the
// observer the limit, the reset and the rule the simulator sent; the
// request over the limit is ErrRateLimited with RetryAfter the time to the
// window's end, and its signal says so.
func TestFidelityRateLimitSignals(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 15, 0, 0, time.UTC)
	reset := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	recs := generateIncidents(1)
	sim, url := newSim(t, map[string][]map[string]string{"incident": recs},
		snowsim.WithClock(clock),
		snowsim.WithRateLimit(snowsim.RateLimitRule{Name: ruleName, User: testUser, Limit: 3}))
	var got signals
	var w waits
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword), servicenow.WithClock(clock),
		servicenow.WithSleep(w.sleep), servicenow.WithObserver(got.observe))
	ctx := context.Background()

	for i := range 3 {
		if _, err := c.Get(ctx, "incident", recs[0]["sys_id"]); err != nil {
			t.Fatalf("Get %d within the limit: %v", i+1, err)
		}
	}
	_, err := c.Get(ctx, "incident", recs[0]["sys_id"])

	served := servicenow.Signal{
		At: now, Method: http.MethodGet, Table: "incident", Attempt: 1, Status: http.StatusOK,
		Outcome:   servicenow.OutcomeServed,
		RateLimit: servicenow.RateLimit{Limit: 3, Remaining: -1, Reset: reset, Rule: snowsim.RateLimitRuleSysID(ruleName)},
	}
	refused := served
	refused.Status, refused.Outcome = http.StatusTooManyRequests, servicenow.OutcomeRateLimited
	refused.RateLimit.Remaining, refused.RetryAfter = 0, 45*time.Minute
	if diff := cmp.Diff([]servicenow.Signal{served, served, served, refused}, got.all(), ignoreErr); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	if sigs := got.all(); len(sigs) == 4 && (sigs[0].Err != nil || !errors.Is(err, sigs[3].Err)) {
		t.Errorf("Signal.Err: %v and %v, want nil and the error of the call over the limit", sigs[0].Err, sigs[3].Err)
	}
	if at := got.all()[3].RetryAt(); !at.Equal(reset) {
		t.Errorf("RetryAt() = %v, want the window's end %v", at, reset)
	}

	var se *servicenow.Error
	if !errors.As(err, &se) || !errors.Is(err, servicenow.ErrThrottled) || !errors.Is(err, servicenow.ErrRateLimited) || errors.Is(err, servicenow.ErrQueueFull) {
		t.Fatalf("Get over the limit: %v, want a 429 *Error matching ErrThrottled and ErrRateLimited only", err)
	}
	if se.RetryAfter != 45*time.Minute || se.RateLimit != refused.RateLimit || !se.Throttled() {
		t.Errorf("Error: RetryAfter %v RateLimit %+v Throttled %v, want 45m0s, %+v, true", se.RetryAfter, se.RateLimit, se.Throttled(), refused.RateLimit)
	}
	if n := answered(sim, http.StatusTooManyRequests); n != 1 {
		t.Errorf("simulator answered %d requests 429, want 1: an hour's wait is handed back, not slept", n)
	}
	if ws := w.all(); len(ws) != 0 {
		t.Errorf("client waited %v, want no wait", ws)
	}
}

// TestFidelityThrottleRetries: by default a 429 is waited out within the
// client's attempts (Retry-After, else backoff); WithoutThrottleRetries
// sends exactly one request and hands the throttle back with its kind and
// wait. Failures that are not throttles are retried either way.
func TestFidelityThrottleRetries(t *testing.T) {
	// 12:15:55: the rule's one-minute window ends in 5 seconds, a wait
	// within the backoff cap. The clocks stand still, so every retry is
	// refused again.
	now := time.Date(2026, 3, 10, 12, 15, 55, 0, time.UTC)
	clock := func() time.Time { return now }
	ruleSpent := func(t *testing.T, sim *snowsim.Sim, url string) {
		sim.SetRateLimits(snowsim.RateLimitRule{Name: ruleName, User: testUser, Limit: 1, Window: time.Minute})
		c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))
		if _, err := c.Get(context.Background(), "incident", sysID1); !errors.Is(err, servicenow.ErrNotFound) {
			t.Fatalf("Get spending the rule's one request: %v, want ErrNotFound", err)
		}
	}
	serverErrors := func(t *testing.T, sim *snowsim.Sim, _ string) {
		sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	}
	const backoff = -1
	tests := []struct {
		name       string
		setup      func(*testing.T, *snowsim.Sim, string)
		noRetry    bool
		wantStatus int
		wantIs     error
		// wantRequests counts the simulator's answers with wantStatus.
		wantRequests   int
		wantWaits      []time.Duration
		wantRetryAfter time.Duration
		wantOutcome    servicenow.Outcome
	}{
		{
			name: "rule, default: Retry-After waited out within the attempts", setup: ruleSpent,
			wantStatus: 429, wantIs: servicenow.ErrRateLimited, wantRequests: servicenow.DefaultMaxAttempts,
			wantWaits: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, wantRetryAfter: 5 * time.Second,
			wantOutcome: servicenow.OutcomeRateLimited,
		},
		{
			name: "rule, without throttle retries: one request", setup: ruleSpent, noRetry: true,
			wantStatus: 429, wantIs: servicenow.ErrRateLimited, wantRequests: 1, wantRetryAfter: 5 * time.Second,
			wantOutcome: servicenow.OutcomeRateLimited,
		},
		{
			name: "queue full, default: backed off within the attempts", setup: holdAPIThread,
			wantStatus: 429, wantIs: servicenow.ErrQueueFull, wantRequests: servicenow.DefaultMaxAttempts,
			wantWaits: []time.Duration{backoff, backoff, backoff}, wantOutcome: servicenow.OutcomeQueueFull,
		},
		{
			name: "queue full, without throttle retries: one request", setup: holdAPIThread, noRetry: true,
			wantStatus: 429, wantIs: servicenow.ErrQueueFull, wantRequests: 1, wantOutcome: servicenow.OutcomeQueueFull,
		},
		{
			name: "5xx, without throttle retries: still retried", setup: serverErrors, noRetry: true,
			wantStatus: 500, wantRequests: servicenow.DefaultMaxAttempts,
			wantWaits: []time.Duration{backoff, backoff, backoff}, wantOutcome: servicenow.OutcomeFailed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := newSim(t, nil, snowsim.WithClock(clock))
			tc.setup(t, sim, url)
			var got signals
			var w waits
			opts := []servicenow.Option{servicenow.WithClock(clock), servicenow.WithSleep(w.sleep), servicenow.WithObserver(got.observe)}
			if tc.noRetry {
				opts = append(opts, servicenow.WithoutThrottleRetries())
			}
			c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword), opts...)

			_, err := c.Get(context.Background(), "incident", sysID1)

			var se *servicenow.Error
			if !errors.As(err, &se) || se.Status != tc.wantStatus {
				t.Fatalf("Get = %v, want a %d *Error", err, tc.wantStatus)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Get = %v, want %v", err, tc.wantIs)
			}
			if se.Outcome != tc.wantOutcome || se.RetryAfter != tc.wantRetryAfter {
				t.Errorf("Error: Outcome %v RetryAfter %v, want %v and %v", se.Outcome, se.RetryAfter, tc.wantOutcome, tc.wantRetryAfter)
			}
			if n := answered(sim, tc.wantStatus); n != tc.wantRequests {
				t.Errorf("simulator answered %d requests %d, want %d", n, tc.wantStatus, tc.wantRequests)
			}
			ws := w.all()
			if len(ws) != len(tc.wantWaits) {
				t.Fatalf("waits = %v, want %v", ws, tc.wantWaits)
			}
			for i, want := range tc.wantWaits {
				if want != backoff && ws[i] != want {
					t.Errorf("wait %d = %v, want %v", i, ws[i], want)
				}
				if want == backoff && (ws[i] <= 0 || ws[i] > servicenow.DefaultBackoffMax) {
					t.Errorf("wait %d = %v, want a backoff in (0, %v]", i, ws[i], servicenow.DefaultBackoffMax)
				}
			}
			sigs := got.all()
			if len(sigs) != tc.wantRequests {
				t.Fatalf("%d signals, want one per request: %d", len(sigs), tc.wantRequests)
			}
			for i, s := range sigs {
				last := i == len(sigs)-1
				if s.Outcome != tc.wantOutcome || s.Retrying == last || s.Attempt != i+1 {
					t.Errorf("signal %d: Outcome %v Retrying %v Attempt %d, want %v, %v, %d", i+1, s.Outcome, s.Retrying, s.Attempt, tc.wantOutcome, !last, i+1)
				}
			}
		})
	}
}

// TestFidelitySignalOutcomes: each way the simulated instance refuses or
// fails a request has the outcome a gateway's circuit needs to tell them
// apart.
func TestFidelitySignalOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*testing.T, *snowsim.Sim, string)
		wantStatus int
		want       servicenow.Outcome
	}{
		{"served", func(*testing.T, *snowsim.Sim, string) {}, 404, servicenow.OutcomeServed},
		{"rule exhausted", func(_ *testing.T, sim *snowsim.Sim, _ string) {
			sim.SetRateLimits(snowsim.RateLimitRule{Name: ruleName, Limit: 0})
		}, 429, servicenow.OutcomeRateLimited},
		{"queue full", holdAPIThread, 429, servicenow.OutcomeQueueFull},
		{"queued too long", func(t *testing.T, sim *snowsim.Sim, url string) {
			holdThread(t, sim, url, snowsim.APISemaphore{Threads: 1, QueueDepth: 1, QueueTimeout: time.Nanosecond})
		}, 500, servicenow.OutcomeFailed},
		{"hibernating", func(_ *testing.T, sim *snowsim.Sim, _ string) { sim.SetHibernating(true) }, 200, servicenow.OutcomeFailed},
		{"server error", func(_ *testing.T, sim *snowsim.Sim, _ string) { sim.SetFaults(snowsim.Faults{ErrorRate: 1}) }, 500, servicenow.OutcomeFailed},
		{"connection dropped", func(_ *testing.T, sim *snowsim.Sim, _ string) { sim.SetFaults(snowsim.Faults{DropRate: 1}) }, 0, servicenow.OutcomeFailed},
		{"no read rights", func(_ *testing.T, sim *snowsim.Sim, _ string) { sim.SetReadDenied(testUser, "incident", true) }, 403, servicenow.OutcomeDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := newSim(t, nil)
			tc.setup(t, sim, url)
			var got signals
			c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword),
				servicenow.WithMaxAttempts(1), servicenow.WithObserver(got.observe))
			_, err := c.Get(context.Background(), "incident", sysID1)
			if err == nil {
				t.Fatal("Get succeeded, want a failure")
			}
			sigs := got.all()
			if len(sigs) != 1 {
				t.Fatalf("signals %+v, want one", sigs)
			}
			if !errors.Is(err, sigs[0].Err) {
				t.Errorf("Signal.Err = %v, want the error of the call: %v", sigs[0].Err, err)
			}
			if s := sigs[0]; s.Status != tc.wantStatus || s.Outcome != tc.want || s.Retrying {
				t.Errorf("signal: status %d outcome %v retrying %v, want %d, %v, false (error %v)", s.Status, s.Outcome, s.Retrying, tc.wantStatus, tc.want, err)
			}
		})
	}
}

// TestFidelitySignalsConcurrent: one client's calls from many goroutines
// hand the observer one signal per request, the token request included
// (run with -race).
func TestFidelitySignalsConcurrent(t *testing.T) {
	const callers, calls = 8, 5
	sim, url := newSim(t, nil, snowsim.WithRateLimit(snowsim.RateLimitRule{Name: ruleName, Limit: 1000}))
	var got signals
	c := newClient(t, url, servicenow.OAuthClientCredentials(testClientID, testClientSecret), servicenow.WithObserver(got.observe))
	// The token first, so that concurrent calls share it.
	if _, err := c.Get(context.Background(), "incident", sysID1); !errors.Is(err, servicenow.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if _, err := c.Get(context.Background(), "incident", sysID1); !errors.Is(err, servicenow.ErrNotFound) {
					t.Errorf("Get: %v, want ErrNotFound", err)
				}
			}
		}()
	}
	wg.Wait()

	tables, tokens := 0, 0
	for _, s := range got.all() {
		switch {
		case s.Table == "" && s.Method == http.MethodPost:
			tokens++
			if s.RateLimit.Known() {
				t.Errorf("token request signal %+v: a rate limit rule counts Table API requests only", s)
			}
		case s.Table == "incident":
			tables++
			if s.Outcome != servicenow.OutcomeServed || s.RateLimit.Limit != 1000 {
				t.Errorf("signal %+v, want served with limit 1000", s)
			}
		default:
			t.Errorf("unexpected signal %+v", s)
		}
	}
	if tokens != 1 || tables != 1+callers*calls {
		t.Errorf("signals: %d token, %d table requests; want 1 and %d", tokens, tables, 1+callers*calls)
	}
	if n := answered(sim, http.StatusNotFound); n != tables {
		t.Errorf("simulator answered %d requests 404, client observed %d", n, tables)
	}
}
