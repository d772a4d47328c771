package pipeline_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// The tests in this file run the processor against the simulator's own
// reproduction of an instance's answers, rather than a hand-written fake
// server: the client, the simulator and the pipeline's reading of the
// client's errors are held together.

// TestFidelityReadDeniedPausesTheGateway: the integration user lacks the
// read right on the table, so the instance answers the record read with
// 403 "Insufficient rights to query records" (Table API, "Table API
// security"; REST API response codes: 403, the user may not perform the
// operation). No retry cures that, so none is sent: the gateway pauses
// until a probe, the ticket says why, and once the right is granted the
// probe resumes the gateway and the change is decided.
func TestFidelityReadDeniedPausesTheGateway(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Router down"))
	e.sim.Sim.SetReadDenied(snowUser, "incident", true)

	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 1 {
		t.Errorf("batch failures %v, want the message, to wait for the gateway", failed)
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusRetrying {
		t.Errorf("ticket status %q, want %q", tk.Status, state.StatusRetrying)
	}
	for _, want := range []string{"gateway misconfigured", "may not read table incident", "Insufficient rights to query records"} {
		if !strings.Contains(tk.Reason, want) {
			t.Errorf("ticket reason %q, want it to contain %q", tk.Reason, want)
		}
	}
	if st := e.budget(); !st.Paused || st.PauseCause != budget.CauseAuth {
		t.Errorf("budget %+v, want paused for auth", st)
	}
	// Until the probe is due, the message does not reach the instance.
	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 1 {
		t.Errorf("batch failures %v, want the message back", failed)
	}
	if n := e.sim.Sim.Stats().Requests[snowsim.RequestKey{Method: http.MethodGet, Status: http.StatusForbidden}]; n != 1 {
		t.Errorf("instance answered %d reads with 403, want 1: no retries", n)
	}

	// The role is granted; at the probe's time the message is the probe.
	e.sim.Sim.SetReadDenied(snowUser, "incident", false)
	e.later(budget.Backoffs[budget.CauseAuth].Base)
	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("after the fix: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if st := e.budget(); st.Paused {
		t.Errorf("budget %+v, want resumed by the probe", st)
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted {
		t.Errorf("ticket status %q, want accepted", tk.Status)
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs, want 1", len(jobs))
	}
}

// TestFidelityHibernatingRetries: a hibernating developer instance answers
// the record read with 200 and an HTML page (developer program, "Instance
// hibernation"). That is no record, and it passes once the owner wakes the
// instance: the message is a batch item failure (SQS delivers it again)
// and the ticket says retrying; woken, the redelivery is accepted.
func TestFidelityHibernatingRetries(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Router down"))
	e.sim.Sim.SetHibernating(true)

	msg := message(e.gw, "incident", sysID)
	if failed := e.invoke(context.Background(), msg); !slices.Equal(failed, []string{msg.MessageId}) {
		t.Fatalf("batch failures %v, want [%s]: hibernation is retried", failed, msg.MessageId)
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusRetrying {
		t.Errorf("ticket status %q, want %q", tk.Status, state.StatusRetrying)
	}
	if !strings.Contains(tk.LastError, "hibernating") {
		t.Errorf("ticket last error %q, want it to say the instance may be hibernating", tk.LastError)
	}
	if jobs := e.jobs(); len(jobs) != 0 {
		t.Errorf("dispatched %d jobs while hibernating, want none", len(jobs))
	}

	e.sim.Sim.SetHibernating(false)
	if failed := e.invoke(context.Background(), msg); len(failed) != 0 {
		t.Fatalf("redelivery after waking: batch failures %v; logs:\n%s", failed, e.logs.String())
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusAccepted {
		t.Errorf("ticket status after waking %q, want %q", tk.Status, state.StatusAccepted)
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs after waking, want 1", len(jobs))
	}
}

// TestFidelityAcknowledgementAnswerLost: the instance stores the
// acknowledgement's work note and the PATCH answer is lost on the way back
// (a 502 from a proxy in front of the node). A journal write appends an
// entry to sys_journal_field each time ("Journal fields"), so a blind
// resend would note twice; the entry is looked up in the simulator's
// sys_journal_field, found, and the write counts as done: one note.
func TestFidelityAcknowledgementAnswerLost(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Router down"))
	var patches atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && patches.Add(1) == 1 {
			e.sim.Sim.ServeHTTP(httptest.NewRecorder(), r) // stored by the instance
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		e.sim.Sim.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	e.setGateway(registry.Gateway{Name: "ops", Active: true, WriteBack: true, InstanceURL: front.URL})

	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v; logs:\n%s", failed, e.logs.String())
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusAccepted || tk.WriteBack != "done" {
		t.Errorf("ticket status %q write_back %q, want accepted, done", tk.Status, tk.WriteBack)
	}
	notes := e.sim.Sim.Journal("incident", sysID, "work_notes")
	if len(notes) != 1 || !strings.Contains(notes[0], tk.JobID) {
		t.Errorf("work notes %q, want exactly one naming job %s", notes, tk.JobID)
	}
	if p := patches.Load(); p != 1 {
		t.Errorf("%d PATCH requests, want 1", p)
	}
	if rec, _ := e.sim.Sim.Record("incident", sysID); rec["sys_mod_count"] != "1" {
		t.Errorf("sys_mod_count %q, want 1: one append", rec["sys_mod_count"])
	}
}
