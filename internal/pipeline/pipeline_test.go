package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// groupNetwork is the sys_id of the "Network" group newEnv seeds; records
// refer to groups by sys_id, as writes to a real instance do.
const groupNetwork = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"

func snTime(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02 15:04:05") }

func incident(desc string) map[string]string {
	return map[string]string{
		"short_description": desc, "priority": "2", "state": "2",
		"assignment_group": groupNetwork, "u_environment": "production", "cmdb_ci": "ci-router-1",
	}
}

func change(approval, st, start, end string) map[string]string {
	return map[string]string{
		"short_description": "Firmware upgrade", "type": "normal", "approval": approval, "state": st,
		"start_date": start, "end_date": end, "assignment_group": groupNetwork, "u_environment": "production",
	}
}

// TestStatuses runs one record through the pipeline per case and checks the
// ticket, the dispatch queue and the batch response.
func TestStatuses(t *testing.T) {
	tests := []struct {
		name    string
		gateway *registry.Gateway // nil: the default active gateway with write-back
		table   string
		fields  map[string]string
		// before runs first, given the record's sys_id (other records, an
		// earlier delivery).
		before      func(e *env, sysID string)
		hidden      bool
		toGateway   string // message's gateway id when not the default
		offline     bool   // the gateway's filters are stored as typed, not resolved
		wantStatus  string
		wantOutcome string // the ticket's last outcome, when it differs from the status
		wantReason  string // substring
		wantJobs    int
		wantFailed  bool // reported as a batch item failure
		wantNotes   int
	}{
		{name: "accepted incident", table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusAccepted, wantReason: "new record", wantJobs: 1, wantNotes: 1},
		{name: "accepted without write-back", gateway: &registry.Gateway{Active: true}, table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusAccepted, wantJobs: 1},
		{name: "inactive gateway", gateway: &registry.Gateway{Active: false}, table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusOutOfScope, wantReason: "gateway inactive"},
		{name: "inactive record", table: "incident", fields: map[string]string{"short_description": "old", "active": "false"},
			wantStatus: state.StatusOutOfScope, wantReason: "record inactive"},
		{name: "assignment group filter", gateway: &registry.Gateway{Active: true, AssignmentGroupFilter: "Database"}, table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusOutOfScope, wantReason: `assignment group "Network"`},
		{name: "assignment group filter matches", gateway: &registry.Gateway{Active: true, AssignmentGroupFilter: "Database,Network"}, table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusAccepted, wantJobs: 1},
		// Registered offline, the filter holds names and is compared as the
		// Business Rule condition compares it: exactly, case included.
		{name: "offline group filter by name", gateway: &registry.Gateway{Active: true, AssignmentGroupFilter: "Network"}, offline: true,
			table: "incident", fields: incident("Router down"), wantStatus: state.StatusAccepted, wantJobs: 1},
		{name: "offline group filter differing in case", gateway: &registry.Gateway{Active: true, AssignmentGroupFilter: "network"}, offline: true,
			table: "incident", fields: incident("Router down"), wantStatus: state.StatusOutOfScope, wantReason: `assignment group "Network"`},
		{name: "environment filter", gateway: &registry.Gateway{Active: true, EnvironmentFilter: "staging"}, table: "incident", fields: incident("Router down"),
			wantStatus: state.StatusOutOfScope, wantReason: `environment "production"`},
		{name: "change in its window", table: "change_request", fields: change("approved", "-1", snTime(-time.Hour), snTime(time.Hour)),
			wantStatus: state.StatusAccepted, wantJobs: 1, wantNotes: 1},
		{name: "change before its window", table: "change_request", fields: change("approved", "-2", snTime(2*time.Hour), snTime(4*time.Hour)),
			wantStatus: state.StatusDeferred, wantReason: "change window opens"},
		{name: "change after its window", table: "change_request", fields: change("approved", "-1", snTime(-4*time.Hour), snTime(-2*time.Hour)),
			wantStatus: state.StatusExpired, wantReason: "change window ended"},
		{name: "change not approved", table: "change_request", fields: change("requested", "-2", snTime(time.Hour), snTime(2*time.Hour)),
			wantStatus: state.StatusOutOfScope, wantReason: "not approved"},
		{name: "change in another state", table: "change_request", fields: change("approved", "-5", "", ""),
			wantStatus: state.StatusOutOfScope, wantReason: "neither Scheduled"},
		// Without write-back, so that the record stays at the version processed.
		{name: "duplicate delivery is stale", gateway: &registry.Gateway{Active: true}, table: "incident", fields: incident("Router down"),
			before: func(e *env, sysID string) {
				if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
					e.t.Fatalf("first delivery failed: %v", failed)
				}
			},
			wantStatus: state.StatusAccepted, wantOutcome: state.OutcomeStale, wantJobs: 1},
		// The note was the record's only change: the ticket records the
		// version it produced, so its echo is stale without a journal read.
		{name: "write-back echo is stale", table: "incident", fields: incident("Router down"),
			before: func(e *env, sysID string) {
				e.invoke(context.Background(), message(e.gw, "incident", sysID))
				if got := e.ticket("incident", sysID).SysModCount; got != 1 {
					e.t.Fatalf("version after the note %d, want 1", got)
				}
			},
			wantStatus: state.StatusAccepted, wantOutcome: state.OutcomeStale, wantJobs: 1, wantNotes: 1},
		{name: "duplicate incident within the window", table: "incident", fields: incident("Router  DOWN!"),
			before: func(e *env, _ string) {
				first := e.insert("incident", incident("router down"))
				e.invoke(context.Background(), message(e.gw, "incident", first))
			},
			wantStatus: state.StatusDeduplicated, wantReason: "same short description and CI as INC", wantJobs: 1, wantNotes: 1},
		{name: "dedup window off", gateway: &registry.Gateway{Active: true, DedupWindowMinutes: -1}, table: "incident", fields: incident("router down"),
			before: func(e *env, _ string) {
				e.invoke(context.Background(), message(e.gw, "incident", e.insert("incident", incident("router down"))))
			},
			wantStatus: state.StatusAccepted, wantJobs: 2},
		// A ticket that saw the record records the 404 (unknown_test.go:
		// one that never did stores nothing).
		{name: "record hidden or deleted", gateway: &registry.Gateway{Active: true}, table: "incident", fields: incident("secret"), hidden: true,
			before: func(e *env, sysID string) {
				if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
					e.t.Fatalf("first delivery failed: %v", failed)
				}
				e.jobs()
			},
			wantStatus: state.StatusFailed, wantReason: "not found in ServiceNow"},
		{name: "unknown gateway", table: "incident", fields: incident("x"), toGateway: "gtw_22222222-2222-4222-8222-222222222222",
			wantStatus: state.StatusFailed, wantReason: "unknown gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pipeline.Config{})
			if tt.gateway != nil {
				g := *tt.gateway
				g.Name = "ops"
				e.updateGateway(g, tt.offline)
			}
			sysID := e.insert(tt.table, tt.fields)
			if tt.before != nil {
				tt.before(e, sysID)
			}
			if tt.hidden {
				e.sim.Sim.SetFaults(snowsim.Faults{Hidden: map[string]bool{tt.table + "/" + sysID: true}})
			}
			gw := e.gw
			if tt.toGateway != "" {
				gw = tt.toGateway
			}
			msg := message(gw, tt.table, sysID)
			failed := e.invoke(context.Background(), msg)
			if got := len(failed) != 0; got != tt.wantFailed {
				t.Errorf("batch failures %v, want failed=%v", failed, tt.wantFailed)
			}
			tk, err := e.tickets.Get(context.Background(), state.Key{GatewayID: gw, Table: tt.table, SysID: sysID})
			if err != nil {
				t.Fatalf("ticket: %v", err)
			}
			wantOutcome := tt.wantOutcome
			if wantOutcome == "" {
				wantOutcome = tt.wantStatus
			}
			if tk.Status != tt.wantStatus || tk.LastOutcome != wantOutcome || !strings.Contains(tk.Reason, tt.wantReason) {
				t.Errorf("ticket status %q outcome %q reason %q; want %q, %q, reason containing %q",
					tk.Status, tk.LastOutcome, tk.Reason, tt.wantStatus, wantOutcome, tt.wantReason)
			}
			jobs := e.jobs()
			if len(jobs) != tt.wantJobs {
				t.Errorf("dispatched %d jobs, want %d", len(jobs), tt.wantJobs)
			}
			if notes := e.sim.Sim.WorkNotes(tt.table, sysID); len(notes) != tt.wantNotes {
				t.Errorf("work notes %q, want %d", notes, tt.wantNotes)
			}
			if tt.wantStatus == state.StatusDeferred {
				due, err := e.tickets.DueTickets(context.Background(), e.gw, time.Now().Add(3*time.Hour))
				if err != nil || len(due) != 1 || due[0].SysID != sysID {
					t.Errorf("DueTickets = %v, %v; want the deferred ticket", due, err)
				}
			}
			if t.Failed() {
				t.Logf("logs:\n%s", e.logs.String())
			}
		})
	}
}

// TestAcceptedJobAndTicket checks the job request and the ticket of an
// accepted incident field by field, and the echo of the work note.
func TestAcceptedJobAndTicket(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Router down"))
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	jobs := e.jobs()
	if len(jobs) != 1 {
		t.Fatalf("dispatched %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	tk := e.ticket("incident", sysID)
	if j.JobID == "" || j.JobID != tk.JobID {
		t.Errorf("job id %q, ticket job id %q: want equal and set", j.JobID, tk.JobID)
	}
	got := []string{j.GatewayID, j.GatewayName, j.Table, j.SysID, j.Ticket.Number, j.Ticket.ShortDescription, j.Ticket.AssignmentGroupName, j.Ticket.Environment, j.Ticket.ConfigurationItem, j.Reason}
	want := []string{e.gw, "ops", "incident", sysID, tk.Number, "Router down", "Network", "production", "ci-router-1", "new record"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job request (-want +got):\n%s", diff)
	}
	if j.Type != queue.EventJobCreated || j.SchemaVersion != queue.EventSchemaVersion || j.EventID == "" || j.Sequence != 1 || j.Episode != 1 || j.OccurredAt.IsZero() {
		t.Errorf("event %s v%d id %q sequence %d episode %d at %v; want job.created v%d, an id, 1, 1, a time",
			j.Type, j.SchemaVersion, j.EventID, j.Sequence, j.Episode, j.OccurredAt, queue.EventSchemaVersion)
	}
	if tk.Job == nil || tk.Job.ID != j.JobID || tk.Job.State != state.JobOpen || tk.Job.Episode != 1 || len(tk.Job.Events) != 1 || tk.Job.Events[0].EventID != j.EventID {
		t.Errorf("ticket job %+v, want open job %s, episode 1, its job.created recorded", tk.Job, j.JobID)
	}
	if key, err := e.tickets.JobTicketKey(ctx, j.JobID); err != nil || key != tk.Key() {
		t.Errorf("JobTicketKey(%s) = %v, %v; want %v", j.JobID, key, err, tk.Key())
	}
	notes := e.sim.Sim.WorkNotes("incident", sysID)
	if len(notes) != 1 || !strings.Contains(notes[0], `"ops"`) || !strings.Contains(notes[0], j.JobID) {
		t.Errorf("work notes %q, want one naming the gateway and job %s", notes, j.JobID)
	}
	if tk.WriteBack != "done" {
		t.Errorf("ticket write_back %q, want done", tk.WriteBack)
	}

	// The note bumped sys_mod_count, and the ticket recorded it: its echo
	// is stale.
	e.invoke(ctx, message(e.gw, "incident", sysID))
	tk = e.ticket("incident", sysID)
	if tk.Status != state.StatusAccepted || tk.LastOutcome != state.OutcomeStale || tk.SysModCount != 1 {
		t.Errorf("after echo: status %q outcome %q sys_mod_count %d; want accepted, stale, 1", tk.Status, tk.LastOutcome, tk.SysModCount)
	}
	if jobs := e.jobs(); len(jobs) != 0 {
		t.Errorf("the echo sent %d events, want none", len(jobs))
	}
	// A real change is news for the same job, never a new one.
	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"priority": "1"}); err != nil {
		t.Fatal(err)
	}
	e.invoke(ctx, message(e.gw, "incident", sysID))
	jobs = e.jobs()
	if len(jobs) != 1 || jobs[0].Type != queue.EventJobUpdated || jobs[0].JobID != j.JobID || !cmp.Equal(jobs[0].ChangedFields, []string{"priority"}) {
		t.Errorf("after a priority change: events %+v, want one job.updated of job %s with changed_fields [priority]", jobs, j.JobID)
	}
	if !strings.Contains(e.emf.String(), `"accepted":1`) {
		t.Errorf("no EMF line with accepted=1 in %s", e.emf.String())
	}
}

// TestConcurrentDeliveriesDispatchOnce delivers one record five times at
// once, in separate invocations as concurrent Lambda instances would.
func TestConcurrentDeliveriesDispatchOnce(t *testing.T) {
	skipOnMoto(t)
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Disk full"))
	// Separate processors: separate Lambda instances share nothing but AWS.
	var wg sync.WaitGroup
	failures := make([][]string, 5)
	for i := range 5 {
		p := pipeline.New(e.deps, e.cfg)
		wg.Go(func() {
			e := *e
			e.p = p
			failures[i] = e.invoke(ctx, message(e.gw, "incident", sysID))
		})
	}
	wg.Wait()
	for i, f := range failures {
		if len(f) != 0 {
			t.Errorf("invocation %d failed messages %v", i, f)
		}
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs, want 1", len(jobs))
	}
	if notes := e.sim.Sim.WorkNotes("incident", sysID); len(notes) != 1 {
		t.Errorf("work notes %q, want 1", notes)
	}
}

// TestMixedBatch: one batch with an accepted record, a poison message, a
// record on a failing instance and a deleted record returns exactly the
// retryable ones.
func TestMixedBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	broken, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser(snowUser, snowPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broken.Close)
	brokenGW := e.createGateway(registry.Gateway{Name: "broken", Active: true, InstanceURL: broken.URL})
	rec, err := broken.Sim.Insert("incident", incident("unreachable"))
	if err != nil {
		t.Fatal(err)
	}
	broken.Sim.SetFaults(snowsim.Faults{ErrorRate: 1, ErrorStatus: 503})

	ok := message(e.gw, "incident", e.insert("incident", incident("ok")))
	gone := message(e.gw, "incident", "0123456789abcdef0123456789abcdef")
	poison := message(e.gw, "incident", "x")
	poison.Body = `{"gateway_id": 42`
	transient := message(brokenGW, "incident", rec["sys_id"])

	failed := e.invoke(ctx, ok, poison, transient, gone)
	if diff := cmp.Diff([]string{poison.MessageId, transient.MessageId}, failed); diff != "" {
		t.Errorf("batch item failures (-want +got):\n%s", diff)
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs, want 1", len(jobs))
	}
	tk, err := e.tickets.Get(ctx, state.Key{GatewayID: brokenGW, Table: "incident", SysID: rec["sys_id"]})
	if err != nil || tk.Status != state.StatusRetrying || !strings.Contains(tk.LastError, "503") {
		t.Errorf("ticket of the failing instance: %+v, %v; want retrying with the 503", tk, err)
	}
	// No ticket ever saw the missing record: nothing is stored for it.
	if g, err := e.tickets.Get(ctx, state.Key{GatewayID: e.gw, Table: "incident", SysID: "0123456789abcdef0123456789abcdef"}); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("unknown record's ticket %+v, %v; want none", g, err)
	}
	logLines := strings.Count(e.logs.String(), `"msg":"message processed"`)
	if logLines != 4 {
		t.Errorf("%d log lines for 4 messages, want 4:\n%s", logLines, e.logs.String())
	}

	// The instance recovers: the redelivery goes through.
	broken.Sim.SetFaults(snowsim.Faults{})
	if failed := e.invoke(ctx, transient); len(failed) != 0 {
		t.Errorf("redelivery failed: %v", failed)
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("redelivery dispatched %d jobs, want 1", len(jobs))
	}
}

// TestRateLimited: a 429 with Retry-After pauses the gateway until then,
// for every caller: the message is reported back at once (not slept on
// within the invocation) with its visibility pushed to the pause's end,
// and passes once the pause is over.
func TestRateLimited(t *testing.T) {
	e := newEnv(t, pipeline.Config{Reserve: time.Second})
	e.pacing(redelivery.Policy{Base: time.Second, Cap: 2 * time.Second}, nil)
	sysID := e.insert("incident", incident("throttled"))
	e.sim.Sim.SetFaults(snowsim.Faults{Status429Rate: 1, RetryAfter: 8 * time.Second})

	body, _ := json.Marshal(queue.IntakeMessage{GatewayID: e.gw, Table: "incident", SysID: sysID, Source: queue.SourceWebhook, ReceivedAt: time.Now().UTC()})
	e.enqueue(string(body))
	msgs := e.receiveIntake()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	resp, _ := e.p.Handle(ctx, events.SQSEvent{Records: msgs})
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("batch failures %v, want the message", resp.BatchItemFailures)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("invocation took %s: the 429 was slept on", elapsed)
	}
	if st := e.budget(); !st.Paused || st.PauseCause != budget.CauseRateLimited {
		t.Errorf("budget %+v, want paused, rate_limited", st)
	}
	var line struct {
		RetryIn float64 `json:"retry_in_s"`
	}
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `"retry_in_s"`) {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line.RetryIn < 8 {
		t.Errorf("retry in %gs, want at least the Retry-After (8s); logs:\n%s", line.RetryIn, e.logs)
	}

	e.sim.Sim.SetFaults(snowsim.Faults{})
	e.later(9 * time.Second)
	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("after the pause: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted {
		t.Errorf("ticket status %q, want accepted", tk.Status)
	}
}

// TestSQSEventFixture feeds a recorded SQS event: a webhook message, its
// duplicate and a message that is not JSON.
func TestSQSEventFixture(t *testing.T) {
	skipOnMoto(t) // the batch delivers one record twice, concurrently
	e := newEnv(t, pipeline.Config{})
	e.seed(`{"incident": [{"sys_id": "9d385017c611228701d22104cc95c371", "number": "INC0010042",
		"short_description": "VPN unreachable", "state": "2", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
		"u_environment": "production", "sys_mod_count": "4", "sys_updated_on": "2026-03-01 10:00:00"}]}`)
	payload, err := os.ReadFile("testdata/sqs_event.json")
	if err != nil {
		t.Fatal(err)
	}
	// The recorded messages are for this test's gateway.
	payload = bytes.ReplaceAll(payload, []byte("gtw_11111111-1111-4111-8111-111111111111"), []byte(e.gw))
	// ... and were sent a minute ago, within the retry horizon (older
	// ones received before would go to the dead-letter queue unread).
	payload = regexp.MustCompile(`"(SentTimestamp|ApproximateFirstReceiveTimestamp)": "\d+"`).ReplaceAll(payload,
		[]byte(fmt.Sprintf(`"$1": "%d"`, time.Now().Add(-time.Minute).UnixMilli())))
	failed := e.invokeJSON(context.Background(), payload)
	if diff := cmp.Diff([]string{"c80e8021-a70a-42c7-a470-796e1186f753"}, failed); diff != "" {
		t.Errorf("batch item failures (-want +got):\n%s", diff)
	}
	if jobs := e.jobs(); len(jobs) != 1 || jobs[0].Number != "INC0010042" || jobs[0].SysModCount != 4 {
		t.Errorf("jobs %+v, want one for INC0010042 version 4", jobs)
	}
	if tk := e.ticket("incident", "9d385017c611228701d22104cc95c371"); tk.Status != state.StatusAccepted {
		t.Errorf("ticket status %q, want accepted", tk.Status)
	}
}

// TestCrashAfterClaim: a processor that claimed and vanished leaves a
// processing ticket; the redelivery after the lease takes it over and
// dispatches with the job id the crashed one would have used.
func TestCrashAfterClaim(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Crash"))
	rec, _ := e.sim.Sim.Record("incident", sysID)
	m := state.Mirror{Number: rec["number"], State: "2", Priority: "2", ShortDescription: "Crash",
		AssignmentGroup: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", AssignmentGroupName: "Network", Environment: "production",
		ConfigurationItem: "ci-router-1", Active: true}
	crashed := state.Claim{Key: state.Key{GatewayID: e.gw, Table: "incident", SysID: sysID}, Mirror: m,
		SysUpdatedOn: rec["sys_updated_on"], Token: "crashed", Lease: time.Second}
	if _, err := e.tickets.Claim(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	// While the lease holds, a delivery is stale.
	crashed.Token, crashed.Lease = "other", time.Minute
	if _, err := e.tickets.Claim(ctx, crashed); !errors.Is(err, state.ErrStale) {
		t.Fatalf("claim under a live lease = %v, want ErrStale", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("redelivery failed: %v\n%s", failed, e.logs.String())
	}
	jobs := e.jobs()
	if len(jobs) != 1 {
		t.Fatalf("dispatched %d jobs, want 1", len(jobs))
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted || tk.JobID != jobs[0].JobID {
		t.Errorf("ticket %q job %q, want accepted with job %q", tk.Status, tk.JobID, jobs[0].JobID)
	}
}

// skipOnMoto skips a test that needs conditional writes to be atomic: moto
// evaluates them without isolation, so concurrent claims can all win there.
// The sequential behaviour is tested on moto too.
func skipOnMoto(t *testing.T) {
	t.Helper()
	if awstest.Kind() == awstest.Moto {
		t.Skip("moto does not isolate concurrent conditional writes")
	}
}
