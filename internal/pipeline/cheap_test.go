package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/state"
)

// messageAt is message with the Business Rule's sys_mod_count.
func messageAt(gateway, table, sysID string, version int) events.SQSMessage {
	m := message(gateway, table, sysID)
	var im queue.IntakeMessage
	_ = json.Unmarshal([]byte(m.Body), &im)
	im.SysModCount = &version
	body, _ := json.Marshal(im)
	m.Body = string(body)
	return m
}

// requests is how many requests the simulator has answered.
func (e *env) requests() int {
	n := 0
	for _, c := range e.sim.Sim.Stats().Requests {
		n += c
	}
	return n
}

// statuses are the outcomes the processor logged, by message id.
func (e *env) statuses() map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			MessageID string `json:"message_id"`
			Status    string `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "message processed" {
			out[l.MessageID] = l.Status
		}
	}
	return out
}

// TestCheapDuplicates: a message whose sys_mod_count is at or below the
// ticket's decided version is stale without any ServiceNow call (the
// echo of our own acknowledgement included), and messages for one record
// in one batch cost what one message costs.
func TestCheapDuplicates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Cheap duplicates"))
	if failed := e.invoke(ctx, messageAt(e.gw, "incident", sysID, 0)); len(failed) != 0 {
		t.Fatal(failed)
	}
	if evs := e.jobs(); len(evs) != 1 {
		t.Fatalf("%d events, want one job.created", len(evs))
	}
	tk := e.ticket("incident", sysID)
	if tk.Decided() != 1 || tk.SysModCount != 1 {
		t.Fatalf("ticket decided %d seen %d, want 1 and 1 (the acknowledgement's version)", tk.Decided(), tk.SysModCount)
	}

	// The same version again (a double rule firing), and the echo of our
	// acknowledgement: stale, and ServiceNow hears nothing of them.
	before := e.requests()
	again, echo := messageAt(e.gw, "incident", sysID, 0), messageAt(e.gw, "incident", sysID, 1)
	if failed := e.invoke(ctx, again); len(failed) != 0 {
		t.Fatal(failed)
	}
	if failed := e.invoke(ctx, echo); len(failed) != 0 {
		t.Fatal(failed)
	}
	if n := e.requests() - before; n != 0 {
		t.Errorf("duplicates made %d ServiceNow calls, want 0", n)
	}
	st := e.statuses()
	if st[again.MessageId] != pipeline.StatusStale || st[echo.MessageId] != pipeline.StatusStale {
		t.Errorf("outcomes %q and %q, want stale", st[again.MessageId], st[echo.MessageId])
	}

	// A person's change, delivered three times in one batch (one without
	// the hint): one fetch and one journal read, as for a single message.
	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"priority": "1"}); err != nil {
		t.Fatal(err)
	}
	batch := []events.SQSMessage{messageAt(e.gw, "incident", sysID, 2), message(e.gw, "incident", sysID), messageAt(e.gw, "incident", sysID, 2)}
	before = e.requests()
	if failed := e.invoke(ctx, batch...); len(failed) != 0 {
		t.Fatal(failed)
	}
	inBatch := e.requests() - before
	st = e.statuses()
	got := []string{st[batch[0].MessageId], st[batch[1].MessageId], st[batch[2].MessageId]}
	// The message without a hint leads: it asks for whatever is current.
	if diff := cmp.Diff([]string{pipeline.StatusStale, state.StatusAccepted, pipeline.StatusStale}, got); diff != "" {
		t.Errorf("batch outcomes (-want +got):\n%s", diff)
	}
	if evs := e.jobs(); len(evs) != 1 || evs[0].Type != queue.EventJobUpdated {
		t.Errorf("batch sent %+v, want one job.updated", evs)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"priority": "2"}); err != nil {
		t.Fatal(err)
	}
	before = e.requests()
	if failed := e.invoke(ctx, messageAt(e.gw, "incident", sysID, 3)); len(failed) != 0 {
		t.Fatal(failed)
	}
	single := e.requests() - before
	t.Logf("ServiceNow calls: 3 messages for one record in a batch %d, one message %d", inBatch, single)
	if inBatch != single || single == 0 {
		t.Errorf("three messages for one record made %d ServiceNow calls, one message %d: want the same", inBatch, single)
	}
	if evs := e.jobs(); len(evs) != 1 || evs[0].Type != queue.EventJobUpdated {
		t.Errorf("single message sent %+v, want one job.updated", evs)
	}
}

// TestFailedDecisionIsNotHandled: a version whose dispatch failed after
// its claim is not decided, so its next delivery (or the reconciler's) is
// fetched and dispatched, not taken for a duplicate.
func TestFailedDecisionIsNotHandled(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	var deny atomic.Bool
	deny.Store(true)
	deps := e.deps
	deps.Dispatch = gateDispatch{deny: &deny, next: e.deps.Dispatch}
	p := pipeline.New(deps, e.cfg)
	sysID := e.insert("incident", incident("Dispatch denied"))
	msg := messageAt(e.gw, "incident", sysID, 0)
	for range 3 {
		resp, err := p.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}})
		if err != nil || len(resp.BatchItemFailures) != 1 {
			t.Fatalf("denied dispatch: %+v, %v; want the message retried", resp, err)
		}
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusRetrying || tk.DecidedVersion != nil || tk.StuckAt == "" {
		t.Fatalf("ticket %s decided %v stuck %q, want retrying, undecided, stuck", tk.Status, tk.DecidedVersion, tk.StuckAt)
	}
	deny.Store(false)
	before := e.requests()
	resp, err := p.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("after the fix: %+v, %v", resp, err)
	}
	if e.requests() == before {
		t.Errorf("the redelivery made no ServiceNow call: taken for a duplicate")
	}
	if evs := e.jobs(); len(evs) != 1 || evs[0].Type != queue.EventJobCreated {
		t.Errorf("events %+v, want one job.created", evs)
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted || tk.Decided() < 0 || tk.StuckAt != "" {
		t.Errorf("ticket %s decided %d stuck %q, want accepted, decided, not stuck", tk.Status, tk.Decided(), tk.StuckAt)
	}
}

// gateDispatch refuses every event while deny is set.
type gateDispatch struct {
	deny *atomic.Bool
	next pipeline.Dispatcher
}

func (d gateDispatch) SendJSON(ctx context.Context, body any, attrs map[string]string) error {
	if d.deny.Load() {
		return errors.New("dispatch queue: access denied")
	}
	return d.next.SendJSON(ctx, body, attrs)
}
