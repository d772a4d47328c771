package snowsim_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestRateLimitRules follows "Inbound REST API rate limiting" (ServiceNow
// API reference, REST API Explorer): rules count requests per user per
// hour, a rule for a single user overrides one for all users, every
// request a rule applies to carries X-RateLimit-Limit and X-RateLimit-Reset
// (UNIX seconds), and a request over the limit gets 429 with Retry-After.
func TestRateLimitRules(t *testing.T) {
	clk := newClock() // 12:00:00
	clk.Advance(15 * time.Minute)
	_, srv := start(t, snowsim.WithClock(clk.Now),
		snowsim.WithUser("svc", "pw"), snowsim.WithUser("other", "pw"),
		snowsim.WithRateLimit(
			snowsim.RateLimitRule{Name: "all users", Limit: 2},
			snowsim.RateLimitRule{Name: "integration", User: "svc", Limit: 3},
		))
	get := func(user string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/api/now/table/incident?sysparm_limit=1", nil)
		req.SetBasicAuth(user, "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	reset := strconv.FormatInt(time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC).Unix(), 10)
	for i := range 3 {
		r := get("svc")
		if r.StatusCode != 200 || r.Header.Get("X-RateLimit-Limit") != "3" || r.Header.Get("X-RateLimit-Reset") != reset {
			t.Fatalf("svc request %d: status %d X-RateLimit-Limit %q X-RateLimit-Reset %q, want 200, 3, %s",
				i+1, r.StatusCode, r.Header.Get("X-RateLimit-Limit"), r.Header.Get("X-RateLimit-Reset"), reset)
		}
		if r.Header.Get("Retry-After") != "" {
			t.Errorf("svc request %d: Retry-After %q on a served request", i+1, r.Header.Get("Retry-After"))
		}
	}
	r := get("svc")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "2700" || r.Header.Get("X-RateLimit-Reset") != reset {
		t.Errorf("svc request 4: status %d Retry-After %q X-RateLimit-Reset %q, want 429, 2700 (45 min) and %s",
			r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("X-RateLimit-Reset"), reset)
	}
	// Counts are per user: "other" has its own two under the all-users rule.
	for i, want := range []int{200, 200, 429} {
		if r := get("other"); r.StatusCode != want || r.Header.Get("X-RateLimit-Limit") != "2" {
			t.Errorf("other request %d: status %d X-RateLimit-Limit %q, want %d and 2", i+1, r.StatusCode, r.Header.Get("X-RateLimit-Limit"), want)
		}
	}
	clk.Advance(45 * time.Minute) // 13:00, a new window
	if r := get("svc"); r.StatusCode != 200 {
		t.Errorf("svc in the next hour: status %d, want 200", r.StatusCode)
	}
}

// TestAPISemaphore follows ServiceNow KB0635398 (API_INT semaphores: with
// every thread busy and the queue at its maximum depth the instance
// answers 429) and KB3047080 ("Inbound Web Services — Timeouts and Slow
// Responses"): a full queue is a 429 without Retry-After, a request that
// waited too long in the queue fails with 500.
func TestAPISemaphore(t *testing.T) {
	sim, srv := start(t, snowsim.WithAPISemaphore(snowsim.APISemaphore{
		Threads: 1, QueueDepth: 1, QueueTimeout: 300 * time.Millisecond,
	}))
	sim.SetFaults(snowsim.Faults{Latency: 2 * time.Second}) // time on the thread
	type answer struct {
		status     int
		retryAfter string
	}
	get := func() answer {
		resp, err := http.Get(srv.URL + "/api/now/table/incident?sysparm_limit=1")
		if err != nil {
			return answer{status: -1}
		}
		resp.Body.Close()
		return answer{resp.StatusCode, resp.Header.Get("Retry-After")}
	}
	// waitLoad waits until the node has the given threads busy and requests
	// queued: each request is sent once the one before it has its place,
	// whatever the machine's speed.
	waitLoad := func(active, queued int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, q := sim.APILoad()
			if a == active && q == queued {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("API load: %d active, %d queued; want %d and %d", a, q, active, queued)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	var running, queued answer
	wg.Add(2)
	go func() { defer wg.Done(); running = get() }()
	waitLoad(1, 0)
	go func() { defer wg.Done(); queued = get() }()
	waitLoad(1, 1)
	if full := get(); full.status != 429 || full.retryAfter != "" {
		t.Errorf("third request with the queue full: status %d Retry-After %q, want 429 and none", full.status, full.retryAfter)
	}
	wg.Wait()
	if queued.status != 500 {
		t.Errorf("queued request past the queue timeout: status %d, want 500", queued.status)
	}
	if running.status != 200 {
		t.Errorf("request on the thread: status %d, want 200", running.status)
	}

	// Within the timeout, a queued request is served in turn.
	sim.SetFaults(snowsim.Faults{Latency: 50 * time.Millisecond})
	sim.SetAPISemaphore(snowsim.APISemaphore{Threads: 1, QueueDepth: 1, QueueTimeout: 5 * time.Second})
	var a, b answer
	wg.Add(2)
	go func() { defer wg.Done(); a = get() }()
	go func() { defer wg.Done(); b = get() }()
	wg.Wait()
	if a.status != 200 || b.status != 200 {
		t.Errorf("two requests, one thread, queue of one: statuses %d and %d, want 200 and 200", a.status, b.status)
	}
}
