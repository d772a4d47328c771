package servicenow_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// The tests in this file hold the client to the simulator for the answers
// of a real instance that a 2xx alone does not describe (hibernation,
// quota cancellation, ACLs, auth gates, rate limit rules, journal writes).
// Each names the ServiceNow behaviour it follows; the simulator reproduces
// it, and the client must handle it the way the package doc promises.

// TestFidelityHibernating: a hibernating developer instance answers every
// URL, API and /oauth_token.do alike, with 200 and an HTML page asking its
// owner to wake it (developer program, "Instance hibernation"). Neither a
// record read nor a token request may be taken for an answer.
func TestFidelityHibernating(t *testing.T) {
	auths := []struct {
		name string
		auth servicenow.Auth
	}{
		{"table API with basic auth", servicenow.BasicAuth(testUser, testPassword)},
		{"oauth token endpoint", servicenow.OAuthClientCredentials(testClientID, testClientSecret)},
	}
	for _, a := range auths {
		t.Run(a.name, func(t *testing.T) {
			sim, url := newSim(t, nil, snowsim.WithHibernating())
			c := newClient(t, url, a.auth)
			_, err := c.Get(context.Background(), "incident", sysID1)
			if !errors.Is(err, servicenow.ErrNotAPI) {
				t.Fatalf("Get on a hibernating instance: %v, want ErrNotAPI", err)
			}
			if !servicenow.IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = false, want true: the instance answers once woken", err)
			}
			if !strings.Contains(err.Error(), "text/html") {
				t.Errorf("error %q, want it to name the content type it got", err)
			}

			// Woken, the same client works.
			sim.SetHibernating(false)
			if _, err := c.Get(context.Background(), "incident", sysID1); !errors.Is(err, servicenow.ErrNotFound) {
				t.Errorf("Get after waking: %v, want ErrNotFound (the record does not exist)", err)
			}
		})
	}
}

// TestFidelityQuotaCancelled: a transaction quota rule ("Transaction
// quotas", platform administration) cancels a request that runs too long;
// when the answer has started, the instance keeps the 200 and appends its
// error object to the truncated body. The client reports the cancellation
// and hands no part of the page to the caller.
func TestFidelityQuotaCancelled(t *testing.T) {
	sim, url := newSim(t, map[string][]map[string]string{"incident": generateIncidents(50)})
	sim.SetFaults(snowsim.Faults{Seed: 1, QuotaCancelRate: 1})
	var w waits
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))

	pages := 0
	stats, err := c.Query(context.Background(), "incident", servicenow.Query{
		Encoded: "active=true^ORDERBYnumber", Fields: servicenow.IncidentFields, PageSize: 20,
	}, func([]servicenow.Record) error {
		pages++
		return nil
	})
	if !errors.Is(err, servicenow.ErrTransactionCancelled) {
		t.Fatalf("Query: %v, want ErrTransactionCancelled", err)
	}
	if !servicenow.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
	if pages != 0 || stats.Pages != 0 || stats.Records != 0 {
		t.Errorf("callback ran %d times, stats %+v; want no page handed over", pages, stats)
	}
	// One layer of retries: the caller's, not an immediate repeat that the
	// same quota rule would cancel again.
	if stats.Calls != 1 || len(w.all()) != 0 {
		t.Errorf("%d calls with waits %v, want 1 call and no wait", stats.Calls, w.all())
	}
}

// TestFidelityReadDenied: a table whose read ACL the integration user's
// roles do not satisfy answers 403 "Insufficient rights to query records"
// in the error envelope (Table API, "Table API security" and the REST API
// response codes: 403 is an operation the user may not perform), for a
// query and a single-record read alike. Final, and the message says which
// table and which right.
func TestFidelityReadDenied(t *testing.T) {
	recs := generateIncidents(1)
	_, url := newSim(t, map[string][]map[string]string{"incident": recs}, snowsim.WithReadDenied(testUser, "incident"))
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))
	ctx := context.Background()

	_, getErr := c.Get(ctx, "incident", recs[0]["sys_id"])
	stats, queryErr := c.Query(ctx, "incident", servicenow.Query{Encoded: "active=true"}, func([]servicenow.Record) error { return nil })
	for name, err := range map[string]error{"Get": getErr, "Query": queryErr} {
		if !errors.Is(err, servicenow.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
			continue
		}
		if servicenow.IsRetryable(err) {
			t.Errorf("%s: IsRetryable(%v) = true, want false", name, err)
		}
		for _, want := range []string{"may not read table incident", "Insufficient rights to query records", "read access"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s error %q, want it to contain %q", name, err, want)
			}
		}
	}
	if stats.Calls != 1 {
		t.Errorf("Query made %d calls, want 1: a 403 is not retried", stats.Calls)
	}
}

// TestFidelityAuthGates: the two inbound authentication gates that refuse
// with an opaque 401. The OAuth client credentials grant is off until the
// system property glide.oauth.inbound.client.credential.grant_type.enabled
// is true and the OAuth application has an OAuth Application User
// ("Client credentials grant type", OAuth inbound); the basic
// authentication restriction lets only web service access only users use
// basic auth ("Restrict basic authentication", platform security).
func TestFidelityAuthGates(t *testing.T) {
	tests := []struct {
		name string
		opts []snowsim.Option
		auth servicenow.Auth
		hint []string
	}{
		{
			name: "client credentials grant off",
			opts: []snowsim.Option{snowsim.WithProperty(snowsim.PropOAuthClientCredentials, "false")},
			auth: servicenow.OAuthClientCredentials(testClientID, testClientSecret),
			hint: []string{snowsim.PropOAuthClientCredentials, "OAuth Application User"},
		},
		{
			name: "basic auth restricted to web service users",
			opts: []snowsim.Option{snowsim.WithBasicAuthRestricted()},
			auth: servicenow.BasicAuth(testUser, testPassword),
			hint: []string{"web service access only"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := newSim(t, nil, tt.opts...)
			c := newClient(t, url, tt.auth)
			_, err := c.Get(context.Background(), "incident", sysID1)
			var se *servicenow.Error
			if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
				t.Fatalf("Get: %v, want a 401 *Error", err)
			}
			for _, want := range tt.hint {
				if !strings.Contains(se.Hint, want) || !strings.Contains(err.Error(), want) {
					t.Errorf("hint %q (error %q), want it to mention %q", se.Hint, err, want)
				}
			}
			if servicenow.IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = true, want false", err)
			}
		})
	}

	// Under the restriction a web service access only user is let in.
	_, url := newSim(t, nil, snowsim.WithBasicAuthRestricted(), snowsim.WithWebServiceUser("ws.integration", testPassword))
	c := newClient(t, url, servicenow.BasicAuth("ws.integration", testPassword))
	if _, err := c.Get(context.Background(), "incident", sysID1); !errors.Is(err, servicenow.ErrNotFound) {
		t.Errorf("Get as a web service user: %v, want ErrNotFound (authenticated, no such record)", err)
	}
}

// TestFidelityRateLimitRule: a REST API rate limit rule counts a user's
// requests per hour and answers the request over the limit with 429,
// Retry-After and X-RateLimit-Limit / X-RateLimit-Reset (a UNIX time)
// ("Rate limiting", REST API). The client exposes what it uses of them:
// Error.RetryAfter, the time to the end of the window; a wait longer than
// its backoff cap is handed back at once, not slept.
func TestFidelityRateLimitRule(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 15, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	recs := generateIncidents(1)
	_, url := newSim(t, map[string][]map[string]string{"incident": recs},
		snowsim.WithClock(clock),
		snowsim.WithRateLimit(snowsim.RateLimitRule{Name: "integration hourly", User: testUser, Limit: 2}))
	var w waits
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword), servicenow.WithClock(clock), servicenow.WithSleep(w.sleep))
	ctx := context.Background()

	for i := range 2 {
		if _, err := c.Get(ctx, "incident", recs[0]["sys_id"]); err != nil {
			t.Fatalf("Get %d within the limit: %v", i+1, err)
		}
	}
	_, err := c.Get(ctx, "incident", recs[0]["sys_id"])
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
		t.Fatalf("Get over the limit: %v, want a 429 *Error", err)
	}
	// The hourly window ends at 13:00, 45 minutes from now.
	if want := 45 * time.Minute; se.RetryAfter != want {
		t.Errorf("RetryAfter = %s, want %s", se.RetryAfter, want)
	}
	if !servicenow.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
	if got := w.all(); len(got) != 0 {
		t.Errorf("client waited %v, want no wait: 45 minutes is beyond its backoff cap", got)
	}
}

// TestFidelityRateLimitHeaders checks the simulator side of the rule above
// on the wire (TestFidelityRateLimitSignals checks what the client hands
// its observer of them): every answer the rule counts carries
// X-RateLimit-Limit, X-RateLimit-Reset and X-RateLimit-Rule (the rule's
// sys_id, "Inbound REST API rate limiting"), and the 429 a Retry-After
// matching the reset.
func TestFidelityRateLimitHeaders(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 15, 0, 0, time.UTC)
	_, url := newSim(t, nil, snowsim.WithClock(func() time.Time { return now }),
		snowsim.WithRateLimit(snowsim.RateLimitRule{Name: "integration hourly", User: testUser, Limit: 1}))
	reset := "1773147600" // 2026-03-10 13:00:00 UTC
	for i, want := range []struct {
		status     int
		retryAfter string
	}{{http.StatusNotFound, ""}, {http.StatusTooManyRequests, "2700"}} {
		req, err := http.NewRequest(http.MethodGet, url+"/api/now/table/incident/"+sysID1, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(testUser, testPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if rule := h.Get("X-RateLimit-Rule"); !servicenow.ValidSysID(rule) || rule != snowsim.RateLimitRuleSysID("integration hourly") {
			t.Errorf("request %d: X-RateLimit-Rule %q, want the rule's sys_id", i+1, rule)
		}
		if resp.StatusCode != want.status || h.Get("X-RateLimit-Limit") != "1" || h.Get("X-RateLimit-Reset") != reset || h.Get("Retry-After") != want.retryAfter {
			t.Errorf("request %d: %d Limit=%q Reset=%q Retry-After=%q, want %d 1 %s %q", i+1, resp.StatusCode,
				h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Reset"), h.Get("Retry-After"), want.status, reset, want.retryAfter)
		}
	}
}

// TestFidelityWriteJournal: a work note is an entry in sys_journal_field
// (element_id = the record, element = work_notes), the record's journal
// field reads as "", and the append bumps sys_mod_count ("Journal fields",
// table administration; "Retrieve journal entries", API reference).
func TestFidelityWriteJournal(t *testing.T) {
	sim, url := newSim(t, nil)
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))
	ctx := context.Background()
	ins, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Queue stuck"})
	if err != nil {
		t.Fatal(err)
	}
	id := ins.SysID()
	before, err := ins.SysModCount()
	if err != nil {
		t.Fatal(err)
	}

	res, err := c.WriteJournal(ctx, "incident", id, servicenow.FieldWorkNotes, "Restarted the consumer", -1)
	if err != nil {
		t.Fatalf("WriteJournal: %v", err)
	}
	if res.ModCount != before+1 || res.Attempts != 1 || res.Entry != "" {
		t.Errorf("WriteJournal = %+v, want ModCount %d from the answer in 1 attempt", res, before+1)
	}

	var entries []servicenow.Record
	if _, err := c.Query(ctx, servicenow.TableJournal, servicenow.Query{
		Encoded: servicenow.FieldElementID + "=" + id,
		Fields:  []string{servicenow.FieldElementID, servicenow.FieldElement, servicenow.FieldValue},
	}, func(p []servicenow.Record) error {
		entries = append(entries, p...)
		return nil
	}); err != nil {
		t.Fatalf("Query %s: %v", servicenow.TableJournal, err)
	}
	if len(entries) != 1 || entries[0][servicenow.FieldElement] != servicenow.FieldWorkNotes || entries[0][servicenow.FieldValue] != "Restarted the consumer" {
		t.Errorf("%s entries %v, want one work note", servicenow.TableJournal, entries)
	}
	rec, err := c.Get(ctx, "incident", id, servicenow.FieldWorkNotes, servicenow.FieldSysModCount)
	if err != nil {
		t.Fatal(err)
	}
	if rec[servicenow.FieldWorkNotes] != "" || rec[servicenow.FieldSysModCount] != "1" {
		t.Errorf("record after the note: work_notes %q sys_mod_count %q, want \"\" and 1", rec[servicenow.FieldWorkNotes], rec[servicenow.FieldSysModCount])
	}
	if n := len(sim.WorkNotes("incident", id)); n != 1 {
		t.Errorf("simulator journal holds %d work notes, want 1", n)
	}
}

// TestFidelityJournalAnswerLost: the instance stores the PATCH and its
// answer is lost on the way back (a proxy's 502, a dropped connection).
// An append is not idempotent (each write to a journal field adds an
// entry, "Journal fields"), so the client looks in sys_journal_field
// before sending it again, finds the entry, and stops: one note, not two.
func TestFidelityJournalAnswerLost(t *testing.T) {
	lose := map[string]func(w http.ResponseWriter){
		"502 from a proxy": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
		},
		"connection dropped": func(w http.ResponseWriter) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		},
	}
	for name, loseAnswer := range lose {
		t.Run(name, func(t *testing.T) {
			sim, _ := newSim(t, nil)
			var patches atomic.Int32
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch && patches.Add(1) == 1 {
					sim.ServeHTTP(httptest.NewRecorder(), r) // stored by the instance
					loseAnswer(w)
					return
				}
				sim.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			var w waits
			c := newClient(t, front.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
			ctx := context.Background()
			ins, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Queue stuck"})
			if err != nil {
				t.Fatal(err)
			}
			id := ins.SysID()

			res, err := c.WriteJournal(ctx, "incident", id, servicenow.FieldWorkNotes, "Accepted by gateway ops", 0)
			if err != nil {
				t.Fatalf("WriteJournal: %v", err)
			}
			if res.Attempts != 1 || res.Entry == "" {
				t.Errorf("WriteJournal = %+v, want 1 attempt confirmed from the journal", res)
			}
			if got := sim.WorkNotes("incident", id); len(got) != 1 {
				t.Errorf("work notes %q, want exactly one", got)
			}
			if rec, _ := sim.Record("incident", id); rec["sys_mod_count"] != "1" {
				t.Errorf("sys_mod_count %q, want 1", rec["sys_mod_count"])
			}
			if p := patches.Load(); p != 1 {
				t.Errorf("%d PATCH requests, want 1", p)
			}
		})
	}
}

// TestFidelityJournalUnreadable: the PATCH answer is lost and the
// integration user may not read sys_journal_field (its read ACL answers
// 403, as for any table; "Journal fields" entries are records of that
// table). The outcome cannot be settled, so the note is not sent again:
// ErrJournalUnconfirmed, one PATCH, one note.
func TestFidelityJournalUnreadable(t *testing.T) {
	sim, _ := newSim(t, nil, snowsim.WithReadDenied(testUser, servicenow.TableJournal))
	var patches atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && patches.Add(1) == 1 {
			sim.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	var w waits
	c := newClient(t, front.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
	ctx := context.Background()
	ins, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Queue stuck"})
	if err != nil {
		t.Fatal(err)
	}

	_, err = c.WriteJournal(ctx, "incident", ins.SysID(), servicenow.FieldWorkNotes, "Accepted by gateway ops", 0)
	if !errors.Is(err, servicenow.ErrJournalUnconfirmed) || !errors.Is(err, servicenow.ErrForbidden) {
		t.Fatalf("WriteJournal: %v, want ErrJournalUnconfirmed caused by the journal's 403", err)
	}
	if !strings.Contains(err.Error(), "may not read table "+servicenow.TableJournal) {
		t.Errorf("error %q, want it to name the missing read right on %s", err, servicenow.TableJournal)
	}
	if p, notes := patches.Load(), sim.WorkNotes("incident", ins.SysID()); p != 1 || len(notes) != 1 {
		t.Errorf("%d PATCH requests and notes %q, want 1 and exactly one", p, notes)
	}
}

// TestFidelitySemaphoreQueueFull: with every API thread busy and the
// queue at its depth, the instance answers 429 without Retry-After
// (KB0635398, API_INT semaphores), unlike a rate limit rule's 429. The
// client then backs off on its own schedule, and hands the 429 back with
// no wait of ServiceNow's when its attempts are spent.
func TestFidelitySemaphoreQueueFull(t *testing.T) {
	sim, url := newSim(t, nil, snowsim.WithAPISemaphore(snowsim.APISemaphore{Threads: 1, QueueDepth: 0}))
	// One request holds the only thread until it is cancelled.
	sim.SetFaults(snowsim.Faults{Latency: time.Hour})
	holdCtx, release := context.WithCancel(context.Background())
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequestWithContext(holdCtx, http.MethodGet, url+"/api/now/table/incident", nil)
		req.SetBasicAuth(testUser, testPassword)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() { release(); <-held })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if active, _ := sim.APILoad(); active == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holding request never got the API thread")
		}
		time.Sleep(5 * time.Millisecond)
	}

	var w waits
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword), servicenow.WithMaxAttempts(2),
		servicenow.WithBackoff(100*time.Millisecond, time.Second), servicenow.WithSleep(w.sleep))
	_, err := c.Get(context.Background(), "incident", sysID1)
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || se.RetryAfter != 0 {
		t.Fatalf("Get with the queue full: %v, want a 429 *Error without RetryAfter", err)
	}
	if got := w.all(); len(got) != 1 || got[0] < 50*time.Millisecond || got[0] > 100*time.Millisecond {
		t.Errorf("waits %v, want one backoff of 50-100ms", got)
	}
	if !servicenow.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
}
