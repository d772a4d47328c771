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

	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
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
// Rules loaded into the simulator; an incident inserted there gets one job
// (job.created, a work note naming the job), the demo engine answers it,
// and the writer resolves the record with the engine's summary; the echoes
// of our own writes are stale or unchanged and cancel nothing. A person
// reopening it starts a second episode; an edit of an unmirrored field of
// the resolved incident is news for no job.
func TestIncident(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true, "--org", "e2e-org")
	gw := st.gateway.ID

	rec := s.insert(t, "incident", incident(t, st.group, "Edge router drops BGP sessions"))
	id := rec["sys_id"]
	tk := s.waitJob(t, gw, "incident", id, state.JobSucceeded, 2*time.Minute)
	job := tk.Job.ID
	// Every later version is one of our writes (the acknowledgement, the
	// engine's work note, its comment, the resolve): the processor finds
	// each stale or unchanged, whichever of webhook and reconciler brings it.
	if s.logs != nil {
		got := s.logs.count("message processed", map[string]string{"gateway_id": gw, "sys_id": id}, "status")
		others := 0
		for st, n := range got {
			if st != state.StatusAccepted && st != state.OutcomeStale && st != state.OutcomeUnchanged {
				others += n
			}
		}
		if got[state.StatusAccepted] != 1 || others > 0 {
			t.Errorf("the processor's decisions on the incident: %v; want one accepted (the insert), the echoes of our writes stale or unchanged", got)
		}
	}
	evs := ofRecord(s.events(t, gw), id)
	want := []eventSummary{{queue.EventJobCreated, job, 1, 1}}
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after insert (-want +got):\n%s", diff)
	}
	created := evs[0]
	if created.Reason != queue.ReasonNewRecord || created.Org != "e2e-org" || created.GatewayName != st.gateway.Name ||
		created.SysID != id || created.Table != "incident" || created.Number != rec["number"] ||
		created.Ticket.ShortDescription != rec["short_description"] || created.Ticket.Priority != "3" {
		t.Errorf("job.created = %s; want reason %q, org e2e-org, gateway %s, the record %s %s as inserted",
			created.raw, queue.ReasonNewRecord, st.gateway.Name, rec["number"], id)
	}
	// ticket show prints the job: its one event, and each result once.
	shown := s.show(t, gw, "incident", id)
	if shown.Job == nil || shown.Job.ID != job || shown.Job.State != state.JobSucceeded || shown.Job.Episode != 1 {
		t.Fatalf("ticket show: %s; want job %s, succeeded, episode 1", describe(shown), job)
	}
	if got := shown.Job.Events; len(got) != 1 || got[0].EventID != created.EventID || got[0].Type != queue.EventJobCreated || got[0].Sequence != 1 {
		t.Errorf("ticket show: job events %+v; want the job.created %s", got, created.EventID)
	}

	// The engine answered in_progress at once and succeeded after its
	// delay; each result is recorded once on the ticket and written once.
	rs := s.results(t, job)
	statuses := map[string]int{}
	for _, r := range rs {
		statuses[r.Status]++
	}
	if statuses[queue.ResultInProgress] != 1 || statuses[queue.ResultSucceeded] != 1 || len(rs) != 2 {
		t.Fatalf("the engine's results for job %s: %v; want one in_progress and one succeeded", job, statuses)
	}
	checkRecorded(t, shown, rs)
	final := rs[slices.IndexFunc(rs, func(r result) bool { return r.Status == queue.ResultSucceeded })]
	started := rs[slices.IndexFunc(rs, func(r result) bool { return r.Status == queue.ResultInProgress })]
	rec = s.get(t, "incident", id)
	if rec["state"] != "6" || rec["close_code"] != registry.DefaultResolveCloseCode || rec["close_notes"] != final.Summary {
		t.Errorf("record after the succeeded result: state %q close_code %q close_notes %q; want 6, %q, %q",
			rec["state"], rec["close_code"], rec["close_notes"], registry.DefaultResolveCloseCode, final.Summary)
	}
	j := s.journal(t, id)
	notes, comments := ofField(j, "work_notes"), ofField(j, "comments")
	if containing(notes, job) < 1 || containing(notes, started.WorkNote) != 1 || containing(comments, final.PublicComment) != 1 {
		t.Errorf("journal = %q; want the job's acknowledgement naming %s, the engine's work note %q and its comment %q once each",
			texts(j), job, started.WorkNote, final.PublicComment)
	}
	if dup := repeated(j); len(dup) > 0 {
		t.Errorf("journal entries written more than once: %q", dup)
	}

	// A person reopens it: a new episode, a new job, answered and
	// resolved again.
	s.someone().update(t, "incident", id, map[string]string{"state": "2"})
	tk = s.waitTicket(t, gw, "incident", id, "a second job, succeeded", 2*time.Minute, func(tk ticket) bool {
		return tk.Job != nil && tk.Job.Episode == 2 && tk.Job.State == state.JobSucceeded && s.answered(tk)
	})
	evs = ofRecord(s.events(t, gw), id)
	want = append(want, eventSummary{queue.EventJobCreated, tk.Job.ID, 1, 2})
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after the incident was reopened (-want +got):\n%s", diff)
	}
	if tk.Job.ID == job || evs[1].Reason != queue.ReasonReopened {
		t.Errorf("the reopened incident's job.created: job %s, reason %q; want a new job (not %s), reason %q",
			tk.Job.ID, evs[1].Reason, job, queue.ReasonReopened)
	}

	// Nothing mirrored changes: no event.
	before := s.get(t, "incident", id)
	s.someone().update(t, "incident", id, map[string]string{"category": "network", "impact": "1"})
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.SysModCount <= before.modCount() {
		t.Errorf("ticket after an update of unmirrored fields: %s; want a newer sys_mod_count than %d", describe(tk), before.modCount())
	}
	if got := ofRecord(s.events(t, gw), id); len(got) != len(evs) {
		t.Errorf("events after an update of unmirrored fields: %v; want none new", summarize(got[len(evs):]))
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL, schema.EnvResultsDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}
	s.logCounts(t, gw)
}

// checkRecorded checks that the ticket's job recorded each result once,
// and only those.
func checkRecorded(t *testing.T, tk ticket, rs []result) {
	t.Helper()
	var want []string
	for _, r := range rs {
		want = append(want, r.ResultID)
	}
	got := tk.resultIDs()
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results recorded on the ticket's job %s (-sent +recorded):\n%s", tk.Job.ID, diff)
	}
}

// TestChangeRequests: only approved change requests in Scheduled or
// Implement act, and only within their window: not approved is
// out_of_scope, a window ahead is deferred and gets its job once it opens
// (the reconciler re-enqueues it), a window past is expired. The job's
// success moves the change to Review; re-approved for a new window, the
// change gets a second job.
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
		if tk := s.waitSettled(t, gw, "change_request", c.sysID, time.Minute); tk.Status != c.status || tk.Job != nil {
			t.Errorf("%s: ticket %s; want status %s and no job", c.name, describe(tk), c.status)
		}
	}
	if evs := s.events(t, gw); len(evs) != 0 {
		t.Fatalf("events before any window opened: %v; want none", summarize(evs))
	}

	// The window now opens in a few seconds: deferred until then (unless
	// processing took longer), then a job when the reconciler finds it
	// due, with no webhook; the engine succeeds, the change goes to Review.
	s.update(t, "change_request", ahead, map[string]string{"start_date": simTime(time.Now().Add(3 * time.Second))})
	tk := s.waitJob(t, gw, "change_request", ahead, state.JobSucceeded, 2*time.Minute)
	evs, _ := distinct(s.events(t, gw))
	if diff := cmp.Diff([]eventSummary{{queue.EventJobCreated, tk.Job.ID, 1, 1}}, summarize(evs)); diff != "" {
		t.Fatalf("events once the window opened (-want +got):\n%s", diff)
	}
	if ev := evs[0]; ev.SysID != ahead || ev.Ticket.Approval != "approved" || ev.Reason != queue.ReasonWindowOpened {
		t.Errorf("job.created = %s; want change %s, approved, reason %q", ev.raw, ahead, queue.ReasonWindowOpened)
	} else {
		t.Logf("change request's job created from source %q", ev.Source)
	}
	rs := s.results(t, tk.Job.ID)
	checkRecorded(t, tk, rs)
	final := slices.IndexFunc(rs, func(r result) bool { return r.Status == queue.ResultSucceeded })
	rec := s.get(t, "change_request", ahead)
	if final < 0 || rec["state"] != "0" || rec["close_code"] != "successful" || rec["close_notes"] != rs[final].Summary {
		t.Errorf("change after the job: state %q close_code %q close_notes %q, results %d; want a succeeded result, state 0 (Review), close code successful, its summary",
			rec["state"], rec["close_code"], rec["close_notes"], len(rs))
	}

	// Sent back for approval, then re-approved for a new window, open now:
	// a second episode, a new job.
	p := s.someone()
	p.update(t, "change_request", ahead, map[string]string{"approval": "requested", "state": "-4"})
	s.waitSettled(t, gw, "change_request", ahead, time.Minute)
	p.update(t, "change_request", ahead, map[string]string{
		"approval": "approved", "state": "-2", "start_date": simTime(time.Now().Add(-time.Minute)), "end_date": simTime(time.Now().Add(time.Hour)),
	})
	second := s.waitTicket(t, gw, "change_request", ahead, "a second job, succeeded", 2*time.Minute, func(tk ticket) bool {
		return tk.Job != nil && tk.Job.Episode == 2 && tk.Job.State == state.JobSucceeded && s.answered(tk)
	})
	evs = ofRecord(s.events(t, gw), ahead)
	want := []eventSummary{{queue.EventJobCreated, tk.Job.ID, 1, 1}, {queue.EventJobCreated, second.Job.ID, 1, 2}}
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after the change was re-approved (-want +got):\n%s", diff)
	}
	if second.Job.ID == tk.Job.ID || evs[1].Reason != queue.ReasonReapproved {
		t.Errorf("the re-approved change's job.created: job %s, reason %q; want a new job (not %s), reason %q",
			second.Job.ID, evs[1].Reason, tk.Job.ID, queue.ReasonReapproved)
	}
	s.logCounts(t, gw)
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
	if evs, _ := distinct(s.events(t, gw)); len(evs) != 1 || evs[0].SysID != rec["sys_id"] || evs[0].Type != queue.EventJobCreated {
		t.Errorf("events = %v; want only the genuine call's job.created", summarize(evs))
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL, schema.EnvResultsDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}
	s.logCounts(t, gw)
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
// is lost; the reconciler finds all 50 records created and updated: each
// gets one job, its update reaches the job (in job.created or a
// job.updated), no record state reaches the engine twice, and the
// engine's work notes are written once each.
func TestWebhooksOff(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	s.setOutbound(t, false)
	t.Cleanup(func() { s.setOutbound(t, true) })

	// Held open: the engine answers with work notes only, so each
	// record's last state is the test's.
	const incidents, changes = 40, 10
	ids := map[string][]string{}
	for i := range incidents {
		r := s.insert(t, "incident", incident(t, st.group, fmt.Sprint(demoengine.MarkerHold, " Disk full on host ", i)))
		ids["incident"] = append(ids["incident"], r["sys_id"])
	}
	now := time.Now()
	for i := range changes {
		r := s.insert(t, "change_request", map[string]string{
			"short_description": unique(t, fmt.Sprint(demoengine.MarkerHold, " Patch host ", i)), "type": "standard", "approval": "approved",
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
	evs := s.checkEvents(t, gw, ids, state.StatusAccepted)
	s.waitAnswered(t, gw, ids, evs, 2*time.Minute)
	s.checkJournals(t, gw, ids)
	tickets := s.tickets(t, gw)
	for _, tk := range tickets {
		if tk.Source != queue.SourceReconcile {
			t.Errorf("ticket of %s: source %q; want %q (every webhook was lost)", tk.SysID, tk.Source, queue.SourceReconcile)
		}
	}
	s.logCounts(t, gw)
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

// checkEvents checks the gateway's job events against the records: each
// record's ticket has the status want and one open job, created once (a
// re-send carries the same event id, which the engine drops), whose events
// the ticket records, numbered from 1; the latest event carries the
// record's latest state; no record state reached the engine under two
// event ids; and the dead-letter queues are empty. It returns the
// distinct events.
func (s *system) checkEvents(t *testing.T, gw string, ids map[string][]string, want string) []event {
	t.Helper()
	evs, resent := distinct(s.events(t, gw))
	if resent > 0 {
		t.Logf("%d events were sent again with an id already sent", resent)
	}
	if dup := sameContent(evs); len(dup) > 0 {
		t.Errorf("record states sent to the engine in more than one event:\n%s", strings.Join(dup, "\n"))
	}
	tickets := s.tickets(t, gw)
	for table, list := range ids {
		recs := s.records(t, table, list)
		for _, id := range list {
			rec, tk, es := recs[id], tickets[id], ofRecord(evs, id)
			if tk.Status != want || tk.Job == nil || tk.Job.State != state.JobOpen {
				t.Errorf("%s %s: ticket %s; want %s with an open job", table, id, describe(tk), want)
				continue
			}
			if created := ofType(es, queue.EventJobCreated); len(created) != 1 {
				t.Errorf("%s %s: %d job.created events %v; want one", table, id, len(created), summarize(created))
				continue
			}
			var seen []string
			for i, ev := range es {
				if ev.JobID != tk.Job.ID || ev.Sequence != i+1 || ev.Episode != 1 || ev.Type == queue.EventJobCancelled {
					t.Errorf("%s %s: events %v; want the ticket's job %s, numbered from 1, none cancelling it", table, id, summarize(es), tk.Job.ID)
					break
				}
				seen = append(seen, ev.EventID)
			}
			var recorded []string
			for _, e := range tk.Job.Events {
				recorded = append(recorded, e.EventID)
			}
			if diff := cmp.Diff(seen, recorded); diff != "" {
				t.Errorf("%s %s: the events the ticket records are not those sent (-sent +recorded):\n%s", table, id, diff)
			}
			last := es[len(es)-1].Ticket
			got := map[string]string{"short_description": last.ShortDescription, "priority": last.Priority, "state": last.State}
			wantFields := map[string]string{"short_description": rec["short_description"], "priority": rec["priority"], "state": rec["state"]}
			if diff := cmp.Diff(wantFields, got); diff != "" {
				t.Errorf("%s %s: the latest event does not carry the record's latest state (-record +event):\n%s", table, id, diff)
			}
		}
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL, schema.EnvResultsDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}
	return evs
}

// answers are the ids of the results the demo engine answers an event
// with (see demoengine).
func answers(ev event) []string {
	switch ev.Type {
	case queue.EventJobCreated:
		ids := []string{demoengine.ResultIDFor(ev.EventID, demoengine.KindStarted)}
		if !strings.Contains(strings.ToLower(ev.Ticket.ShortDescription), demoengine.MarkerHold) {
			ids = append(ids, demoengine.ResultIDFor(ev.EventID, demoengine.KindFinal))
		}
		return ids
	case queue.EventJobUpdated, queue.EventJobFollowUp:
		return []string{demoengine.ResultIDFor(ev.EventID, demoengine.KindAck)}
	}
	return nil
}

// waitAnswered waits until the ticket of every record has recorded the
// engine's answer to each event of its current job, each once, and is
// settled on the record's latest version.
func (s *system) waitAnswered(t *testing.T, gw string, ids map[string][]string, evs []event, timeout time.Duration) {
	t.Helper()
	s.eventually(t, "the engine's answers to be recorded", timeout, func() (bool, string) {
		tickets := s.tickets(t, gw)
		var pending []string
		for table, list := range ids {
			recs := s.records(t, table, list)
			for _, id := range list {
				tk := tickets[id]
				if tk.Job == nil {
					pending = append(pending, id+" (no job)")
					continue
				}
				var want []string
				for _, ev := range ofRecord(evs, id) {
					if ev.JobID == tk.Job.ID {
						want = append(want, answers(ev)...)
					}
				}
				got := tk.resultIDs()
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(want, got) || !settled(tk, recs[id]) {
					pending = append(pending, fmt.Sprintf("%s %s (results %d of %d, ticket %s)", table, id, len(got), len(want), describe(tk)))
				}
			}
		}
		slices.Sort(pending)
		if len(pending) > 0 {
			return false, fmt.Sprintf("%d pending, first: %s", len(pending), pending[0])
		}
		return true, ""
	})
}

// checkJournals checks that no record's journal holds an entry twice and
// that the integration user's entries are exactly those the job calls
// for: the acknowledgement of its job.created and one entry per journal
// write of the outbound mapping.
func (s *system) checkJournals(t *testing.T, gw string, ids map[string][]string) {
	t.Helper()
	byID := map[string]result{}
	for _, r := range s.results(t) {
		byID[r.ResultID] = r
	}
	tickets := s.tickets(t, gw)
	for table, list := range ids {
		for _, id := range list {
			j := s.journal(t, id)
			if dup := repeated(j); len(dup) > 0 {
				t.Errorf("%s %s: journal entries written more than once: %q", table, id, dup)
			}
			tk := tickets[id]
			if tk.Job == nil {
				continue
			}
			j = byAuthor(j, s.integrationUser)
			notes, comments := 1, 0 // the acknowledgement
			for _, rid := range tk.resultIDs() {
				r, ok := byID[rid]
				if !ok {
					r = s.sent[rid]
				}
				n, c := journalWrites(table, r.JobResult)
				notes, comments = notes+n, comments+c
			}
			if got := len(ofField(j, "work_notes")); got != notes {
				t.Errorf("%s %s: %d work notes %q; want %d", table, id, got, texts(ofField(j, "work_notes")), notes)
			}
			if got := len(ofField(j, "comments")); got != comments {
				t.Errorf("%s %s: %d comments %q; want %d", table, id, got, texts(ofField(j, "comments")), comments)
			}
		}
	}
}

// journalWrites is how many work notes and comments the default outbound
// mapping writes for a result.
func journalWrites(table string, r queue.JobResult) (notes, comments int) {
	has := func(vs ...string) int {
		for _, v := range vs {
			if strings.TrimSpace(v) != "" {
				return 1
			}
		}
		return 0
	}
	switch r.Status {
	case queue.ResultInProgress, queue.ResultFailed:
		return has(r.WorkNote, r.Summary), 0
	case queue.ResultSucceeded:
		if table == "change_request" {
			return 0, 0
		}
		return 0, has(r.PublicComment, r.Summary)
	case queue.ResultPartial:
		return has(r.WorkNote, r.Summary), has(r.PublicComment, r.Summary)
	}
	return 0, 0
}

// TestChaos: the instance answers 10% of requests with 5xx and 5% with
// 429, loses 20% of its webhooks and fires some Business Rules twice; the
// processor's first reads of some records fail outright (500 on every
// retry), so SQS must redeliver them. Once the system settles, every
// record has one job, created once, its latest state has reached the
// engine, no state twice; the engine's work notes are written once each.
// Then every job's final result is sent twice, as an engine that retries
// does: each is applied once (every record resolved or in Review, no
// journal entry twice, no job cancelled by our own writes), and nothing is
// in a dead-letter queue.
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

	// Held open, so that the engine answers with work notes only until the
	// test sends the final results.
	const incidents, changes, updates = 24, 6, 2
	ids := map[string][]string{}
	for i := range incidents {
		r := s.insert(t, "incident", incident(t, st.group, fmt.Sprint(demoengine.MarkerHold, " Link down on switch ", i)))
		ids["incident"] = append(ids["incident"], r["sys_id"])
	}
	now := time.Now()
	for i := range changes {
		r := s.insert(t, "change_request", map[string]string{
			"short_description": unique(t, fmt.Sprint(demoengine.MarkerHold, " Reboot host ", i)), "type": "standard", "approval": "approved",
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
					"short_description": unique(t, fmt.Sprintf("%s %s %d, update %d", demoengine.MarkerHold, table, i, u+1)),
				})
			}
		}
	}
	s.waitAllSettled(t, gw, ids, 3*time.Minute)
	evs := s.checkEvents(t, gw, ids, state.StatusAccepted)
	s.waitAnswered(t, gw, ids, evs, 3*time.Minute)
	s.checkJournals(t, gw, ids)

	// The final results, each sent twice.
	tickets := s.tickets(t, gw)
	var finals []result
	for table, list := range ids {
		for _, id := range list {
			tk := tickets[id]
			if tk.Job == nil {
				continue
			}
			r := s.sendResult(t, queue.JobResult{
				JobID: tk.Job.ID, ResultID: "final-" + tk.Job.ID, Status: queue.ResultSucceeded,
				Summary:       fmt.Sprintf("Chaos test: %s %s done.", table, tk.Number),
				PublicComment: fmt.Sprintf("Chaos test: %s is fixed.", tk.Number),
			})
			finals = append(finals, r)
		}
	}
	s.resend(t, finals...)
	s.eventually(t, "every job to succeed with its final result recorded", 4*time.Minute, func() (bool, string) {
		tickets := s.tickets(t, gw)
		var pending []string
		for table, list := range ids {
			recs := s.records(t, table, list)
			for _, id := range list {
				tk, rec := tickets[id], recs[id]
				done := map[string]string{"incident": "6", "change_request": "0"}[table]
				if tk.Job == nil || tk.Job.State != state.JobSucceeded || !slices.Contains(tk.resultIDs(), "final-"+tk.Job.ID) ||
					rec["state"] != done || !settled(tk, rec) {
					pending = append(pending, fmt.Sprintf("%s %s (record state %q, ticket %s)", table, id, rec["state"], describe(tk)))
				}
			}
		}
		slices.Sort(pending)
		if len(pending) > 0 {
			return false, fmt.Sprintf("%d pending, first: %s", len(pending), pending[0])
		}
		return true, ""
	})
	if after, _ := distinct(s.events(t, gw)); len(after) != len(evs) {
		t.Errorf("events after the final results: %v; want none new (our own writes are news for no job)", summarize(after[len(evs):]))
	}
	s.checkJournals(t, gw, ids)
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL, schema.EnvResultsDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}

	stats := s.sim.Stats()
	faulted := s.sim.ReadFaulted()
	// What the event source logs when the processor reports batch item
	// failures: those messages were received again.
	redelivered := s.logs.sum("function reported failed messages; they will be retried", "failed",
		map[string]string{"function": s.fnPrefix + localrun.Processor})
	if len(faulted) == 0 || redelivered == 0 {
		t.Errorf("%d records' first reads failed, %d messages were reported failed: the redelivery path was not exercised",
			len(faulted), redelivered)
	}
	sources := map[string]int{}
	for _, tk := range s.tickets(t, gw) {
		sources[tk.Source]++
	}
	changesMade := (incidents + changes) * (1 + updates)
	writes := stats.Requests[snowsim.RequestKey{Method: http.MethodPost, Status: http.StatusCreated}] +
		stats.Requests[snowsim.RequestKey{Method: http.MethodPatch, Status: http.StatusOK}]
	writes-- // the assignment group's insert fires no rule
	t.Logf("chaos: %d records, %d changes by the test, %d record writes in all (notes and results included); "+
		"%d Business Rule runs (%d duplicates); %d webhooks attempted, %d lost, responses by status %s",
		incidents+changes, changesMade, writes, stats.RulesFired, stats.RulesFired-writes,
		stats.OutboundAttempted, stats.OutboundFailed, outboundStatuses(stats))
	t.Logf("chaos: the simulator answered %d of %d requests with 5xx and %d with 429; "+
		"%d records had every retry of their first read fail; the processor reported %d messages failed, which SQS redelivered",
		countStatus(stats, func(c int) bool { return c >= 500 }), countStatus(stats, func(int) bool { return true }),
		countStatus(stats, func(c int) bool { return c == http.StatusTooManyRequests }), len(faulted), redelivered)
	t.Logf("chaos: %d events for %d records, no job created twice, no state twice; %d final results sent twice, each applied once; "+
		"tickets by last source %v; dead-letter queues empty", len(evs), incidents+changes, len(finals), sources)
	s.logCounts(t, gw)
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
