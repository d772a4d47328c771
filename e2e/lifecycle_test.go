package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// resultOf returns the one result of a status among rs, failing the test
// when there is not exactly one.
func resultOf(t *testing.T, rs []result, status string) result {
	t.Helper()
	var found []result
	for _, r := range rs {
		if r.Status == status {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s results among %d; want one", len(found), status, len(rs))
	}
	return found[0]
}

// TestIncidentEscalation: the engine fails one incident ([fail]) and does
// part of another ([partial]); the writer escalates both to the gateway's
// escalation group with the engine's work note (and, for partial, its
// public comment), and the jobs end escalated. Leaving the gateway's
// group filter by our own reassignment cancels nothing.
func TestIncidentEscalation(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	escName := awstest.UniqueName("e2e-escalation-")
	esc := s.insert(t, "sys_user_group", map[string]string{"name": escName, "description": t.Name()})["sys_id"]
	st := s.createGateway(t, true, "--escalation-group", escName)
	gw := st.gateway.ID
	if st.gateway.EscalationGroupID != esc {
		t.Fatalf("gateway create resolved --escalation-group %s to %q, want %s", escName, st.gateway.EscalationGroupID, esc)
	}

	failed := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerFail+" Core switch unreachable"))["sys_id"]
	partial := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerPartial+" VPN tunnel flapping"))["sys_id"]
	for _, c := range []struct {
		name, sysID, status string
	}{
		{"failed", failed, queue.ResultFailed},
		{"partial", partial, queue.ResultPartial},
	} {
		tk := s.waitJob(t, gw, "incident", c.sysID, state.JobEscalated, 2*time.Minute)
		rs := s.results(t, tk.Job.ID)
		checkRecorded(t, tk, rs)
		final := resultOf(t, rs, c.status)
		rec := s.get(t, "incident", c.sysID)
		if rec["assignment_group"] != esc || rec["state"] == "6" {
			t.Errorf("%s: record assignment_group %q state %q; want the escalation group %s, not resolved",
				c.name, rec["assignment_group"], rec["state"], esc)
		}
		j := s.journal(t, c.sysID)
		notes, comments := ofField(j, "work_notes"), ofField(j, "comments")
		if final.WorkNote == "" || containing(notes, final.WorkNote) != 1 {
			t.Errorf("%s: work notes %q; want the engine's %q once", c.name, texts(notes), final.WorkNote)
		}
		wantComments := 0
		if c.status == queue.ResultPartial {
			wantComments = 1
			if containing(comments, final.PublicComment) != 1 {
				t.Errorf("%s: comments %q; want the engine's %q once", c.name, texts(comments), final.PublicComment)
			}
		}
		if len(comments) != wantComments {
			t.Errorf("%s: comments %q; want %d", c.name, texts(comments), wantComments)
		}
		if dup := repeated(j); len(dup) > 0 {
			t.Errorf("%s: journal entries written more than once: %q", c.name, dup)
		}
	}
	// The escalation's echo (by webhook no longer: the record left the
	// rule's condition; by the reconciler) is news for no job.
	evs := s.events(t, gw)
	for _, id := range []string{failed, partial} {
		if got := summarize(ofRecord(evs, id)); len(got) != 1 || got[0].Type != queue.EventJobCreated {
			t.Errorf("events of %s: %v; want its job.created only", id, got)
		}
	}
	s.checkJournals(t, gw, map[string][]string{"incident": {failed, partial}})
	s.logCounts(t, gw)
}

// TestChangeRequestLifecycle: an approved change request Scheduled within
// its window gets a job; moved to Implement by a person, that job gets a
// job.updated (no second job); closed by a person, a job.cancelled.
func TestChangeRequestLifecycle(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	p := s.someone()
	now := time.Now()
	id := s.insert(t, "change_request", map[string]string{
		"short_description": unique(t, demoengine.MarkerHold+" Upgrade core router firmware"), "type": "normal",
		"approval": "approved", "state": "-2", "assignment_group": st.group, "cmdb_ci": snowsim.DemoCI("sw-core-02"),
		"u_environment": "production", "start_date": simTime(now.Add(-time.Hour)), "end_date": simTime(now.Add(2 * time.Hour)),
	})["sys_id"]
	tk := s.waitJob(t, gw, "change_request", id, state.JobOpen, time.Minute)
	if tk.Status != state.StatusAccepted {
		t.Errorf("ticket of the Scheduled change: %s; want accepted", describe(tk))
	}
	job := tk.Job.ID
	evs := ofRecord(s.events(t, gw), id)
	if diff := cmp.Diff([]eventSummary{{queue.EventJobCreated, job, 1, 1}}, summarize(evs)); diff != "" {
		t.Fatalf("events of the Scheduled change (-want +got):\n%s", diff)
	}
	s.waitAnswered(t, gw, map[string][]string{"change_request": {id}}, evs, time.Minute)

	// Scheduled → Implement: news for the job, not a new one.
	p.update(t, "change_request", id, map[string]string{"state": "-1"})
	s.eventually(t, "a job.updated", time.Minute, func() (bool, string) {
		evs = ofRecord(s.events(t, gw), id)
		return len(ofType(evs, queue.EventJobUpdated)) > 0, fmt.Sprint(summarize(evs))
	})
	tk = s.waitSettled(t, gw, "change_request", id, time.Minute)
	evs = ofRecord(s.events(t, gw), id)
	want := []eventSummary{{queue.EventJobCreated, job, 1, 1}, {queue.EventJobUpdated, job, 2, 1}}
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after the change moved to Implement (-want +got):\n%s", diff)
	}
	if u := evs[1]; !slices.Contains(u.ChangedFields, "state") || u.Ticket.State != "-1" {
		t.Errorf("job.updated = %s; want changed_fields with state and the Implement (-1) snapshot", u.raw)
	}
	if tk.Job == nil || tk.Job.ID != job || tk.Job.State != state.JobOpen {
		t.Errorf("ticket after the change moved to Implement: %s; want job %s still open", describe(tk), job)
	}
	// The engine acknowledges the update with a work note.
	s.waitAnswered(t, gw, map[string][]string{"change_request": {id}}, evs, time.Minute)

	// Closed by a person: the job is cancelled.
	p.update(t, "change_request", id, map[string]string{"state": "3", "close_code": "successful", "close_notes": "Done by hand."})
	tk = s.waitJob(t, gw, "change_request", id, state.JobCancelled, time.Minute)
	evs = ofRecord(s.events(t, gw), id)
	want = append(want, eventSummary{queue.EventJobCancelled, job, 3, 1})
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after a person closed the change (-want +got):\n%s", diff)
	}
	if c := evs[2]; c.Reason == "" {
		t.Errorf("job.cancelled = %s; want a reason", c.raw)
	}
	if n := len(tk.Job.Events); n != 3 {
		t.Errorf("ticket's job records %d events; want 3", n)
	}
	s.checkJournals(t, gw, map[string][]string{"change_request": {id}})
	s.logCounts(t, gw)
}

// TestSemiAutomatic: a semi-automatic gateway leaves an in-scope incident
// awaiting a mention; a comment without the mention token changes
// nothing; the first comment with it creates the job, its text and author
// in the event; a later work note with it is a job.follow_up, and the
// engine's acknowledgement (which quotes it) is news for no job.
func TestSemiAutomatic(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true, "--mode", registry.ModeSemiAutomatic)
	gw := st.gateway.ID
	p := s.person(t)
	id := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerHold+" Printer queue stuck on floor 3"))["sys_id"]
	tk := s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.Status != state.StatusAwaitingMention || tk.Job != nil {
		t.Fatalf("ticket of a new incident on a semi-automatic gateway: %s; want %s, no job", describe(tk), state.StatusAwaitingMention)
	}
	p.update(t, "incident", id, map[string]string{"comments": "Anyone seen this before?"})
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	if tk.Status != state.StatusAwaitingMention || tk.Job != nil {
		t.Errorf("ticket after a comment without a mention: %s; want %s, no job", describe(tk), state.StatusAwaitingMention)
	}
	if evs := s.events(t, gw); len(evs) != 0 {
		t.Fatalf("events before any mention: %v; want none", summarize(evs))
	}

	ask := registry.DefaultMention + " please take a look"
	p.update(t, "incident", id, map[string]string{"comments": ask})
	tk = s.waitJob(t, gw, "incident", id, state.JobOpen, time.Minute)
	job := tk.Job.ID
	evs := ofRecord(s.events(t, gw), id)
	if diff := cmp.Diff([]eventSummary{{queue.EventJobCreated, job, 1, 1}}, summarize(evs)); diff != "" {
		t.Fatalf("events after the mention (-want +got):\n%s", diff)
	}
	if m := evs[0].Message; evs[0].Reason != queue.ReasonMention || m == nil || m.Text != ask || m.Author != s.personUser || m.Field != "comments" {
		t.Errorf("job.created = %s; want reason %q and the comment %q by %s", evs[0].raw, queue.ReasonMention, ask, s.personUser)
	}
	s.waitAnswered(t, gw, map[string][]string{"incident": {id}}, evs, time.Minute)

	more := registry.DefaultMention + " the uplink was replaced yesterday"
	p.update(t, "incident", id, map[string]string{"work_notes": more})
	s.eventually(t, "a job.follow_up", time.Minute, func() (bool, string) {
		evs = ofRecord(s.events(t, gw), id)
		return len(ofType(evs, queue.EventJobFollowUp)) > 0, fmt.Sprint(summarize(evs))
	})
	// The engine's acknowledgement quotes the follow-up; once it is
	// written and its echo processed, no event follows it.
	s.waitAnswered(t, gw, map[string][]string{"incident": {id}}, evs, time.Minute)
	evs = ofRecord(s.events(t, gw), id)
	want := []eventSummary{{queue.EventJobCreated, job, 1, 1}, {queue.EventJobFollowUp, job, 2, 1}}
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after the follow-up (-want +got):\n%s", diff)
	}
	if m := evs[1].Message; m == nil || m.Text != more || m.Author != s.personUser || m.Field != "work_notes" {
		t.Errorf("job.follow_up = %s; want the work note %q by %s", evs[1].raw, more, s.personUser)
	}
	acks := 0
	for _, r := range s.results(t, job) {
		if strings.Contains(r.WorkNote, "the uplink was replaced yesterday") {
			acks++
		}
	}
	if acks != 1 {
		t.Errorf("%d of the engine's results quote the follow-up; want its acknowledgement", acks)
	}
	s.checkJournals(t, gw, map[string][]string{"incident": {id}})
	s.logCounts(t, gw)
}

// TestRedelivery: a webhook the instance sends twice and results the
// writer receives again change nothing: one job.updated for the edit, no
// journal entry twice, no result recorded twice, no event after them.
func TestRedelivery(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	id := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerHold+" Storage array degraded"))["sys_id"]
	tk := s.waitJob(t, gw, "incident", id, state.JobOpen, time.Minute)
	job := tk.Job.ID
	s.waitAnswered(t, gw, map[string][]string{"incident": {id}}, s.events(t, gw), time.Minute)

	// Every webhook is sent twice, as the ECC queue now and then does.
	if s.sim != nil {
		before, dup := s.sim.Stats().OutboundResent, ""
		s.sim.SetECCQueue(snowsim.ECCQueue{Delay: snowsim.DefaultECCDelay, ResendRate: 1})
		upd := s.someone().update(t, "incident", id, map[string]string{"priority": "2"})
		s.eventually(t, "the webhook to be sent twice and both processed", time.Minute, func() (bool, string) {
			resent := s.sim.Stats().OutboundResent - before
			n := s.logs.count("message processed", map[string]string{
				"gateway_id": gw, "sys_id": id, "source": queue.SourceWebhook, "sys_mod_count": fmt.Sprint(upd.modCount()),
			}, "status")
			total := 0
			for _, c := range n {
				total += c
			}
			dup = fmt.Sprintf("%d webhooks sent again; the processor's statuses for version %d from webhooks: %v", resent, upd.modCount(), n)
			return resent >= 1 && total >= 2, dup
		})
		t.Log(dup)
		s.sim.SetECCQueue(snowsim.ECCQueue{Delay: snowsim.DefaultECCDelay})
	} else {
		s.update(t, "incident", id, map[string]string{"priority": "2"})
	}
	s.waitSettled(t, gw, "incident", id, time.Minute)
	evs := ofRecord(s.events(t, gw), id)
	want := []eventSummary{{queue.EventJobCreated, job, 1, 1}, {queue.EventJobUpdated, job, 2, 1}}
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Fatalf("events after an edit whose webhook came twice (-want +got):\n%s", diff)
	}
	s.waitAnswered(t, gw, map[string][]string{"incident": {id}}, evs, time.Minute)
	engine := s.results(t, job)

	// The test ends the job, then everything is received again.
	final := s.sendResult(t, queue.JobResult{
		JobID: job, ResultID: "final-" + job, Status: queue.ResultSucceeded,
		Summary: "Redelivery test: the array is healthy again.", PublicComment: "The storage array is healthy again.",
	})
	tk = s.waitJob(t, gw, "incident", id, state.JobSucceeded, time.Minute)
	tk = s.waitResults(t, gw, "incident", id, append(slices.Clone(engine), final), time.Minute)
	recBefore, journalBefore, resultsBefore := s.get(t, "incident", id), s.journal(t, id), tk.resultIDs()
	if recBefore["state"] != "6" || recBefore["close_notes"] != final.Summary {
		t.Errorf("record after the final result: state %q close_notes %q; want 6, %q", recBefore["state"], recBefore["close_notes"], final.Summary)
	}
	again := append(slices.Clone(engine), final)
	s.resend(t, again...)
	if s.logs != nil {
		s.eventually(t, "the writer to drop every result received again", time.Minute, func() (bool, string) {
			n := 0
			for _, r := range again {
				n += s.logs.count("result processed", map[string]string{"result_id": r.ResultID, "outcome": "duplicate"}, "outcome")["duplicate"]
			}
			return n >= len(again), fmt.Sprintf("%d of %d dropped", n, len(again))
		})
	} else {
		s.eventually(t, "the results queue to drain", time.Minute, func() (bool, string) {
			n := s.depth(t, schema.EnvResultsQueueURL)
			return n == 0, fmt.Sprintf("%d messages", n)
		})
	}
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	rec := s.get(t, "incident", id)
	if rec.modCount() != recBefore.modCount() {
		t.Errorf("record after the results came again: sys_mod_count %d; want %d (nothing written)", rec.modCount(), recBefore.modCount())
	}
	if diff := cmp.Diff(journalBefore, s.journal(t, id)); diff != "" {
		t.Errorf("journal after the results came again (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(resultsBefore, tk.resultIDs()); diff != "" {
		t.Errorf("results recorded after they came again (-before +after):\n%s", diff)
	}
	if got := ofRecord(s.events(t, gw), id); len(got) != len(evs) {
		t.Errorf("events after the results came again: %v; want none new", summarize(got[len(evs):]))
	}
	s.checkJournals(t, gw, map[string][]string{"incident": {id}})
	if n := s.depth(t, schema.EnvResultsDLQURL); n != 0 {
		t.Errorf("results dead-letter queue holds %d messages; want 0", n)
	}
	s.logCounts(t, gw)
}

// TestDedup: a second incident with the same short description and
// configuration item is a duplicate of the first: no job, and a work note
// naming the first; "@2501 unlink-ticket" on it gives it a job of its own.
func TestDedup(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	p := s.person(t)
	fields := incident(t, st.group, demoengine.MarkerHold+" Packet loss on uplink")
	first := s.insert(t, "incident", fields)
	tk := s.waitJob(t, gw, "incident", first["sys_id"], state.JobOpen, time.Minute)
	dup := s.insert(t, "incident", fields)["sys_id"]
	dk := s.waitSettled(t, gw, "incident", dup, time.Minute)
	if dk.Status != state.StatusDeduplicated || dk.Job != nil {
		t.Fatalf("ticket of the second incident: %s; want %s, no job", describe(dk), state.StatusDeduplicated)
	}
	if notes := ofField(s.journal(t, dup), "work_notes"); len(notes) != 1 || containing(notes, first["number"]) != 1 {
		t.Errorf("work notes of the duplicate: %q; want one naming %s", texts(notes), first["number"])
	}
	evs, _ := distinct(s.events(t, gw))
	if diff := cmp.Diff([]eventSummary{{queue.EventJobCreated, tk.Job.ID, 1, 1}}, summarize(evs)); diff != "" {
		t.Fatalf("events after the duplicate (-want +got):\n%s", diff)
	}

	unlink := registry.DefaultMention + " " + registry.UnlinkCommand
	p.update(t, "incident", dup, map[string]string{"comments": unlink})
	dk = s.waitJob(t, gw, "incident", dup, state.JobOpen, time.Minute)
	evs = s.events(t, gw)
	own := ofRecord(evs, dup)
	if diff := cmp.Diff([]eventSummary{{queue.EventJobCreated, dk.Job.ID, 1, 1}}, summarize(own)); diff != "" {
		t.Fatalf("events of the unlinked incident (-want +got):\n%s", diff)
	}
	if ev := own[0]; ev.Reason != queue.ReasonUnlinked || ev.DuplicateOf != first["number"] || ev.Message == nil || ev.Message.Text != unlink {
		t.Errorf("job.created of the unlinked incident = %s; want reason %q, duplicate_of %s, the comment %q",
			ev.raw, queue.ReasonUnlinked, first["number"], unlink)
	}
	if dk.Job.ID == tk.Job.ID {
		t.Errorf("the unlinked incident shares job %s with its primary", dk.Job.ID)
	}
	s.logCounts(t, gw)
}

// TestResultsRefused: a result for a job nobody created is dropped, not
// retried; a malformed result for a real job is poison: nothing of it is
// written, and it ends in the results dead-letter queue.
func TestResultsRefused(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	id := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerHold+" Fan failure in rack 12"))["sys_id"]
	s.waitJob(t, gw, "incident", id, state.JobOpen, time.Minute)
	s.waitAnswered(t, gw, map[string][]string{"incident": {id}}, s.events(t, gw), time.Minute)
	tk := s.waitSettled(t, gw, "incident", id, time.Minute)
	recBefore, journalBefore, resultsBefore := s.get(t, "incident", id), s.journal(t, id), tk.resultIDs()

	unknown := s.sendResult(t, queue.JobResult{
		JobID: "00000000-0000-4000-8000-000000000000", ResultID: "unknown-job-" + tk.Job.ID, Status: queue.ResultSucceeded, Summary: "Nobody asked.",
	})
	// Not a status of the contract, and a field it does not know.
	poison := result{raw: []byte(fmt.Sprintf(`{"job_id":%q,"result_id":"poison-%s","status":"done","summary":"Resolved?","work_note":"half"}`, tk.Job.ID, tk.Job.ID))}
	s.resend(t, poison)
	s.eventually(t, "the poison result in the results dead-letter queue and the queue empty", 2*time.Minute, func() (bool, string) {
		dlq, q := s.depth(t, schema.EnvResultsDLQURL), s.depth(t, schema.EnvResultsQueueURL)
		return dlq == 1 && q == 0, fmt.Sprintf("dead-letter queue %d, results queue %d", dlq, q)
	})
	if s.logs != nil {
		got := s.logs.count("result processed", map[string]string{"result_id": unknown.ResultID}, "outcome")
		if got["unknown_job"] != 1 || len(got) != 1 {
			t.Errorf("the writer's outcomes for the unknown job's result: %v; want unknown_job once (dropped, not retried)", got)
		}
		if got := s.logs.count("result processed", map[string]string{"job_id": tk.Job.ID, "outcome": "poison"}, "outcome"); got["poison"] == 0 {
			t.Errorf("the writer never reported the malformed result as poison")
		}
	}
	tk = s.waitSettled(t, gw, "incident", id, time.Minute)
	if rec := s.get(t, "incident", id); rec.modCount() != recBefore.modCount() {
		t.Errorf("record after the refused results: sys_mod_count %d; want %d (nothing written)", rec.modCount(), recBefore.modCount())
	}
	if diff := cmp.Diff(journalBefore, s.journal(t, id)); diff != "" {
		t.Errorf("journal after the refused results (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(resultsBefore, tk.resultIDs()); diff != "" {
		t.Errorf("results recorded after the refused results (-before +after):\n%s", diff)
	}
	if tk.Job.State != state.JobOpen {
		t.Errorf("ticket after the refused results: %s; want its job still open", describe(tk))
	}
	s.logCounts(t, gw)
}

// TestCancelled: a person resolving an incident whose job is open, or
// moving it out of the gateway's group filter, cancels the job; a result
// the engine sends for a cancelled job is recorded on the ticket but not
// written to the record.
func TestCancelled(t *testing.T) {
	parallel(t)
	s := newSystem(t)
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	other := s.insert(t, "sys_user_group", map[string]string{"name": awstest.UniqueName("e2e-other-"), "description": t.Name()})["sys_id"]
	resolved := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerHold+" Mail relay queue growing"))["sys_id"]
	moved := s.insert(t, "incident", incident(t, st.group, demoengine.MarkerHold+" Badge reader offline"))["sys_id"]
	jobs := map[string]string{}
	for _, id := range []string{resolved, moved} {
		jobs[id] = s.waitJob(t, gw, "incident", id, state.JobOpen, time.Minute).Job.ID
	}

	p := s.someone()
	p.update(t, "incident", resolved, map[string]string{"state": "6", "close_code": "Solved (Work Around)", "close_notes": "Restarted by hand."})
	p.update(t, "incident", moved, map[string]string{"assignment_group": other})
	for _, id := range []string{resolved, moved} {
		tk := s.waitJob(t, gw, "incident", id, state.JobCancelled, time.Minute)
		evs := ofRecord(s.events(t, gw), id)
		want := []eventSummary{{queue.EventJobCreated, jobs[id], 1, 1}, {queue.EventJobCancelled, jobs[id], 2, 1}}
		if diff := cmp.Diff(want, summarize(evs)); diff != "" {
			t.Errorf("events of %s (-want +got):\n%s", id, diff)
		} else if evs[1].Reason == "" {
			t.Errorf("job.cancelled = %s; want a reason", evs[1].raw)
		}
		if tk.Job.ID != jobs[id] {
			t.Errorf("ticket of %s: %s; want job %s cancelled", id, describe(tk), jobs[id])
		}
	}

	// The engine had not heard of the cancellation: its result is
	// recorded, not written.
	s.waitSettled(t, gw, "incident", resolved, time.Minute)
	recBefore, journalBefore := s.get(t, "incident", resolved), s.journal(t, resolved)
	late := s.sendResult(t, queue.JobResult{
		JobID: jobs[resolved], ResultID: "late-" + jobs[resolved], Status: queue.ResultSucceeded,
		Summary: "Cancelled test: fixed after all.", PublicComment: "Fixed after all.",
	})
	tk := s.waitResults(t, gw, "incident", resolved, []result{late}, time.Minute)
	if tk.Job.State != state.JobCancelled {
		t.Errorf("ticket after a result for its cancelled job: %s; want the job still cancelled", describe(tk))
	}
	rec := s.get(t, "incident", resolved)
	if rec.modCount() != recBefore.modCount() || rec["close_notes"] != recBefore["close_notes"] {
		t.Errorf("record after a result for its cancelled job: sys_mod_count %d, close_notes %q; want %d, %q (nothing written)",
			rec.modCount(), rec["close_notes"], recBefore.modCount(), recBefore["close_notes"])
	}
	if diff := cmp.Diff(journalBefore, s.journal(t, resolved)); diff != "" {
		t.Errorf("journal after a result for the cancelled job (-before +after):\n%s", diff)
	}
	s.logCounts(t, gw)
}
