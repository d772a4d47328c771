package writer_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/writer"
)

func incident() map[string]string {
	return map[string]string{
		"short_description": "Router down", "priority": "2", "state": "2",
		"assignment_group": groupNetwork, "u_environment": "production", "cmdb_ci": "ci-router-1",
	}
}

func change() map[string]string {
	now := time.Now().UTC()
	return map[string]string{
		"short_description": "Firmware upgrade", "type": "normal", "approval": "approved", "state": "-1",
		"start_date": now.Add(-time.Hour).Format(servicenow.TimeLayout), "end_date": now.Add(time.Hour).Format(servicenow.TimeLayout),
		"assignment_group": groupNetwork, "u_environment": "production",
	}
}

func result(jobID string, status string) queue.JobResult {
	return queue.JobResult{
		JobID: jobID, ResultID: uuid.NewString(), Status: status,
		Summary: "Restarted the router; traffic is back.", WorkNote: "Ran playbook restart-router on ci-router-1.",
		PublicComment: "The router was restarted and service is restored.",
	}
}

// written is what the writer left on a record in the simulator.
type written struct {
	State, CloseCode, CloseNotes, AssignmentGroup string
	Comments, WorkNotes                           []string
}

func (e *env) written(table, sysID string) written {
	e.t.Helper()
	rec, ok := e.sim.Record(table, sysID)
	if !ok {
		e.t.Fatalf("record %s gone", sysID)
	}
	return written{
		State: rec["state"], CloseCode: rec["close_code"], CloseNotes: rec["close_notes"], AssignmentGroup: rec["assignment_group"],
		Comments: e.sim.Journal(table, sysID, "comments"), WorkNotes: e.sim.Journal(table, sysID, "work_notes"),
	}
}

// TestMapping applies each kind of result through each outbound mapping
// to an incident and a change request with an open job, and checks the
// record in the simulator (state, close code and notes, journal entries,
// assignment group) and the job on the ticket.
func TestMapping(t *testing.T) {
	const (
		summary = "Restarted the router; traffic is back."
		note    = "Ran playbook restart-router on ci-router-1."
		comment = "The router was restarted and service is restored."
	)
	open := func(table string) written {
		if table == registry.TableChangeRequest {
			return written{State: "-1", AssignmentGroup: groupNetwork}
		}
		return written{State: "2", AssignmentGroup: groupNetwork}
	}
	tests := []struct {
		name      string
		table     string
		status    string
		closeCode string // the result's own
		mapping   func(g *registry.Gateway)
		want      func(w written) written
		wantJob   string
		wantSaid  string
	}{
		{name: "incident in progress", table: "incident", status: queue.ResultInProgress,
			want:    func(w written) written { w.WorkNotes = []string{note}; return w },
			wantJob: state.JobOpen, wantSaid: "work note"},
		{name: "incident succeeded: resolve", table: "incident", status: queue.ResultSucceeded,
			want: func(w written) written {
				w.State, w.CloseCode, w.CloseNotes, w.Comments = "6", registry.DefaultResolveCloseCode, summary, []string{comment}
				return w
			},
			wantJob: state.JobSucceeded, wantSaid: "comment, resolved"},
		{name: "incident succeeded with its own close code", table: "incident", status: queue.ResultSucceeded, closeCode: "Workaround provided",
			want: func(w written) written {
				w.State, w.CloseCode, w.CloseNotes, w.Comments = "6", "Workaround provided", summary, []string{comment}
				return w
			},
			wantJob: state.JobSucceeded},
		{name: "incident succeeded with the gateway's close code", table: "incident", status: queue.ResultSucceeded,
			mapping: func(g *registry.Gateway) { g.ResolveCloseCode = "Resolved by change" },
			want: func(w written) written {
				w.State, w.CloseCode, w.CloseNotes, w.Comments = "6", "Resolved by change", summary, []string{comment}
				return w
			},
			wantJob: state.JobSucceeded},
		{name: "incident succeeded: comment only", table: "incident", status: queue.ResultSucceeded,
			mapping: func(g *registry.Gateway) { g.OnSuccess = registry.OnSuccessComment },
			want:    func(w written) written { w.Comments = []string{comment}; return w },
			wantJob: state.JobSucceeded, wantSaid: "comment"},
		{name: "incident succeeded: nothing", table: "incident", status: queue.ResultSucceeded,
			mapping: func(g *registry.Gateway) { g.OnSuccess = registry.OnSuccessNone },
			want:    func(w written) written { return w },
			wantJob: state.JobSucceeded, wantSaid: "nothing written"},
		{name: "incident failed: escalate", table: "incident", status: queue.ResultFailed,
			want: func(w written) written {
				w.WorkNotes, w.AssignmentGroup = []string{note}, groupEscalation
				return w
			},
			wantJob: state.JobEscalated, wantSaid: "work note, reassigned to Automation escalations"},
		{name: "incident failed: escalate without a group", table: "incident", status: queue.ResultFailed,
			mapping: func(g *registry.Gateway) { g.EscalationGroup, g.EscalationGroupID = "", "" },
			want:    func(w written) written { w.WorkNotes = []string{note}; return w },
			wantJob: state.JobFailed, wantSaid: "work note"},
		{name: "incident failed: note", table: "incident", status: queue.ResultFailed,
			mapping: func(g *registry.Gateway) { g.OnFailure = registry.OnFailureNote },
			want:    func(w written) written { w.WorkNotes = []string{note}; return w },
			wantJob: state.JobFailed, wantSaid: "work note"},
		{name: "incident failed: nothing", table: "incident", status: queue.ResultFailed,
			mapping: func(g *registry.Gateway) { g.OnFailure = registry.OnFailureNone },
			want:    func(w written) written { return w },
			wantJob: state.JobFailed, wantSaid: "nothing written"},
		{name: "incident partial: escalate", table: "incident", status: queue.ResultPartial,
			want: func(w written) written {
				w.Comments, w.WorkNotes, w.AssignmentGroup = []string{comment}, []string{note}, groupEscalation
				return w
			},
			wantJob: state.JobEscalated, wantSaid: "comment, work note, reassigned to Automation escalations"},
		{name: "incident partial: note", table: "incident", status: queue.ResultPartial,
			mapping: func(g *registry.Gateway) { g.OnFailure = registry.OnFailureNote },
			want:    func(w written) written { w.Comments, w.WorkNotes = []string{comment}, []string{note}; return w },
			wantJob: state.JobPartial},
		{name: "change in progress", table: "change_request", status: queue.ResultInProgress,
			want:    func(w written) written { w.WorkNotes = []string{note}; return w },
			wantJob: state.JobOpen},
		{name: "change succeeded: review", table: "change_request", status: queue.ResultSucceeded,
			want: func(w written) written {
				w.State, w.CloseCode, w.CloseNotes = "0", "successful", summary
				return w
			},
			wantJob: state.JobSucceeded, wantSaid: "moved to Review"},
		{name: "change succeeded: comment only", table: "change_request", status: queue.ResultSucceeded,
			mapping: func(g *registry.Gateway) { g.OnSuccess = registry.OnSuccessComment },
			want:    func(w written) written { w.Comments = []string{comment}; return w },
			wantJob: state.JobSucceeded},
		{name: "change failed: escalate", table: "change_request", status: queue.ResultFailed,
			want: func(w written) written {
				w.WorkNotes, w.AssignmentGroup = []string{note}, groupEscalation
				return w
			},
			wantJob: state.JobEscalated},
		{name: "change partial: escalate", table: "change_request", status: queue.ResultPartial,
			want: func(w written) written {
				w.Comments, w.WorkNotes, w.AssignmentGroup = []string{comment}, []string{note}, groupEscalation
				return w
			},
			wantJob: state.JobEscalated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.mapping != nil {
				e.setMapping(tt.mapping)
			}
			fields := incident()
			if tt.table == registry.TableChangeRequest {
				fields = change()
			}
			sysID, jobID := e.openJob(tt.table, fields)
			r := result(jobID, tt.status)
			r.CloseCode = tt.closeCode

			if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
				t.Fatalf("batch failures %v; logs:\n%s", failed, e.logs)
			}

			if diff := cmp.Diff(tt.want(open(tt.table)), e.written(tt.table, sysID)); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			tk := e.ticket(tt.table, sysID)
			if tk.Job.State != tt.wantJob {
				t.Errorf("job state = %q, want %q", tk.Job.State, tt.wantJob)
			}
			if len(tk.Job.Results) != 1 || tk.Job.Results[0].ResultID != r.ResultID || tk.Job.Results[0].Status != tt.status {
				t.Fatalf("job results = %+v, want the one result", tk.Job.Results)
			}
			if tt.wantSaid != "" && tk.Job.Results[0].Applied != tt.wantSaid {
				t.Errorf("applied = %q, want %q", tk.Job.Results[0].Applied, tt.wantSaid)
			}
			if !tk.Applied(r.ResultID) {
				t.Errorf("result ids %v lack %s", tk.ResultIDs, r.ResultID)
			}
			// The echo of our own writes: the ticket holds the record's
			// current version, so the processor's claim of it is stale.
			v := e.version(tt.table, sysID)
			if tk.SysModCount != v.SysModCount || tk.DecidedVersion == nil || *tk.DecidedVersion != v.SysModCount || tk.ContentHash != v.Mirror.Hash() {
				t.Errorf("ticket version %d, decided %v, hash %s; record %d, hash %s",
					tk.SysModCount, tk.DecidedVersion, tk.ContentHash, v.SysModCount, v.Mirror.Hash())
			}
			if got := e.metric("ResultsApplied"); got != 1 {
				t.Errorf("ResultsApplied = %v, want 1", got)
			}
		})
	}
}

// TestEchoIsStale: after the writer resolved an incident, the processor's
// claim of the version it produced is stale, not a person's change.
func TestEchoIsStale(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	if failed := e.invoke(resultMessage(result(jobID, queue.ResultSucceeded))); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	v := e.version("incident", sysID)
	_, err := e.tickets.Claim(context.Background(), state.Claim{Key: e.key("incident", sysID), Mirror: v.Mirror,
		SysModCount: v.SysModCount, SysUpdatedOn: v.SysUpdatedOn, Token: uuid.NewString(), Lease: time.Minute})
	if err == nil || (!strings.Contains(err.Error(), state.ErrStale.Error()) && !strings.Contains(err.Error(), state.ErrUnchanged.Error())) {
		t.Errorf("Claim(echo) = %v, want stale or unchanged", err)
	}
}

// TestPersonsChangeIsNotHidden: a change by a person that the processor
// has not seen yet lies between the ticket's version and the writer's
// write: the writer must not record its version, so the change reaches
// the processor.
func TestPersonsChangeIsNotHidden(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	before := e.ticket("incident", sysID).SysModCount
	if _, err := e.sim.Update("incident", sysID, map[string]string{"priority": "1"}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(resultMessage(result(jobID, queue.ResultInProgress))); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	if got := e.ticket("incident", sysID).SysModCount; got != before {
		t.Errorf("ticket sys_mod_count = %d, want %d (the person's version is not seen yet)", got, before)
	}
}

// TestRedelivery: the same result again, in a later batch and twice in one
// batch, changes nothing.
func TestRedelivery(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	r := result(jobID, queue.ResultFailed)
	if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	first := e.written("incident", sysID)
	mods := e.version("incident", sysID).SysModCount
	if failed := e.invoke(resultMessage(r), resultMessage(r)); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	if diff := cmp.Diff(first, e.written("incident", sysID)); diff != "" {
		t.Errorf("record changed by the redelivery (-first +now):\n%s", diff)
	}
	if got := e.version("incident", sysID).SysModCount; got != mods {
		t.Errorf("sys_mod_count = %d after the redelivery, want %d", got, mods)
	}
	if got := len(e.ticket("incident", sysID).Job.Results); got != 1 {
		t.Errorf("job results = %d, want 1", got)
	}
	if got := e.metric("DuplicateResults"); got != 2 {
		t.Errorf("DuplicateResults = %v, want 2", got)
	}
}

// TestRetryAfterCrash: the first delivery's comment is stored but its
// answer is lost and the journal cannot be read, so the writer cannot
// know; the message is retried. The retry finds the comment in the
// journal and does not write it again, then resolves.
func TestRetryAfterCrash(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	r := result(jobID, queue.ResultSucceeded)
	msg := resultMessage(r)

	e.front.crash.Store(true)
	if failed := e.invoke(msg); len(failed) != 1 {
		t.Fatalf("first delivery: batch failures %v, want the message", failed)
	}
	e.front.crash.Store(false)
	if got := e.written("incident", sysID); len(got.Comments) != 1 || got.State != "2" {
		t.Fatalf("after the lost answer: %+v, want the comment stored and the incident still open", got)
	}
	if tk := e.ticket("incident", sysID); tk.Applied(r.ResultID) {
		t.Fatal("result recorded as applied after a failed delivery")
	}

	// The failures in a row paused the gateway; its redelivery comes
	// after the pause.
	e.later(budget.Backoffs[budget.CauseUnavailable].Cap)
	msg.Attributes["ApproximateReceiveCount"] = "2"
	if failed := e.invoke(msg); len(failed) != 0 {
		t.Fatalf("retry: batch failures %v; logs:\n%s", failed, e.logs)
	}
	got := e.written("incident", sysID)
	if len(got.Comments) != 1 {
		t.Errorf("comments = %q, want one", got.Comments)
	}
	if got.State != "6" {
		t.Errorf("state = %q, want 6 (Resolved)", got.State)
	}
	if tk := e.ticket("incident", sysID); tk.Job.State != state.JobSucceeded {
		t.Errorf("job state = %q, want succeeded", tk.Job.State)
	}
}

// TestNotWritten: results that must not reach ServiceNow are recorded on
// the ticket (or, for an unknown job, dropped) and the message is done.
func TestNotWritten(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(e *env, k state.Key, jobID string) string // returns the result's job id
		wantApplied string                                         // substring; "" for a dropped result
		wantMetric  string
		wantJob     string
	}{
		{name: "unknown job", wantMetric: "UnknownJobs",
			setup: func(*env, state.Key, string) string { return "job_" + uuid.NewString() }},
		{name: "cancelled job", wantApplied: "job cancelled", wantMetric: "CancelledNotWritten", wantJob: state.JobCancelled,
			setup: func(e *env, k state.Key, jobID string) string { e.setJobState(k, state.JobCancelled); return jobID }},
		{name: "ended job", wantApplied: "job already succeeded", wantMetric: "NotWritten", wantJob: state.JobSucceeded,
			setup: func(e *env, k state.Key, jobID string) string { e.setJobState(k, state.JobSucceeded); return jobID }},
		{name: "superseded job", wantApplied: "no longer the ticket's current one", wantMetric: "NotWritten", wantJob: state.JobOpen,
			setup: func(e *env, k state.Key, jobID string) string {
				e.putJob(k, state.Job{ID: "job_" + uuid.NewString(), State: state.JobOpen, Episode: 2, OpenedAt: time.Now().UTC()})
				return jobID
			}},
		{name: "inactive gateway", wantApplied: "gateway inactive", wantMetric: "NotWritten", wantJob: state.JobOpen,
			setup: func(e *env, _ state.Key, jobID string) string {
				e.setMapping(func(g *registry.Gateway) { g.Active = false })
				return jobID
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sysID, jobID := e.openJob("incident", incident())
			k := e.key("incident", sysID)
			r := result(tt.setup(e, k, jobID), queue.ResultSucceeded)
			before := e.written("incident", sysID)

			if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
				t.Fatalf("batch failures %v", failed)
			}
			if diff := cmp.Diff(before, e.written("incident", sysID)); diff != "" {
				t.Errorf("record written (-before +after):\n%s", diff)
			}
			if got := e.metric(tt.wantMetric); got != 1 {
				t.Errorf("%s = %v, want 1", tt.wantMetric, got)
			}
			tk := e.ticket("incident", sysID)
			if tt.wantApplied == "" {
				if len(tk.Job.Results) != 0 {
					t.Errorf("job results = %+v, want none", tk.Job.Results)
				}
				return
			}
			if len(tk.Job.Results) != 1 || !strings.Contains(tk.Job.Results[0].Applied, tt.wantApplied) {
				t.Errorf("job results = %+v, want one saying %q", tk.Job.Results, tt.wantApplied)
			}
			if tk.Job.State != tt.wantJob {
				t.Errorf("job state = %q, want %q", tk.Job.State, tt.wantJob)
			}
			// Recorded once: a redelivery is a duplicate.
			if failed := e.invoke(resultMessage(r)); len(failed) != 0 || e.metric("DuplicateResults") != 1 {
				t.Errorf("redelivery: failures %v, duplicates %v", failed, e.metric("DuplicateResults"))
			}
		})
	}
}

// TestPoison: a message that is not a valid result is reported failed on
// every receive (so the redrive policy dead-letters it) and nothing of it
// is applied.
func TestPoison(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	long := result(jobID, queue.ResultSucceeded)
	long.Summary = strings.Repeat("x", queue.MaxResultText+1)
	bodies := map[string]events.SQSMessage{
		"not JSON":       message(`{"job_id":`),
		"unknown status": resultMessage(queue.JobResult{JobID: jobID, ResultID: "r1", Status: "done"}),
		"no result id":   resultMessage(queue.JobResult{JobID: jobID, Status: queue.ResultSucceeded}),
		"text too long":  resultMessage(long),
		"unknown field":  message(`{"job_id":"` + jobID + `","result_id":"r2","status":"succeeded","sumary":"typo"}`),
	}
	for name, msg := range bodies {
		for receive := 1; receive <= 2; receive++ {
			if failed := e.invoke(msg); len(failed) != 1 || failed[0] != msg.MessageId {
				t.Errorf("%s, receive %d: batch failures %v, want the message", name, receive, failed)
			}
		}
	}
	if got := e.written("incident", sysID); got.State != "2" || len(got.Comments)+len(got.WorkNotes) != 0 {
		t.Errorf("record written: %+v", got)
	}
	if tk := e.ticket("incident", sysID); len(tk.Job.Results) != 0 || tk.Job.State != state.JobOpen {
		t.Errorf("job = %+v, want it open without results", tk.Job)
	}
	if !strings.Contains(e.logs.String(), queue.ErrMalformedResult.Error()) {
		t.Errorf("logs do not give the reason:\n%s", e.logs)
	}
	if got := e.metric("PoisonResults"); got != 1 {
		t.Errorf("PoisonResults = %v, want 1", got)
	}
}

// TestThrottled: an instance that throttles for an hour (429 with
// Retry-After) gets the result retried, its next delivery pushed out by
// the Retry-After, not lost; once the throttle ends the retry applies it.
func TestThrottled(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sysID, jobID := e.openJob("incident", incident())
	r := result(jobID, queue.ResultFailed)
	body := resultMessage(r).Body
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.results), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	receive := func() []events.SQSMessage {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(e.results), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []events.SQSMessage
		for _, m := range out.Messages {
			msgs = append(msgs, events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
				Attributes: map[string]string{"ApproximateReceiveCount": m.Attributes["ApproximateReceiveCount"]},
			})
		}
		return msgs
	}

	e.sim.SetFaults(snowsim.Faults{Status429Rate: 1, RetryAfter: time.Hour})
	msgs := receive()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	if failed := e.invoke(msgs...); len(failed) != 1 {
		t.Fatalf("throttled: batch failures %v, want the message", failed)
	}
	// Its visibility was pushed out: it does not come back at once.
	if again := receive(); len(again) != 0 {
		t.Fatalf("the throttled message came back at once")
	}
	if e.ticket("incident", sysID).Applied(r.ResultID) {
		t.Fatal("throttled result recorded as applied")
	}
	if got := e.metric("ServiceNowFailures"); got != 1 {
		t.Errorf("ServiceNowFailures = %v, want 1", got)
	}

	// The throttle ends; the queue delivers the message again (made
	// visible here, and the gateway's pause skipped, instead of waiting
	// the hour).
	e.sim.SetFaults(snowsim.Faults{})
	e.later(time.Hour + time.Minute)
	if _, err := e.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(e.results), ReceiptHandle: aws.String(msgs[0].ReceiptHandle), VisibilityTimeout: 0,
	}); err != nil {
		t.Fatal(err)
	}
	msgs = receive()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages after the throttle, want 1", len(msgs))
	}
	if failed := e.invoke(msgs...); len(failed) != 0 {
		t.Fatalf("after the throttle: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 1 || got.AssignmentGroup != groupEscalation {
		t.Errorf("record = %+v, want the work note and the escalation", got)
	}
}

// TestForbidden: an integration user without the rights the write needs
// (403) is a gateway misconfiguration: the gateway pauses until a probe,
// the result waits for it (no request is spent on it meanwhile) and is
// written once the right is granted.
func TestForbidden(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	r := result(jobID, queue.ResultInProgress)
	e.sim.SetReadDenied(snowUser, "incident", true)
	if failed := e.invoke(resultMessage(r)); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the result back, to wait for the gateway", failed)
	}
	if failed := e.invoke(resultMessage(r)); len(failed) != 1 {
		t.Fatalf("paused: batch failures %v, want the result back", failed)
	}
	if got := e.metric(budget.MetricPaused); got != 1 {
		t.Errorf("%s = %v, want 1", budget.MetricPaused, got)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 0 {
		t.Errorf("work notes = %q, want none", got.WorkNotes)
	}
	e.sim.SetReadDenied(snowUser, "incident", false)
	e.later(budget.Backoffs[budget.CauseAuth].Base)
	if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
		t.Fatalf("after the fix: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 1 {
		t.Errorf("work notes = %q, want one", got.WorkNotes)
	}
}

// TestRecordGone: a record deleted (or hidden) since the job started is
// recorded and the message dropped.
func TestRecordGone(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	e.sim.SetFaults(snowsim.Faults{Hidden: map[string]bool{"incident/" + sysID: true}})
	if failed := e.invoke(resultMessage(result(jobID, queue.ResultSucceeded))); len(failed) != 0 {
		t.Fatalf("batch failures %v, want none", failed)
	}
	tk := e.ticket("incident", sysID)
	if len(tk.Job.Results) != 1 || !strings.Contains(tk.Job.Results[0].Applied, "record not found") {
		t.Errorf("job results = %+v, want record not found", tk.Job.Results)
	}
}

// TestMentionNeutralised: an engine's text quoting the mention token is
// written so that it no longer contains it.
func TestMentionNeutralised(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	r := result(jobID, queue.ResultInProgress)
	r.WorkNote = "Reply with @2501 unlink-ticket to split it, or @2501 to ask."
	if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	notes := e.written("incident", sysID).WorkNotes
	if len(notes) != 1 || strings.Contains(strings.ToLower(notes[0]), registry.DefaultMention) {
		t.Errorf("work notes = %q, want one without %s", notes, registry.DefaultMention)
	}
	if got, want := strings.ReplaceAll(notes[0], "\u2060", ""), r.WorkNote; got != want {
		t.Errorf("note reads %q, want %q", got, want)
	}
}

func TestNeutralize(t *testing.T) {
	tests := []struct{ text, token, want string }{
		{"ask @2501 now", "@2501", "ask @\u20602501 now"},
		{"@2501@2501", "@2501", "@\u20602501@\u20602501"},
		{"ping @Bot or @BOT", "@bot", "ping @\u2060Bot or @\u2060BOT"},
		{"no mention", "@2501", "no mention"},
		{"", "@2501", ""},
		{"café @2501", "@2501", "café @\u20602501"},
	}
	for _, tt := range tests {
		if got := writer.Neutralize(tt.text, tt.token); got != tt.want {
			t.Errorf("Neutralize(%q, %q) = %q, want %q", tt.text, tt.token, got, tt.want)
		}
	}
}

// TestPoisonIsDeadLettered: through the real queue, a poison result is
// reported failed on every receive, visible again at once, until the
// redrive policy moves it, unchanged, to the dead-letter queue.
func TestPoisonIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const body = `{"job_id":"job-1","result_id":"r-1","status":"finished"}`
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.results), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	for receive := 1; receive <= schema.Results.MaxReceiveCount+1; receive++ {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.results), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		if receive > schema.Results.MaxReceiveCount {
			t.Fatalf("received %d times, past the queue's maximum receives", receive)
		}
		m := out.Messages[0]
		msg := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body)}
		if failed := e.invoke(msg); len(failed) != 1 {
			t.Fatalf("receive %d: batch failures %v, want the message", receive, failed)
		}
	}
	dead := awstest.Drain(t, e.sqs, e.resultsDLQ)
	if len(dead) != 1 || aws.ToString(dead[0].Body) != body {
		t.Errorf("dead-letter queue holds %d messages, want the poison result unchanged", len(dead))
	}
}

// TestJobNotYetOnTicket: a result that arrives between the processor's
// indexing of a new job and its recording on the ticket is retried, then
// applied once the job is there.
func TestJobNotYetOnTicket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sysID, _ := e.openJob("incident", incident())
	k := e.key("incident", sysID)
	// A new episode being decided: the version claimed, the job indexed,
	// the ticket's job map still the old one.
	if _, err := e.sim.Update("incident", sysID, map[string]string{"priority": "1"}); err != nil {
		t.Fatal(err)
	}
	v := e.version("incident", sysID)
	token := uuid.NewString()
	if _, err := e.tickets.Claim(ctx, state.Claim{Key: k, Mirror: v.Mirror, SysModCount: v.SysModCount, SysUpdatedOn: v.SysUpdatedOn, Token: token, Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	next := "job_" + uuid.NewString()
	if err := e.tickets.IndexJob(ctx, next, k); err != nil {
		t.Fatal(err)
	}
	msg := resultMessage(result(next, queue.ResultInProgress))
	if failed := e.invoke(msg); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message retried", failed)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 0 {
		t.Fatalf("work notes %q written before the job was on its ticket", got.WorkNotes)
	}
	if err := e.tickets.Finish(ctx, k, token, state.Result{Version: v.SysModCount, Status: state.StatusAccepted, JobID: next}); err != nil {
		t.Fatal(err)
	}
	e.putJob(k, state.Job{ID: next, State: state.JobOpen, Episode: 2, Sequence: 1, OpenedAt: time.Now().UTC()})
	if failed := e.invoke(msg); len(failed) != 0 {
		t.Fatalf("retry: batch failures %v", failed)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 1 {
		t.Errorf("work notes %q, want one", got.WorkNotes)
	}
}

// TestResultsOfOneJobInOneBatch: results of one job applied concurrently
// are all recorded, each written once.
func TestResultsOfOneJobInOneBatch(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	progress := []queue.JobResult{result(jobID, queue.ResultInProgress), result(jobID, queue.ResultInProgress), result(jobID, queue.ResultInProgress)}
	progress[1].WorkNote, progress[2].WorkNote = "Step two.", "Step three."
	var msgs []events.SQSMessage
	for _, r := range progress {
		msgs = append(msgs, resultMessage(r))
	}
	if failed := e.invoke(msgs...); len(failed) != 0 {
		t.Fatalf("batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID).WorkNotes; len(got) != 3 {
		t.Errorf("work notes %q, want 3", got)
	}
	tk := e.ticket("incident", sysID)
	if len(tk.Job.Results) != 3 || len(tk.ResultIDs) != 3 || tk.Job.State != state.JobOpen {
		t.Errorf("job %+v, result ids %v; want 3 results and the job open", tk.Job, tk.ResultIDs)
	}
}

// TestClosedMeanwhile: a person closed the incident before the result came:
// the writer does not resolve it over the person's close.
func TestClosedMeanwhile(t *testing.T) {
	e := newEnv(t)
	sysID, jobID := e.openJob("incident", incident())
	if _, err := e.sim.Update("incident", sysID, map[string]string{"state": "8"}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(resultMessage(result(jobID, queue.ResultSucceeded))); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	got := e.written("incident", sysID)
	if got.State != "8" || got.CloseCode != "" {
		t.Errorf("record %+v, want it left cancelled (8)", got)
	}
	tk := e.ticket("incident", sysID)
	if len(tk.Job.Results) != 1 || !strings.Contains(tk.Job.Results[0].Applied, "record closed in ServiceNow meanwhile") {
		t.Errorf("job results %+v, want the close noted", tk.Job.Results)
	}
}

// TestCredentialsRotated: credentials the instance refuses (401) are read
// again once; still refused, the result is retried, not dropped, and it is
// applied once the secret holds working credentials.
func TestCredentialsRotated(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sysID, jobID := e.openJob("incident", incident())
	g, err := e.gateways.Gateway(ctx, e.gw)
	if err != nil {
		t.Fatal(err)
	}
	setPassword := func(pw string) {
		t.Helper()
		b, _ := json.Marshal(registry.Credentials{Auth: registry.AuthBasic, Username: snowUser, Password: pw})
		if _, err := e.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(g.CredentialsSecretARN), SecretString: aws.String(string(b))}); err != nil {
			t.Fatal(err)
		}
	}
	setPassword("wrong")
	msg := resultMessage(result(jobID, queue.ResultInProgress))
	if failed := e.invoke(msg); len(failed) != 1 {
		t.Fatalf("refused credentials: batch failures %v, want the message retried", failed)
	}
	if !strings.Contains(e.logs.String(), "401") {
		t.Errorf("logs do not show the 401:\n%s", e.logs)
	}
	// The refusal paused the gateway until a probe; the probe, with the
	// credentials read again, finds them working.
	setPassword(snowPass)
	e.later(budget.Backoffs[budget.CauseAuth].Base)
	if failed := e.invoke(msg); len(failed) != 0 {
		t.Fatalf("after the rotation: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID).WorkNotes; len(got) != 1 {
		t.Errorf("work notes %q, want one", got)
	}
}
