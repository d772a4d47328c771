package pipeline_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// TestUnknownRecordLeavesNoTicket: a well-formed sys_id ServiceNow does
// not know (a replayed message, a probe) and no ticket has seen is logged
// and counted (UnknownRecord), not stored, and the message is done; an
// item that only held an earlier transient failure of that sys_id goes
// too, so the reconciler does not re-enqueue it as stuck forever.
func TestUnknownRecordLeavesNoTicket(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	const probe = "0123456789abcdef0123456789abcdef"
	if failed := e.invoke(ctx, message(e.gw, "incident", probe)); len(failed) != 0 {
		t.Errorf("batch failures %v, want none: the message is done", failed)
	}
	k := state.Key{GatewayID: e.gw, Table: "incident", SysID: probe}
	if tk, err := e.tickets.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get = %+v, %v; want no ticket", tk, err)
	}
	if !strings.Contains(e.logs.String(), `"status":"unknown_record"`) {
		t.Errorf("no log line with status unknown_record:\n%s", e.logs)
	}
	if !regexp.MustCompile(`"UnknownRecord":1\b`).MatchString(e.emf.String()) {
		t.Errorf("no EMF line with UnknownRecord=1 in %s", e.emf.String())
	}

	// A failure before any claim (a 503, say) left an item; the 404 that
	// follows removes it, stuck index and all.
	stray := state.Key{GatewayID: e.gw, Table: "incident", SysID: "fedcba9876543210fedcba9876543210"}
	if err := e.tickets.DeferFailure(ctx, stray, "fetch record: 503", "reconciler", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(ctx, message(e.gw, "incident", stray.SysID)); len(failed) != 0 {
		t.Errorf("batch failures %v, want none", failed)
	}
	if tk, err := e.tickets.Get(ctx, stray); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get = %+v, %v; want the item of the failure gone", tk, err)
	}
	stuck, err := e.tickets.StuckTickets(ctx, e.gw, time.Now().Add(48*time.Hour), 0)
	if err != nil || len(stuck) != 0 {
		t.Errorf("StuckTickets = %v, %v; want none", stuck, err)
	}
	if n := len(regexp.MustCompile(`"UnknownRecord":1\b`).FindAllString(e.emf.String(), -1)); n != 2 {
		t.Errorf("%d EMF lines with UnknownRecord=1, want one per batch (2): %s", n, e.emf.String())
	}
}

// TestKnownRecordGoneIsStored: a record the ticket mirrored, then deleted
// (or hidden by an ACL), keeps the ticket and records the 404 on it.
func TestKnownRecordGoneIsStored(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", map[string]string{"short_description": "old", "active": "false"})
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("first delivery failed: %v", failed)
	}
	e.sim.Sim.SetFaults(snowsim.Faults{Hidden: map[string]bool{"incident/" + sysID: true}})
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Errorf("batch failures %v, want none", failed)
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusFailed || !strings.Contains(tk.Reason, "not found in ServiceNow") || tk.Number == "" {
		t.Errorf("ticket %q %q number %q; want failed, not found, the mirror kept", tk.Status, tk.Reason, tk.Number)
	}
}
