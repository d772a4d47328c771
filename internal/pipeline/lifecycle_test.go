package pipeline_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// step is one thing that happens to a ticket, and what the pipeline must
// make of it.
type step struct {
	name string
	// do changes the record (nil: a delivery of the current version).
	do func(e *env, table, sysID string)
	// noDelivery: the change reaches no processor (its webhook was lost).
	noDelivery bool

	wantEvents  []string // event types, in sequence order
	wantStatus  string
	wantOutcome string // the ticket's last outcome when it is not the status
	wantJob     string // the job's state; "" for no job
	wantEpisode int
	// newJob: the events belong to a job other than the previous step's.
	newJob bool
	// check looks at the step's events further.
	check func(t *testing.T, evs []queue.JobEvent)
}

// set changes fields as a person would in the form.
func set(fields map[string]string) func(e *env, table, sysID string) {
	return func(e *env, table, sysID string) {
		e.t.Helper()
		if _, err := e.sim.Sim.Update(table, sysID, fields); err != nil {
			e.t.Fatal(err)
		}
	}
}

// comment adds a comment (or a work note) as a person would.
func comment(field, text string) func(e *env, table, sysID string) {
	return set(map[string]string{field: text})
}

// ownNote adds a work note as the gateway's integration user, as the
// writer does.
func ownNote(text string) func(e *env, table, sysID string) {
	return func(e *env, table, sysID string) {
		e.t.Helper()
		c, err := servicenow.New(e.sim.URL, servicenow.BasicAuth(snowUser, snowPass))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := c.AddWorkNote(context.Background(), table, sysID, text); err != nil {
			e.t.Fatal(err)
		}
	}
}

// endJob ends the ticket's job as the writer does after a final result:
// its state, on the job as it is.
func endJob(jobState string) func(e *env, table, sysID string) {
	return func(e *env, table, sysID string) {
		e.t.Helper()
		tk := e.ticket(table, sysID)
		j := *tk.Job
		j.State, j.EndedAt = jobState, time.Now().UTC()
		j.Results = append(j.Results, state.JobResultRecord{ResultID: "r1", Status: queue.ResultFailed, At: time.Now().UTC()})
		av, err := attributevalue.Marshal(j)
		if err != nil {
			e.t.Fatal(err)
		}
		_, err = e.ddb.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
			TableName:                 aws.String(e.res.StateTable),
			Key:                       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: tk.Key().PK()}},
			UpdateExpression:          aws.String("SET #job = :j"),
			ExpressionAttributeNames:  map[string]string{"#job": "job"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":j": av},
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

func types(evs []queue.JobEvent) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// events drains the dispatch queue, in sequence order, checking every
// event's envelope and message attributes.
func (e *env) events() []queue.JobEvent {
	e.t.Helper()
	var evs []queue.JobEvent
	for _, m := range awstest.Drain(e.t, e.sqs, e.res.DispatchQueueURL) {
		var ev queue.JobEvent
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
			e.t.Fatalf("dispatch message %q: %v", aws.ToString(m.Body), err)
		}
		attrs := map[string]string{}
		for k, v := range m.MessageAttributes {
			attrs[k] = aws.ToString(v.StringValue)
		}
		want := map[string]string{
			queue.AttrJobID: ev.JobID, queue.AttrGatewayID: ev.GatewayID, queue.AttrTable: ev.Table,
			queue.AttrEventType: ev.Type, queue.AttrEventID: ev.EventID,
		}
		if diff := cmp.Diff(want, attrs); diff != "" {
			e.t.Errorf("message attributes of %s (-want +got):\n%s", ev.Type, diff)
		}
		if ev.SchemaVersion != queue.EventSchemaVersion || ev.EventID == "" || ev.JobID == "" || ev.Sequence < 1 || ev.Episode < 1 ||
			ev.GatewayID != e.gw || ev.GatewayName == "" || ev.Ticket.Number == "" || ev.OccurredAt.IsZero() || ev.Source == "" {
			e.t.Errorf("event envelope incomplete: %+v", ev)
		}
		evs = append(evs, ev)
	}
	slices.SortStableFunc(evs, func(a, b queue.JobEvent) int { return a.Sequence - b.Sequence })
	return evs
}

// runHistory runs a ticket through its steps.
func runHistory(t *testing.T, e *env, table string, fields map[string]string, steps []step) {
	t.Helper()
	ctx := context.Background()
	sysID := e.insert(table, fields)
	lastJob := ""
	seenEvents := map[string]bool{}
	for i, s := range steps {
		if s.do != nil {
			s.do(e, table, sysID)
		}
		if !s.noDelivery {
			if failed := e.invoke(ctx, message(e.gw, table, sysID)); len(failed) != 0 {
				t.Fatalf("step %d (%s): failed %v\n%s", i, s.name, failed, e.logs.String())
			}
		}
		evs := e.events()
		if diff := cmp.Diff(s.wantEvents, types(evs), cmp.Comparer(func(a, b []string) bool { return len(a)+len(b) == 0 || slices.Equal(a, b) })); diff != "" {
			t.Errorf("step %d (%s): events (-want +got):\n%s", i, s.name, diff)
		}
		for _, ev := range evs {
			if seenEvents[ev.EventID] {
				t.Errorf("step %d (%s): event id %s sent before", i, s.name, ev.EventID)
			}
			seenEvents[ev.EventID] = true
			if s.newJob == (ev.JobID == lastJob) {
				t.Errorf("step %d (%s): %s of job %s, previous job %s; want new job %v", i, s.name, ev.Type, ev.JobID, lastJob, s.newJob)
			}
		}
		tk := e.ticket(table, sysID)
		wantOutcome := s.wantOutcome
		if wantOutcome == "" {
			wantOutcome = s.wantStatus
		}
		if tk.Status != s.wantStatus || tk.LastOutcome != wantOutcome {
			t.Errorf("step %d (%s): ticket %s / %s (%s); want %s / %s", i, s.name, tk.Status, tk.LastOutcome, tk.Reason, s.wantStatus, wantOutcome)
		}
		gotJob, gotEpisode := "", 0
		if tk.Job != nil {
			gotJob, gotEpisode = tk.Job.State, tk.Job.Episode
			if len(evs) > 0 && evs[len(evs)-1].JobID == tk.Job.ID && tk.Job.Sequence != evs[len(evs)-1].Sequence {
				t.Errorf("step %d (%s): job sequence %d, last event's %d", i, s.name, tk.Job.Sequence, evs[len(evs)-1].Sequence)
			}
			lastJob = tk.Job.ID
		}
		if gotJob != s.wantJob || gotEpisode != s.wantEpisode {
			t.Errorf("step %d (%s): job %q episode %d; want %q episode %d", i, s.name, gotJob, gotEpisode, s.wantJob, s.wantEpisode)
		}
		if s.check != nil {
			s.check(t, evs)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
			return
		}
	}
}

func reason(want string) func(t *testing.T, evs []queue.JobEvent) {
	return func(t *testing.T, evs []queue.JobEvent) {
		t.Helper()
		if len(evs) == 0 || !strings.Contains(evs[0].Reason, want) {
			t.Errorf("events %+v: want the first with a reason containing %q", evs, want)
		}
	}
}

func changed(fields ...string) func(t *testing.T, evs []queue.JobEvent) {
	return func(t *testing.T, evs []queue.JobEvent) {
		t.Helper()
		if len(evs) != 1 || !cmp.Equal(evs[0].ChangedFields, fields) || evs[0].Ticket.State == "" {
			t.Errorf("events %+v: want one job.updated with changed_fields %v and the new snapshot", evs, fields)
		}
	}
}

func messageFrom(text string) func(t *testing.T, evs []queue.JobEvent) {
	return func(t *testing.T, evs []queue.JobEvent) {
		t.Helper()
		m := evs[len(evs)-1].Message
		if m == nil || m.Text != text || m.Author != "admin" || m.EntryID == "" || m.EnteredAt.IsZero() || m.Field == "" {
			t.Errorf("last event's message %+v, want %q by admin with its entry id and time", m, text)
		}
	}
}

// TestLifecycle runs tickets through their histories: one job per ticket,
// news for the open job, cancellation, new episodes.
func TestLifecycle(t *testing.T) {
	const (
		accepted = state.StatusAccepted
		out      = state.StatusOutOfScope
		open     = state.JobOpen
	)
	created, updated, followUp, cancelled := queue.EventJobCreated, queue.EventJobUpdated, queue.EventJobFollowUp, queue.EventJobCancelled
	window := func(from, to time.Duration) map[string]string {
		return map[string]string{"start_date": snTime(from), "end_date": snTime(to)}
	}
	tests := []struct {
		name    string
		gateway func(g *registry.Gateway)
		table   string
		fields  map[string]string
		steps   []step
	}{
		{name: "incident edits are updates; resolved cancels; reopened is a new episode", table: "incident", fields: incident("Router down"),
			steps: []step{
				{name: "new", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1, check: reason(queue.ReasonNewRecord)},
				{name: "redelivery", wantStatus: accepted, wantOutcome: state.OutcomeStale, wantJob: open, wantEpisode: 1},
				{name: "priority raised", do: set(map[string]string{"priority": "1"}), wantEvents: []string{updated}, wantStatus: accepted, wantJob: open, wantEpisode: 1, check: changed("priority")},
				{name: "description edited", do: set(map[string]string{"description": "all sites"}), wantEvents: []string{updated}, wantStatus: accepted, wantJob: open, wantEpisode: 1, check: changed("description")},
				{name: "unrelated field", do: set(map[string]string{"urgency": "1"}), wantStatus: accepted, wantOutcome: state.OutcomeUnchanged, wantJob: open, wantEpisode: 1},
				{name: "resolved by a person", do: set(map[string]string{"state": "6"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 1, check: reason("resolved")},
				// No job, out of scope: a comment cannot matter.
				{name: "comment while resolved", do: comment("comments", "@2501 thanks"), wantStatus: out, wantOutcome: state.OutcomeUnchanged, wantJob: state.JobCancelled, wantEpisode: 1},
				{name: "reopened", do: set(map[string]string{"state": "2"}), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 2, check: reason(queue.ReasonReopened)},
				{name: "closed", do: set(map[string]string{"state": "7"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 2, check: reason("incident closed")},
			}},
		{name: "change request: Scheduled to Implement is an update, closed cancels", table: "change_request",
			fields: change("approved", "-2", snTime(-time.Hour), snTime(time.Hour)),
			steps: []step{
				{name: "scheduled", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "implement", do: set(map[string]string{"state": "-1"}), wantEvents: []string{updated}, wantStatus: accepted, wantJob: open, wantEpisode: 1, check: changed("state")},
				{name: "window moved", do: set(window(-time.Hour, 2*time.Hour)), wantEvents: []string{updated}, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "closed", do: set(map[string]string{"state": "3"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 1, check: reason("change request closed")},
			}},
		{name: "change request moved to Review or unapproved cancels; re-approved is a new episode", table: "change_request",
			fields: change("approved", "-1", snTime(-time.Hour), snTime(time.Hour)),
			steps: []step{
				{name: "implement", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "review", do: set(map[string]string{"state": "0"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 1, check: reason("neither Scheduled")},
				{name: "approval requested again", do: set(map[string]string{"state": "-2", "approval": "requested"}), wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 1},
				{name: "re-approved for a new window", do: set(map[string]string{"approval": "approved"}), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 2, check: reason(queue.ReasonReapproved)},
				{name: "approval withdrawn", do: set(map[string]string{"approval": "rejected"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 2, check: reason("not approved")},
			}},
		{name: "leaving the gateway's filters cancels", table: "incident", fields: incident("Switch down"),
			gateway: func(g *registry.Gateway) {
				g.AssignmentGroupIDs = []string{groupNetwork}
				g.AssignmentGroupFilter = "Network"
			},
			steps: []step{
				{name: "new", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "reassigned", do: set(map[string]string{"assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"}), wantEvents: []string{cancelled}, wantStatus: out, wantJob: state.JobCancelled, wantEpisode: 1, check: reason("assignment group")},
				{name: "back", do: set(map[string]string{"assignment_group": groupNetwork}), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 2},
			}},
		{name: "follow-ups; our own notes never loop", table: "incident", fields: incident("Disk full"),
			steps: []step{
				{name: "new", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "a comment without the mention", do: comment("comments", "any news?"), wantStatus: accepted, wantOutcome: state.OutcomeUnchanged, wantJob: open, wantEpisode: 1},
				{name: "our own note mentioning the token", do: ownNote("@2501 engine: working on it"), wantStatus: accepted, wantOutcome: state.OutcomeUnchanged, wantJob: open, wantEpisode: 1},
				{name: "a work note mentioning the token", do: comment("work_notes", "@2501 also clean /var/log"), wantEvents: []string{followUp}, wantStatus: accepted, wantJob: open, wantEpisode: 1, check: messageFrom("@2501 also clean /var/log")},
				{name: "its redelivery", wantStatus: accepted, wantOutcome: state.OutcomeStale, wantJob: open, wantEpisode: 1},
				{name: "not a whole token", do: comment("comments", "see ticket @25012 and x@2501"), wantStatus: accepted, wantOutcome: state.OutcomeUnchanged, wantJob: open, wantEpisode: 1},
				{name: "two comments, one lost webhook", do: comment("comments", "@2501 first"), noDelivery: true, wantStatus: accepted, wantOutcome: state.OutcomeUnchanged, wantJob: open, wantEpisode: 1},
				{name: "the second, in other case, and a priority change", do: func(e *env, table, sysID string) {
					comment("comments", "Thanks @2501.")(e, table, sysID)
					set(map[string]string{"priority": "1"})(e, table, sysID)
				}, wantEvents: []string{updated, followUp, followUp}, wantStatus: accepted, wantJob: open, wantEpisode: 1,
					check: func(t *testing.T, evs []queue.JobEvent) {
						// Both entries are of one second: their order is the journal's.
						var texts []string
						for _, ev := range evs[1:] {
							texts = append(texts, ev.Message.Text)
						}
						slices.Sort(texts)
						if !cmp.Equal(texts, []string{"@2501 first", "Thanks @2501."}) {
							t.Errorf("follow-up messages %q, want both comments", texts)
						}
					}},
			}},
		{name: "semi-automatic: no job until a mention", table: "incident", fields: incident("VPN slow"),
			gateway: func(g *registry.Gateway) { g.Mode = registry.ModeSemiAutomatic },
			steps: []step{
				{name: "new", wantStatus: state.StatusAwaitingMention},
				{name: "priority edit", do: set(map[string]string{"priority": "1"}), wantStatus: state.StatusAwaitingMention},
				{name: "comment without mention", do: comment("comments", "please check"), wantStatus: state.StatusAwaitingMention, wantOutcome: state.OutcomeUnchanged},
				{name: "the mention", do: comment("comments", "@2501 please check the tunnel"), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1,
					check: func(t *testing.T, evs []queue.JobEvent) {
						reason(queue.ReasonMention)(t, evs)
						messageFrom("@2501 please check the tunnel")(t, evs)
					}},
				{name: "a follow-up", do: comment("work_notes", "@2501 it is the MTU"), wantEvents: []string{followUp}, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "job succeeded (writer)", do: endJob(state.JobSucceeded), noDelivery: true, wantStatus: accepted, wantJob: state.JobSucceeded, wantEpisode: 1},
				{name: "a mention after it ended", do: comment("comments", "@2501 it is back"), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 2, check: reason(queue.ReasonMention)},
			}},
		{name: "automatic: a mention after the job ended starts a new episode", table: "incident", fields: incident("Printer jam"),
			steps: []step{
				{name: "new", wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 1},
				{name: "job failed (writer)", do: endJob(state.JobEscalated), noDelivery: true, wantStatus: accepted, wantJob: state.JobEscalated, wantEpisode: 1},
				{name: "an edit while in scope", do: set(map[string]string{"priority": "1"}), wantStatus: accepted, wantJob: state.JobEscalated, wantEpisode: 1},
				{name: "a mention", do: comment("comments", "@2501 try again"), wantEvents: []string{created}, newJob: true, wantStatus: accepted, wantJob: open, wantEpisode: 2, check: reason(queue.ReasonMention)},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pipeline.Config{})
			if tt.gateway != nil {
				if _, err := registry.New(e.ddb, e.res.RegistryTable).UpdateGateway(context.Background(), e.gw, func(g *registry.Gateway) error {
					tt.gateway(g)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			runHistory(t, e, tt.table, tt.fields, tt.steps)
		})
	}
}

// TestRedeliveryAfterCrash: a processor that sent job.created and crashed
// before storing its decision; the redelivery sends the same job id and
// event id, and the ticket ends with one job.
func TestRedeliveryAfterCrash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{Lease: time.Second})
	sysID := e.insert("incident", incident("Crash after send"))
	msg := message(e.gw, "incident", sysID)
	if failed := e.invoke(ctx, msg); len(failed) != 0 {
		t.Fatal(failed)
	}
	first := e.events()
	// Undo the stored decision as if it never happened: a ticket back in
	// processing under an expired claim, with no job.
	key := state.Key{GatewayID: e.gw, Table: "incident", SysID: sysID}
	if _, err := e.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.res.StateTable),
		Key:                       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: key.PK()}},
		UpdateExpression:          aws.String("SET #st = :p, claim_token = :t, claim_expires = :x, sys_mod_count = :v REMOVE #job, decided_version"),
		ExpressionAttributeNames:  map[string]string{"#st": "status", "#job": "job"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":p": &ddbtypes.AttributeValueMemberS{Value: state.StatusProcessing}, ":t": &ddbtypes.AttributeValueMemberS{Value: "crashed"}, ":x": &ddbtypes.AttributeValueMemberN{Value: "1"}, ":v": &ddbtypes.AttributeValueMemberN{Value: "0"}},
	}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(ctx, msg); len(failed) != 0 {
		t.Fatal(failed)
	}
	again := e.events()
	if len(first) != 1 || len(again) != 1 || first[0].JobID != again[0].JobID || first[0].EventID != again[0].EventID {
		t.Errorf("first %+v, re-sent %+v: want one job.created each with the same job and event ids", first, again)
	}
	if tk := e.ticket("incident", sysID); tk.Job == nil || tk.Job.ID != first[0].JobID || len(tk.Job.Events) != 1 {
		t.Errorf("ticket job %+v, want job %s with one event", tk.Job, first[0].JobID)
	}
}

// TestDedupOrderInBatch: a batch brings a group of duplicates in any order;
// the earliest-created incident is the primary, the others get a work note
// naming it, and "@2501 unlink-ticket" gives a duplicate its own job.
func TestDedupOrderInBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	e.seed(`{"incident": [
		{"sys_id": "00000000000000000000000000000c03", "number": "INC0020003", "short_description": "Core switch down", "state": "2",
		 "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "u_environment": "production", "cmdb_ci": "ci-core",
		 "sys_created_on": "2026-03-01 10:00:03", "sys_updated_on": "2026-03-01 10:00:03"},
		{"sys_id": "00000000000000000000000000000c01", "number": "INC0020001", "short_description": "core switch DOWN", "state": "2",
		 "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "u_environment": "production", "cmdb_ci": "ci-core",
		 "sys_created_on": "2026-03-01 10:00:01", "sys_updated_on": "2026-03-01 10:00:05"},
		{"sys_id": "00000000000000000000000000000c02", "number": "INC0020002", "short_description": "Core switch down!", "state": "2",
		 "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "u_environment": "production", "cmdb_ci": "ci-core",
		 "sys_created_on": "2026-03-01 10:00:02", "sys_updated_on": "2026-03-01 10:00:02"}]}`)
	ids := []string{"00000000000000000000000000000c03", "00000000000000000000000000000c02", "00000000000000000000000000000c01"}
	var batch []events.SQSMessage
	for _, id := range ids {
		batch = append(batch, message(e.gw, "incident", id))
	}
	if failed := e.invoke(ctx, batch...); len(failed) != 0 {
		t.Fatalf("failed %v\n%s", failed, e.logs.String())
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Number != "INC0020001" {
		t.Fatalf("events %+v, want one job.created for INC0020001, the earliest created", evs)
	}
	for _, id := range ids[:2] {
		tk := e.ticket("incident", id)
		if tk.Status != state.StatusDeduplicated || tk.DuplicateOfNumber != "INC0020001" || tk.CreatedOn == "" {
			t.Errorf("%s: %s duplicate of %q created %q; want deduplicated against INC0020001, its creation time stored", tk.Number, tk.Status, tk.DuplicateOfNumber, tk.CreatedOn)
		}
		if notes := e.sim.Sim.WorkNotes("incident", id); len(notes) != 1 || !strings.Contains(notes[0], "INC0020001") || !strings.Contains(notes[0], "@2501 unlink-ticket") {
			t.Errorf("%s: work notes %q, want one naming INC0020001 and the unlink command", tk.Number, notes)
		}
	}

	// A later change of a duplicate: still one, no second note.
	dup := ids[0]
	if _, err := e.sim.Sim.Update("incident", dup, map[string]string{"priority": "1"}); err != nil {
		t.Fatal(err)
	}
	e.invoke(ctx, message(e.gw, "incident", dup))
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("a duplicate's change sent %+v", evs)
	}
	if notes := e.sim.Sim.WorkNotes("incident", dup); len(notes) != 1 {
		t.Errorf("work notes after a change %q, want still one", notes)
	}
	// A mention without the command changes nothing; the command unlinks.
	for _, c := range []struct {
		text string
		want int
	}{{"@2501 is this the same?", 0}, {"@2501  Unlink-Ticket: a different switch", 1}} {
		if _, err := e.sim.Sim.Update("incident", dup, map[string]string{"comments": c.text}); err != nil {
			t.Fatal(err)
		}
		if failed := e.invoke(ctx, message(e.gw, "incident", dup)); len(failed) != 0 {
			t.Fatal(failed)
		}
		evs := e.events()
		if len(evs) != c.want {
			t.Fatalf("after %q: events %+v, want %d", c.text, evs, c.want)
		}
		if c.want == 1 {
			ev := evs[0]
			if ev.Type != queue.EventJobCreated || ev.Reason != queue.ReasonUnlinked || ev.DuplicateOf != "INC0020001" || ev.Message == nil || ev.Message.Text != c.text {
				t.Errorf("unlink event %+v, want job.created, reason unlinked, duplicate_of INC0020001, the comment as message", ev)
			}
		}
	}
	if tk := e.ticket("incident", dup); tk.Status != state.StatusAccepted || !tk.Job.Open() || tk.DuplicateOf != "" {
		t.Errorf("unlinked ticket %s job %+v duplicate_of %q, want accepted with an open job, no longer a duplicate", tk.Status, tk.Job, tk.DuplicateOf)
	}
}

// TestConcurrentCommentsOneFollowUp delivers a comment's version five
// times at once to separate processors: one follow-up.
func TestConcurrentCommentsOneFollowUp(t *testing.T) {
	skipOnMoto(t)
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Fan noise"))
	e.invoke(ctx, message(e.gw, "incident", sysID))
	if evs := e.events(); len(evs) != 1 {
		t.Fatalf("events %+v, want job.created", evs)
	}
	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"comments": "@2501 still loud"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 5)
	for range 5 {
		p := pipeline.New(e.deps, e.cfg)
		go func() {
			e := *e
			e.p = p
			done <- e.invoke(ctx, message(e.gw, "incident", sysID))
		}()
	}
	retried := 0
	for range 5 {
		retried += len(<-done)
	}
	// A delivery that met a live claim is retried by SQS; its retry is
	// stale or unchanged.
	for range retried {
		if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
			t.Fatalf("retry failed: %v", failed)
		}
	}
	if evs := e.events(); len(evs) != 1 || evs[0].Type != queue.EventJobFollowUp {
		t.Errorf("events %+v, want one job.follow_up", evs)
	}
}

// TestRetryDecidesAgainstTheBasis: a reopened incident whose job.created
// could not be sent is retried; the retry still sees that the ticket was
// resolved before (not the failed attempt's claim) and starts episode 2.
func TestRetryDecidesAgainstTheBasis(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Reopen me"))
	step := func(p *pipeline.Processor, fields map[string]string, wantFailed bool) {
		t.Helper()
		if fields != nil {
			if _, err := e.sim.Sim.Update("incident", sysID, fields); err != nil {
				t.Fatal(err)
			}
		}
		e2 := *e
		e2.p = p
		if failed := e2.invoke(ctx, message(e.gw, "incident", sysID)); (len(failed) != 0) != wantFailed {
			t.Fatalf("failed %v, want failed=%v\n%s", failed, wantFailed, e.logs.String())
		}
	}
	step(e.p, nil, false)
	step(e.p, map[string]string{"state": "6"}, false)
	if evs := e.events(); !cmp.Equal(types(evs), []string{queue.EventJobCreated, queue.EventJobCancelled}) {
		t.Fatalf("events %v, want created and cancelled", types(evs))
	}
	// The dispatch queue is gone for one attempt.
	broken := e.deps
	broken.Dispatch = queue.NewSender(e.sqs, e.res.DispatchQueueURL+"-missing")
	step(pipeline.New(broken, e.cfg), map[string]string{"state": "2"}, true)
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusRetrying {
		t.Fatalf("after the failed attempt: %s, want retrying", tk.Status)
	}
	step(e.p, nil, false)
	evs := e.events()
	if len(evs) != 1 || evs[0].Type != queue.EventJobCreated || evs[0].Reason != queue.ReasonReopened || evs[0].Episode != 2 {
		t.Errorf("events %+v, want one job.created, reason reopened, episode 2", evs)
	}
}

// TestJournalUnreadable: an integration user that may not read
// sys_journal_field gets no follow-ups, but the job's updates still flow
// and the ticket says why comments are not read.
func TestJournalUnreadable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("No journal"))
	e.invoke(ctx, message(e.gw, "incident", sysID))
	e.events()
	e.sim.Sim.SetReadDenied(snowUser, "sys_journal_field", true)
	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"priority": "1", "comments": "@2501 hello"}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if evs := e.events(); !cmp.Equal(types(evs), []string{queue.EventJobUpdated}) {
		t.Errorf("events %v, want job.updated only", types(evs))
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted || !strings.Contains(tk.Reason, "unreadable") {
		t.Errorf("ticket %s %q, want accepted with a reason saying the journal is unreadable", tk.Status, tk.Reason)
	}
}

// TestDeferredChangeOpensItsWindow: a change request accepted before its
// window is deferred; once due, the same version gets job.created with
// the reason "change window opened", then moving to Implement is an
// update.
func TestDeferredChangeOpensItsWindow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	var mu sync.Mutex
	now := time.Now()
	clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	deps := e.deps
	deps.Tickets = e.tickets.WithClock(clk)
	cfg := e.cfg
	cfg.Now = clk
	e.p = pipeline.New(deps, cfg)

	sysID := e.insert("change_request", change("approved", "-2", snTime(time.Hour), snTime(3*time.Hour)))
	e.invoke(ctx, message(e.gw, "change_request", sysID))
	if tk := e.ticket("change_request", sysID); tk.Status != state.StatusDeferred || tk.Job != nil {
		t.Fatalf("ticket %s job %+v, want deferred without a job", tk.Status, tk.Job)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Fatalf("events %+v before the window", evs)
	}
	mu.Lock()
	now = now.Add(90 * time.Minute)
	mu.Unlock()
	if failed := e.invoke(ctx, message(e.gw, "change_request", sysID)); len(failed) != 0 {
		t.Fatal(failed)
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Type != queue.EventJobCreated || evs[0].Reason != queue.ReasonWindowOpened {
		t.Fatalf("events %+v, want job.created because the window opened", evs)
	}
	if _, err := e.sim.Sim.Update("change_request", sysID, map[string]string{"state": "-1"}); err != nil {
		t.Fatal(err)
	}
	e.invoke(ctx, message(e.gw, "change_request", sysID))
	if next := e.events(); len(next) != 1 || next[0].Type != queue.EventJobUpdated || next[0].JobID != evs[0].JobID {
		t.Errorf("events %+v, want job.updated of job %s", next, evs[0].JobID)
	}
}
