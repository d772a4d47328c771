package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// parallel runs the test alongside the others when each has a system of
// its own; a deployed system's dispatch queue is shared, so there the
// tests take turns.
func parallel(t *testing.T) {
	if !remoteMode() {
		t.Parallel()
	}
}

// unique makes short descriptions unique per test and run, so the dedup
// window never joins records of different cases.
func unique(t *testing.T, s string) string {
	return fmt.Sprintf("%s [%s %d]", s, t.Name(), time.Now().UnixNano())
}

func incident(t *testing.T, group, desc string) map[string]string {
	return map[string]string{
		"short_description": unique(t, desc), "priority": "3", "impact": "2", "urgency": "3", "state": "1",
		"assignment_group": group, "cmdb_ci": snowsim.DemoCI("rtr-07"), "u_environment": "production",
	}
}

// TestIncident: a gateway and webhooks made with the CLI, their Business
// Rules loaded into the simulator; an incident inserted there is accepted
// (a job on the dispatch queue, a work note on the record, whose echo is
// unchanged); an update of a mirrored field is processed again, one of an
// unmirrored field is unchanged.
func TestIncident(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID

	rec := s.insert(t, "incident", incident(t, st.group, "Edge router drops BGP sessions"))
	id := rec["sys_id"]
	tk := s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.Status != state.StatusAccepted || tk.JobID == "" || tk.WriteBack != "done" {
		t.Fatalf("ticket after insert: %s, job %q, write-back %q; want accepted with a job and the work note done",
			describe(tk), tk.JobID, tk.WriteBack)
	}
	// The work note is an update of the record (sys_mod_count 0 → 1) that
	// came back (its webhook, or the reconciler) and changed nothing that is
	// mirrored: only an unchanged outcome records the newer sys_mod_count.
	// The last outcome may be stale when the webhook and the reconciler
	// both delivered it. On a shared instance other gateways' work notes
	// add versions of their own.
	if tk.SysModCount < 1 || (tk.LastOutcome != state.OutcomeUnchanged && tk.LastOutcome != state.OutcomeStale) ||
		(!remoteMode() && tk.SysModCount != 1) {
		t.Errorf("ticket after the work note's echo: %s; want sys_mod_count 1, last outcome unchanged (or stale)", describe(tk))
	}
	if s.sim != nil {
		notes := s.sim.WorkNotes("incident", id)
		if len(notes) != 1 || !strings.Contains(notes[0], tk.JobID) || !strings.Contains(notes[0], st.gateway.ID) {
			t.Errorf("work notes = %q; want one naming gateway %s and job %s", notes, st.gateway.ID, tk.JobID)
		}
	}
	jobs := s.jobs(t, gw)
	// The webhook and the once-a-second reconciler race for each change;
	// either may be the job's source, and the other is stale.
	want := []jobSummary{{SysID: id, SysModCount: 0, Priority: "3", JobID: tk.JobID}}
	if diff := cmp.Diff(want, summarize(jobs)); diff != "" {
		t.Fatalf("jobs after insert (-want +got):\n%s", diff)
	}

	// A mirrored field changes: processed again, a second job.
	upd := s.update(t, "incident", id, map[string]string{"priority": "2"})
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.Status != state.StatusAccepted || tk.Priority != "2" {
		t.Errorf("ticket after the priority changed: %s, priority %q; want accepted with priority 2", describe(tk), tk.Priority)
	}
	jobs = s.jobs(t, gw)
	want = []jobSummary{{SysID: id, SysModCount: upd.modCount(), Priority: "2", JobID: tk.JobID}}
	if diff := cmp.Diff(want, summarize(jobs)); diff != "" {
		t.Errorf("jobs after the priority changed (-want +got):\n%s", diff)
	}

	// Nothing mirrored changes: unchanged, no job.
	before := tk
	s.update(t, "incident", id, map[string]string{"category": "network", "impact": "1"})
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.Status != state.StatusAccepted || (tk.LastOutcome != state.OutcomeUnchanged && tk.LastOutcome != state.OutcomeStale) || tk.JobID != before.JobID ||
		tk.SysModCount <= before.SysModCount {
		t.Errorf("ticket after an update of unmirrored fields: %s, job %q; want still accepted (job %q), last outcome unchanged, a newer sys_mod_count than %d",
			describe(tk), tk.JobID, before.JobID, before.SysModCount)
	}
	if jobs := s.jobs(t, gw); len(jobs) != 0 {
		t.Errorf("jobs after an update of unmirrored fields: %v; want none", summarize(jobs))
	}
	if n := s.depth(t, schema.EnvIntakeDLQURL); n != 0 {
		t.Errorf("intake dead-letter queue holds %d messages; want 0", n)
	}
}

type jobSummary struct {
	SysID       string
	SysModCount int
	Priority    string
	JobID       string
}

func summarize(jobs []queue.JobEvent) []jobSummary {
	var out []jobSummary
	for _, j := range jobs {
		out = append(out, jobSummary{j.SysID, j.SysModCount, j.Ticket.Priority, j.JobID})
	}
	return out
}

// TestChangeRequests: only approved change requests in Scheduled or
// Implement act, and only within their window: not approved is
// out_of_scope, a window ahead is deferred and accepted once it opens (the
// reconciler re-enqueues it), a window past is expired.
func TestChangeRequests(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	now := time.Now()
	change := func(desc, approval, state string, start, end time.Duration) map[string]string {
		return map[string]string{
			"short_description": unique(t, desc), "type": "normal", "approval": approval, "state": state,
			"assignment_group": st.group, "cmdb_ci": snowsim.DemoCI("sw-core-02"), "u_environment": "production",
			"start_date": simTime(now.Add(start)), "end_date": simTime(now.Add(end)),
		}
	}
	requested := s.insert(t, "change_request", change("Decommission load balancer", "requested", "-4", time.Hour, 2*time.Hour))["sys_id"]
	ahead := s.insert(t, "change_request", change("Upgrade firmware", "approved", "-2", time.Hour, 2*time.Hour))["sys_id"]
	past := s.insert(t, "change_request", change("Rotate credentials", "approved", "-1", -2*time.Hour, -time.Hour))["sys_id"]

	for _, c := range []struct {
		name, sysID, status string
	}{
		{"not approved", requested, state.StatusOutOfScope},
		{"window ahead", ahead, state.StatusDeferred},
		{"window past", past, state.StatusExpired},
	} {
		if tk := s.waitSettled(t, gw, "change_request", c.sysID, time.Minute); tk.Status != c.status {
			t.Errorf("%s: ticket %s; want status %s", c.name, describe(tk), c.status)
		}
	}
	if jobs := s.jobs(t, gw); len(jobs) != 0 {
		t.Fatalf("jobs before any window opened: %v; want none", summarize(jobs))
	}

	// The window now opens in a few seconds: deferred until then (unless
	// processing took longer), then accepted when the reconciler finds it
	// due, with no webhook.
	s.update(t, "change_request", ahead, map[string]string{"start_date": simTime(time.Now().Add(3 * time.Second))})
	var tk ticket
	s.eventually(t, "the change request to be accepted once its window opened", time.Minute, func() (bool, string) {
		tk = s.tickets(t, gw)[ahead]
		return tk.Status == state.StatusAccepted && final(tk), describe(tk)
	})
	jobs := s.jobs(t, gw)
	if len(jobs) != 1 || jobs[0].SysID != ahead || jobs[0].Ticket.Approval != "approved" {
		t.Errorf("jobs once the window opened: %v; want one, for %s", summarize(jobs), ahead)
	} else {
		t.Logf("change request accepted from source %q", jobs[0].Source)
	}
}

// TestIngestRejects: calls that are not genuine webhooks are refused at
// the edge and nothing of them is enqueued.
func TestIngestRejects(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, false) // no Business Rules: only the calls below reach ingest
	gw := st.gateway.ID
	rec := s.insert(t, "incident", incident(t, st.group, "Control record"))
	body := func(sysID string) string {
		return fmt.Sprintf(`{"sys_id":%q,"table":"incident","number":%q,"sys_mod_count":"0","operation":"insert"}`, sysID, rec["number"])
	}
	bogus := servicenowID(t)
	secret := map[string]string{"X-Webhook-Secret": st.incident.Secret}
	tests := []struct {
		name        string
		path        string
		contentType string
		headers     map[string]string
		body        string
		want        int
	}{
		{"wrong secret", st.incident.Path, "application/json", map[string]string{"X-Webhook-Secret": "not-the-secret"}, body(bogus), http.StatusUnauthorized},
		{"no secret", st.incident.Path, "application/json", nil, body(bogus), http.StatusUnauthorized},
		{"unknown path", "0123456789abcdef01234567", "application/json", secret, body(bogus), http.StatusUnauthorized},
		{"malformed path", "not-a-webhook-path", "application/json", secret, body(bogus), http.StatusUnauthorized},
		{"unsigned call to a signed webhook", st.change.Path, "application/json", secret, body(bogus), http.StatusUnauthorized},
		{"not JSON", st.incident.Path, "application/json", secret, `sys_id=` + bogus, http.StatusBadRequest},
		{"not a sys_id", st.incident.Path, "application/json", secret, body("x; drop table"), http.StatusBadRequest},
		{"too large", st.incident.Path, "application/json", secret, `{"sys_id":"` + bogus + `","pad":"` + strings.Repeat("x", 17<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{"not JSON content", st.incident.Path, "text/plain", secret, body(bogus), http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, resp := s.post(t, tc.path, tc.contentType, tc.headers, tc.body); got != tc.want {
				t.Errorf("POST ingest (%s) = %d %s; want %d", tc.name, got, resp, tc.want)
			}
		})
	}

	// A genuine call after them: it is enqueued and processed, so had any
	// of the others been enqueued, it would have been processed by now.
	if got, resp := s.post(t, st.incident.Path, "application/json", secret, body(rec["sys_id"])); got != http.StatusAccepted {
		t.Fatalf("POST ingest (genuine) = %d %s; want 202", got, resp)
	}
	s.waitSettled(t, gw, "incident", rec["sys_id"], time.Minute)
	s.eventually(t, "the intake queue to drain", 30*time.Second, func() (bool, string) {
		n := s.depth(t, schema.EnvIntakeQueueURL)
		return n == 0, fmt.Sprintf("%d messages", n)
	})
	tickets := s.tickets(t, gw)
	if len(tickets) != 1 {
		t.Errorf("tickets = %d; want only the genuine call's", len(tickets))
	}
	if jobs := s.jobs(t, gw); len(jobs) != 1 || jobs[0].SysID != rec["sys_id"] {
		t.Errorf("jobs = %v; want only the genuine call's", summarize(jobs))
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}
}

func servicenowID(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("%032x", time.Now().UnixNano())
}

// post sends one call to the ingest route through the HTTP API.
func (s *system) post(t *testing.T, path, contentType string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		strings.TrimSuffix(s.apiURL, "/")+"/api/webhooks/ingest/"+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST ingest: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(raw)
}

// TestWebhooksOff: with the instance's outbound calls off, every webhook
// is lost; the reconciler finds all 50 records created and updated, and
// each record's state is dispatched once.
func TestWebhooksOff(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	s.setOutbound(t, false)
	t.Cleanup(func() { s.setOutbound(t, true) })

	const incidents, changes = 40, 10
	ids := map[string][]string{}
	for i := range incidents {
		r := s.insert(t, "incident", incident(t, st.group, fmt.Sprint("Disk full on host ", i)))
		ids["incident"] = append(ids["incident"], r["sys_id"])
	}
	now := time.Now()
	for i := range changes {
		r := s.insert(t, "change_request", map[string]string{
			"short_description": unique(t, fmt.Sprint("Patch host ", i)), "type": "standard", "approval": "approved",
			"state": "-1", "assignment_group": st.group, "u_environment": "production",
			"start_date": simTime(now.Add(-time.Hour)), "end_date": simTime(now.Add(2 * time.Hour)),
		})
		ids["change_request"] = append(ids["change_request"], r["sys_id"])
	}
	for table, list := range ids {
		for _, id := range list {
			s.update(t, table, id, map[string]string{"priority": "2"})
		}
	}
	s.waitAllSettled(t, gw, ids, 2*time.Minute)
	s.checkDispatched(t, gw, ids, state.StatusAccepted)
	tickets := s.tickets(t, gw)
	for _, tk := range tickets {
		if tk.Source != queue.SourceReconcile {
			t.Errorf("ticket of %s: source %q; want %q (every webhook was lost)", tk.SysID, tk.Source, queue.SourceReconcile)
		}
	}
}

// waitAllSettled waits until every record's ticket holds a decision on the
// record's current version and the intake queue is empty.
func (s *system) waitAllSettled(t *testing.T, gw string, ids map[string][]string, timeout time.Duration) {
	t.Helper()
	total := 0
	for _, l := range ids {
		total += len(l)
	}
	s.eventually(t, fmt.Sprintf("all %d records to settle", total), timeout, func() (bool, string) {
		tickets := s.tickets(t, gw) // before the records: see waitSettled
		var pending []string
		for table, list := range ids {
			recs := s.records(t, table, list)
			for _, id := range list {
				if !settled(tickets[id], recs[id]) {
					pending = append(pending, fmt.Sprintf("%s %s (record %d, ticket %s)", table, id, recs[id].modCount(), describe(tickets[id])))
				}
			}
		}
		if len(pending) > 0 {
			slices.Sort(pending)
			return false, fmt.Sprintf("%d of %d pending, first: %s", len(pending), total, pending[0])
		}
		n := s.depth(t, schema.EnvIntakeQueueURL)
		return n == 0, fmt.Sprintf("all settled, %d messages still on the intake queue", n)
	})
}

// checkDispatched drains the dispatch queue and checks that every record
// has the status want, that its latest state was dispatched, that no
// state was dispatched twice and that the dead-letter queues are empty.
func (s *system) checkDispatched(t *testing.T, gw string, ids map[string][]string, want string) []queue.JobEvent {
	t.Helper()
	jobs := s.jobs(t, gw)
	if dup := duplicates(jobs); len(dup) > 0 {
		t.Errorf("record states dispatched more than once:\n%s", strings.Join(dup, "\n"))
	}
	per := bySysID(jobs)
	tickets := s.tickets(t, gw)
	for table, list := range ids {
		recs := s.records(t, table, list)
		for _, id := range list {
			rec, tk, js := recs[id], tickets[id], per[id]
			if tk.Status != want {
				t.Errorf("%s %s: ticket %s; want %s", table, id, describe(tk), want)
			}
			if len(js) == 0 {
				t.Errorf("%s %s: no job dispatched", table, id)
				continue
			}
			last := js[len(js)-1].Ticket
			got := map[string]string{"short_description": last.ShortDescription, "priority": last.Priority, "state": last.State}
			wantFields := map[string]string{"short_description": rec["short_description"], "priority": rec["priority"], "state": rec["state"]}
			if diff := cmp.Diff(wantFields, got); diff != "" {
				t.Errorf("%s %s: latest job is not the record's latest state (-record +job):\n%s", table, id, diff)
			}
		}
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}
	return jobs
}

// TestChaos: the instance answers 10% of requests with 5xx and 5% with
// 429, loses 20% of its webhooks and fires some Business Rules twice; the
// processor's first reads of some records fail outright (500 on every
// retry), so SQS must redeliver them. Once the system settles, every
// record's latest state has been dispatched, none twice, and nothing is in
// a dead-letter queue.
func TestChaos(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	if s.sim == nil {
		t.Skip("the chaos run sets the simulator's faults in-process: local system only")
	}
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	s.sim.SetFaults(snowsim.Faults{Seed: 11, ErrorRate: 0.10, Status429Rate: 0.05, DuplicateRate: 0.2})
	s.sim.SetOutboundFaults(snowsim.OutboundFaults{Seed: 12, DropRate: 0.20})
	// Every attempt of the client's retries fails for a picked record: the
	// processor reports it as a batch item failure.
	s.sim.SetReadFaults(snowsim.ReadFaults{Seed: 13, Rate: 0.3, Failures: servicenow.DefaultMaxAttempts})

	const incidents, changes, updates = 24, 6, 2
	ids := map[string][]string{}
	for i := range incidents {
		r := s.insert(t, "incident", incident(t, st.group, fmt.Sprint("Link down on switch ", i)))
		ids["incident"] = append(ids["incident"], r["sys_id"])
	}
	now := time.Now()
	for i := range changes {
		r := s.insert(t, "change_request", map[string]string{
			"short_description": unique(t, fmt.Sprint("Reboot host ", i)), "type": "standard", "approval": "approved",
			"state": "-1", "assignment_group": st.group, "u_environment": "production",
			"start_date": simTime(now.Add(-time.Hour)), "end_date": simTime(now.Add(2 * time.Hour)),
		})
		ids["change_request"] = append(ids["change_request"], r["sys_id"])
	}
	for u := range updates {
		for table, list := range ids {
			for i, id := range list {
				s.update(t, table, id, map[string]string{
					"priority":          fmt.Sprint(1 + (i+u)%4),
					"short_description": unique(t, fmt.Sprintf("%s %d, update %d", table, i, u+1)),
				})
			}
		}
	}
	s.waitAllSettled(t, gw, ids, 3*time.Minute)
	jobs := s.checkDispatched(t, gw, ids, state.StatusAccepted)

	stats := s.sim.Stats()
	faulted := s.sim.ReadFaulted()
	// What the event source logs when the processor reports batch item
	// failures: those messages were received again.
	redelivered := s.logs.sum("function reported failed messages; they will be retried", "failed")
	if len(faulted) == 0 || redelivered == 0 {
		t.Errorf("%d records' first reads failed, %d messages were reported failed: the redelivery path was not exercised",
			len(faulted), redelivered)
	}
	sources := map[string]int{}
	tickets := s.tickets(t, gw)
	for _, tk := range tickets {
		sources[tk.Source]++
	}
	changesMade := (incidents + changes) * (1 + updates)
	writes := stats.Requests[snowsim.RequestKey{Method: http.MethodPost, Status: http.StatusCreated}] +
		stats.Requests[snowsim.RequestKey{Method: http.MethodPatch, Status: http.StatusOK}]
	writes-- // the assignment group's insert fires no rule
	t.Logf("chaos: %d records, %d changes by the test, %d record writes in all (work notes included); "+
		"%d Business Rule runs (%d duplicates); %d webhooks attempted, %d lost, responses by status %s",
		incidents+changes, changesMade, writes, stats.RulesFired, stats.RulesFired-writes,
		stats.OutboundAttempted, stats.OutboundFailed, outboundStatuses(stats))
	t.Logf("chaos: the simulator answered %d of %d requests with 5xx and %d with 429; "+
		"%d records had every retry of their first read fail; the processor reported %d messages failed, which SQS redelivered",
		countStatus(stats, func(c int) bool { return c >= 500 }), countStatus(stats, func(int) bool { return true }),
		countStatus(stats, func(c int) bool { return c == http.StatusTooManyRequests }), len(faulted), redelivered)
	t.Logf("chaos: %d jobs dispatched for %d records, none twice; tickets by last source %v; dead-letter queues empty",
		len(jobs), incidents+changes, sources)
}

func countStatus(st snowsim.Stats, match func(int) bool) int {
	n := 0
	for k, v := range st.Requests {
		if match(k.Status) {
			n += v
		}
	}
	return n
}

func outboundStatuses(st snowsim.Stats) string {
	b, _ := json.Marshal(st.OutboundStatus)
	return string(b)
}
