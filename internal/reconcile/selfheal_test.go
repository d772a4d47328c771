package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

// deniedDispatch is a dispatch queue that refuses every event, for longer
// than any retry budget.
type deniedDispatch struct{}

func (deniedDispatch) SendJSON(context.Context, any, map[string]string) error {
	return errors.New("dispatch queue: access denied")
}

// processorWith is the env's processor with another dispatch queue.
func (e *env) processorWith(d pipeline.Dispatcher) *pipeline.Processor {
	return pipeline.New(pipeline.Deps{
		Gateways:   registry.New(e.ddb, e.res.RegistryTable),
		Tickets:    e.tickets,
		Dispatch:   d,
		ServiceNow: pipeline.Connections{Pool: e.pool()},
	}, pipeline.Config{Logger: slog.New(slog.DiscardHandler)})
}

// processFailing runs msgs through p in one batch and returns how many
// failed: those messages then go the way of a message out of receives.
func (e *env) processFailing(p *pipeline.Processor, msgs []queue.IntakeMessage) int {
	e.t.Helper()
	var ev events.SQSEvent
	for i, m := range msgs {
		body, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("f-%d", i), Body: string(body), EventSource: "aws:sqs"})
	}
	resp, err := p.Handle(context.Background(), ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(resp.BatchItemFailures)
}

func only(msgs []queue.IntakeMessage, sysID string) []queue.IntakeMessage {
	var out []queue.IntakeMessage
	for _, m := range msgs {
		if m.SysID == sysID {
			out = append(out, m)
		}
	}
	return out
}

// TestNothingLeftForARedrive: a change whose dispatch failed on every
// attempt (its message dead-lettered), and one whose processor vanished
// after its claim (its message lost too), are both found again by the
// reconciler, without anyone redriving anything: the first because its
// decision never completed (the watermark pass compares with the decided
// version), the second from the stuck index once its lease is long past.
// Each is enqueued once per run, and not again while its message is
// queued; when the messages vanish, the markers expire and the next run
// sends them again.
func TestNothingLeftForARedrive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.sim.SetOutbound(false)
	r := e.reconciler(reconcile.Config{})
	crashed := e.insert(map[string]string{"short_description": "crashed"})
	e.clk.add(3 * time.Minute)
	failed := e.insert(map[string]string{"short_description": "failed"})
	e.clk.add(time.Minute)

	rep := e.runReport(r)
	first := e.drain()
	if n := rep.Totals().Enqueued; n != 2 || len(first) != 2 {
		t.Fatalf("first run enqueued %d (%d messages), want 2", n, len(first))
	}
	// crashed: a processor claimed it and vanished, with its message.
	rec, _ := e.sim.Record(registry.TableIncident, crashed)
	v, _ := strconv.Atoi(rec["sys_mod_count"])
	long := e.tickets.WithClock(func() time.Time { return time.Now().Add(-time.Hour) })
	if _, err := long.Claim(ctx, state.Claim{Key: state.Key{GatewayID: e.gatewayID, Table: registry.TableIncident, SysID: crashed},
		Mirror: state.Mirror{Number: rec["number"], ShortDescription: "crashed", Active: true}, SysModCount: v, Token: "gone", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// failed: the dispatch queue refuses it on every receive; the message
	// is dead-lettered.
	denied := e.processorWith(deniedDispatch{})
	for range 3 {
		if n := e.processFailing(denied, only(first, failed)); n != 1 {
			t.Fatalf("denied dispatch: %d failures, want 1", n)
		}
	}
	if tk, _ := e.ticket(failed); tk.Status != state.StatusRetrying || tk.DecidedVersion != nil {
		t.Fatalf("failed ticket %s decided %v, want retrying and undecided", tk.Status, tk.DecidedVersion)
	}

	// While the first run's messages count as queued, nothing is sent again.
	e.clk.add(state.StuckAfter + time.Minute)
	rep = e.runReport(r)
	if n := rep.Totals().Enqueued; n != 0 || len(rep.Stuck) != 1 || rep.Stuck[0].Enqueued != 0 || rep.Stuck[0].Skipped != 2 {
		t.Errorf("run while queued: enqueued %d, stuck %+v; want nothing sent, both stuck skipped", n, rep.Stuck)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("run while queued sent %+v", msgs)
	}

	// The messages are gone (dead-lettered, lost): once the markers expire
	// the next run sends each once, the failed one from the watermark pass
	// (it reads that record again), the crashed one from the stuck index.
	e.clk.add(reconcile.DefaultQueuedFor)
	rep = e.runReport(r)
	healed := e.drain()
	if diff := cmp.Diff(map[string]int{crashed: 1, failed: 1}, bySysID(t, healed)); diff != "" {
		t.Errorf("healing run enqueued (-want +got):\n%s", diff)
	}
	if n := rep.Totals().Enqueued; n != 1 {
		t.Errorf("watermark pass enqueued %d, want 1 (the failed record)", n)
	}
	if len(rep.Stuck) != 1 || rep.Stuck[0].Found != 2 || rep.Stuck[0].Enqueued != 1 || rep.Stuck[0].Skipped != 1 || rep.Stuck[0].Err != nil {
		t.Errorf("stuck %+v, want 2 found, 1 enqueued, 1 skipped (sent by this run already)", rep.Stuck)
	}
	for _, m := range healed {
		if m.Source != queue.SourceReconcile {
			t.Errorf("message %+v, want source reconcile", m)
		}
	}
	if !strings.Contains(e.emf.String(), `"`+reconcile.MetricStuckEnqueued+`"`) {
		t.Errorf("EMF lines lack %s", reconcile.MetricStuckEnqueued)
	}

	e.process(healed)
	created := map[string]int{}
	for _, j := range e.jobs() {
		if j.Type == queue.EventJobCreated {
			created[j.SysID]++
		}
	}
	if diff := cmp.Diff(map[string]int{crashed: 1, failed: 1}, created); diff != "" {
		t.Errorf("job.created per record (-want +got):\n%s", diff)
	}
	for _, id := range []string{crashed, failed} {
		if tk, err := e.ticket(id); err != nil || tk.Status != state.StatusAccepted || tk.Decided() != e.version(id) || tk.StuckAt != "" {
			t.Errorf("ticket %s: %s decided %d stuck %q (%v); want accepted at version %d, not stuck", id, tk.Status, tk.Decided(), tk.StuckAt, err, e.version(id))
		}
	}
	// Healed: the next runs find nothing stuck and send nothing.
	e.clk.add(reconcile.DefaultQueuedFor)
	rep = e.runReport(r)
	if n := rep.Totals().Enqueued; n != 0 || rep.Stuck[0].Found != 0 {
		t.Errorf("after healing: enqueued %d, stuck %+v; want nothing", n, rep.Stuck)
	}
}

// TestDueSentOncePerDueTime: a due change request is enqueued once for
// its due time, not every run; deleted before it is processed, it fails
// permanently and is never enqueued again.
func TestDueSentOncePerDueTime(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.SetOutbound(false)
	e.addWebhook(registry.TableChangeRequest, e.clk.now())
	rec, err := e.sim.Insert(registry.TableChangeRequest, map[string]string{
		"short_description": "patch", "type": "normal", "approval": "approved", "state": "-2",
		"start_date": time.Now().UTC().Add(30 * time.Minute).Format("2006-01-02 15:04:05"),
		"end_date":   time.Now().UTC().Add(2 * time.Hour).Format("2006-01-02 15:04:05"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.process([]queue.IntakeMessage{{GatewayID: e.gatewayID, Table: registry.TableChangeRequest,
		SysID: rec["sys_id"], Source: queue.SourceWebhook, ReceivedAt: time.Now()}})
	r := e.reconciler(reconcile.Config{})
	e.clk.t = time.Now().UTC().Add(time.Hour) // the window has opened
	if rep := e.runReport(r); len(rep.Due) != 1 || rep.Due[0].Enqueued != 1 {
		t.Fatalf("due %+v, want one enqueued", rep.Due)
	}
	var deferred int
	for _, m := range e.drain() {
		if m.Source == queue.SourceDeferred {
			deferred++
		}
	}
	if deferred != 1 {
		t.Fatalf("%d deferred messages, want 1", deferred)
	}

	dueRun := func(name string, wantEnqueued, wantSkipped int) {
		t.Helper()
		rep := e.runReport(r)
		if len(rep.Due) != 1 || rep.Due[0].Enqueued != wantEnqueued || rep.Due[0].Skipped != wantSkipped || rep.Due[0].Err != nil {
			t.Errorf("%s: due %+v, want %d enqueued, %d skipped", name, rep.Due, wantEnqueued, wantSkipped)
		}
	}
	e.clk.add(2 * time.Minute)
	dueRun("sent for its due time already", 0, 1)
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("re-sent %+v", msgs)
	}

	// Deleted before the processor got to it: 404, a permanent failure.
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/api/now/table/change_request/"+rec["sys_id"], nil)
	req.SetBasicAuth(snowUser, snowPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("delete: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	e.process([]queue.IntakeMessage{{GatewayID: e.gatewayID, Table: registry.TableChangeRequest,
		SysID: rec["sys_id"], Source: queue.SourceDeferred, ReceivedAt: time.Now()}})
	tk, err := e.tickets.Get(t.Context(), state.Key{GatewayID: e.gatewayID, Table: registry.TableChangeRequest, SysID: rec["sys_id"]})
	if err != nil || tk.Status != state.StatusFailed || tk.DueAt != "" {
		t.Fatalf("deleted change ticket %s due %q (%v), want failed and out of the due index", tk.Status, tk.DueAt, err)
	}
	e.clk.add(reconcile.DefaultQueuedFor)
	dueRun("after a permanent failure", 0, 0)
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("enqueued %+v after the change was deleted", msgs)
	}
}

// runReport runs a reconciliation pass and returns its report.
func (e *env) runReport(r *reconcile.Reconciler) reconcile.Report {
	e.t.Helper()
	rep, err := r.Run(context.Background(), reconcile.Options{})
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	return rep
}
