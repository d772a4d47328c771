package snowsim_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestFaults(t *testing.T) {
	one := "/api/now/table/incident/00000000000000000000000000000004"
	tests := []struct {
		name       string
		faults     snowsim.Faults
		path       string
		status     int // 0: connection dropped
		retryAfter string
	}{
		{"5xx", snowsim.Faults{ErrorRate: 1}, one, 500, ""},
		{"custom 5xx", snowsim.Faults{ErrorRate: 1, ErrorStatus: 503}, one, 503, ""},
		{"429", snowsim.Faults{Status429Rate: 1, RetryAfter: 3 * time.Second}, one, 429, "3"},
		{"dropped connection", snowsim.Faults{DropRate: 1}, one, 0, ""},
		{"hidden record", snowsim.Faults{Hidden: map[string]bool{"incident/00000000000000000000000000000004": true}}, one, 404, ""},
		{"no fault", snowsim.Faults{}, one, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, srv := start(t)
			sim.SetFaults(tc.faults)
			resp, err := http.Get(srv.URL + tc.path)
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET: status %d, want a dropped connection", resp.StatusCode)
				}
				if got := sim.Stats().Requests[snowsim.RequestKey{Method: "GET", Status: 0}]; got != 1 {
					t.Errorf("Stats dropped GETs = %d, want 1", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("GET: status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if got := sim.Stats().Requests[snowsim.RequestKey{Method: "GET", Status: tc.status}]; got != 1 {
				t.Errorf("Stats GET %d = %d, want 1", tc.status, got)
			}
		})
	}
}

func TestFaultLatency(t *testing.T) {
	sim, srv := start(t)
	sim.SetFaults(snowsim.Faults{Latency: time.Second})
	// A client deadline shorter than the latency must expire: the request
	// is held, not answered at once.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/now/table/incident", nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GET with 50ms deadline against 1s latency: err = %v, want deadline exceeded", err)
	}
}

func TestFaultRateLimit(t *testing.T) {
	clk := newClock()
	sim, srv := start(t, snowsim.WithClock(clk.Now))
	sim.SetFaults(snowsim.Faults{RateLimitPerMinute: 3})
	get := func() *http.Response {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/now/table/incident?sysparm_limit=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		if r := get(); r.StatusCode != 200 {
			t.Fatalf("request %d: status %d, want 200", i+1, r.StatusCode)
		}
	}
	clk.Advance(20 * time.Second) // 12:00:20, the window resets at 12:01:00
	r := get()
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "40" {
		t.Errorf("4th request: status %d Retry-After %q, want 429 and 40", r.StatusCode, r.Header.Get("Retry-After"))
	}
	clk.Advance(40 * time.Second)
	if r := get(); r.StatusCode != 200 {
		t.Errorf("next minute: status %d, want 200", r.StatusCode)
	}
}

func TestFaultsDeterministic(t *testing.T) {
	statuses := func() []int {
		sim, srv := start(t)
		sim.SetFaults(snowsim.Faults{Seed: 42, ErrorRate: 0.3, Status429Rate: 0.3})
		var out []int
		for range 20 {
			resp, err := http.Get(srv.URL + "/api/now/table/incident?sysparm_limit=1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			out = append(out, resp.StatusCode)
		}
		return out
	}
	a, b := statuses(), statuses()
	seen := map[int]bool{}
	for i := range a {
		seen[a[i]] = true
		if a[i] != b[i] {
			t.Fatalf("same seed, different faults: %v vs %v", a, b)
		}
	}
	if !seen[200] || !seen[429] || !seen[500] {
		t.Errorf("statuses %v: want a mix of 200, 429 and 500", a)
	}
}

// TestConcurrentWrites runs parallel inserts and updates of one record; run
// with -race. Every update bumps sys_mod_count exactly once.
func TestConcurrentWrites(t *testing.T) {
	sim, srv := start(t)
	id := "00000000000000000000000000000004"
	var wg sync.WaitGroup
	send := func(method, url, body string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("%s %s: status %d", method, url, resp.StatusCode)
		}
	}
	for range 20 {
		wg.Go(func() {
			send("PATCH", srv.URL+"/api/now/table/incident/"+id, `{"work_notes":"note"}`)
			send("POST", srv.URL+"/api/now/table/incident", `{"short_description":"parallel"}`)
			send("GET", srv.URL+"/api/now/table/incident?sysparm_query=short_descriptionLIKEparallel", "")
		})
	}
	wg.Wait()
	rec, _ := sim.Record("incident", id)
	if rec["sys_mod_count"] != "20" {
		t.Errorf("sys_mod_count = %s after 20 parallel updates, want 20", rec["sys_mod_count"])
	}
	numbers := map[string]bool{}
	for _, r := range sim.Records("incident") {
		if numbers[r["number"]] {
			t.Errorf("number %s given twice", r["number"])
		}
		numbers[r["number"]] = true
	}
	if len(numbers) != 24 {
		t.Errorf("%d incidents, want 24", len(numbers))
	}
}
