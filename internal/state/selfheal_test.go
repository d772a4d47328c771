package state_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/state"
)

// decided is the ticket's decided version as DecidedVersion reads it, -1
// for none.
func decided(t *testing.T, s *state.Store, k state.Key) int {
	t.Helper()
	v, ok, err := s.DecidedVersion(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return -1
	}
	return v
}

// TestDecidedOnlyWhenDecisionCompletes: a claim, a release, a takeover
// leave the decided version alone; Finish, an unchanged version and our
// own write move it; it never goes down, even when the writer records its
// write while a decision on an older version is under way.
func TestDecidedOnlyWhenDecisionCompletes(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newStore(t).WithClock(clk.now)
	c := claim("d", 3, "disk full")
	k := c.Key
	step := func(name string, want int) {
		t.Helper()
		if got := decided(t, s, k); got != want {
			t.Errorf("%s: decided version %d, want %d", name, got, want)
		}
	}
	step("unknown ticket", -1)
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	step("claimed", -1)
	if err := s.Release(ctx, k, c.Token, "dispatch: throttled", nil); err != nil {
		t.Fatal(err)
	}
	step("released", -1)
	c.Token = "again"
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Minute) // the claimant vanished
	c.Token = "takeover"
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	step("taken over", -1)
	if err := s.Finish(ctx, k, c.Token, state.Result{Version: 3, Status: state.StatusAccepted}); err != nil {
		t.Fatal(err)
	}
	step("finished", 3)
	// A newer version with the same content is handled: nothing to decide.
	if _, err := s.Claim(ctx, claim("d", 4, "disk full")); !errors.Is(err, state.ErrUnchanged) {
		t.Fatalf("unchanged claim = %v", err)
	}
	step("unchanged", 4)

	// The writer records its own write (6) while the decision on the
	// version before it (5) is under way; Finish must not take it back.
	c = claim("d", 5, "disk full again")
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.RecordOwnWrite(ctx, k, state.OwnWrite{Before: 5, BeforeHash: c.Mirror.Hash(), After: 6}); err != nil || !ok {
		t.Fatalf("RecordOwnWrite = %v, %v", ok, err)
	}
	if err := s.Finish(ctx, k, c.Token, state.Result{Version: 5, Status: state.StatusAccepted}); err != nil {
		t.Fatalf("Finish under a higher decided version: %v", err)
	}
	step("own write during a decision", 6)
	tk, err := s.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != state.StatusAccepted || tk.ClaimToken != "" {
		t.Errorf("ticket %q claim %q, want accepted and released", tk.Status, tk.ClaimToken)
	}
	// SeenVersion (our acknowledgement's bump) is decided too.
	c = claim("d", 7, "disk full, third time")
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, k, c.Token, state.Result{Version: 7, SeenVersion: 8, Status: state.StatusAccepted}); err != nil {
		t.Fatal(err)
	}
	step("our own note's version", 8)
}

// TestStuckTickets: a ticket is in the stuck index while its decision is
// pending, and comes out of StuckTickets only once state.StuckAfter has
// passed since its last failed attempt or its claim's expiry.
func TestStuckTickets(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	s := newStore(t).WithClock(clk.now)
	stuck := func(at time.Time) []string {
		t.Helper()
		ts, err := s.StuckTickets(ctx, gtw, at, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, tk := range ts {
			out = append(out, tk.SysID+"="+tk.Status)
		}
		slices.Sort(out)
		return out
	}
	check := func(name string, at time.Time, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if diff := cmp.Diff(want, stuck(at)); diff != "" {
			t.Errorf("%s: StuckTickets (-want +got):\n%s", name, diff)
		}
	}

	crashed := claim("crashed", 1, "crash") // lease 1 min
	if _, err := s.Claim(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	released := claim("released", 1, "released")
	if _, err := s.Claim(ctx, released); err != nil {
		t.Fatal(err)
	}
	clk.t = start.Add(10 * time.Second)
	if err := s.Release(ctx, released.Key, released.Token, "dispatch: throttled", nil); err != nil {
		t.Fatal(err)
	}
	fetchFailed := state.Key{GatewayID: gtw, Table: "incident", SysID: "fetchfailed"}
	if err := s.RecordFailure(ctx, fetchFailed, "fetch record: 503", false, "webhook"); err != nil {
		t.Fatal(err)
	}
	done := claim("done", 1, "done")
	if _, err := s.Claim(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, done.Key, done.Token, state.Result{Version: 1, Status: state.StatusAccepted}); err != nil {
		t.Fatal(err)
	}

	check("before StuckAfter", start.Add(state.StuckAfter))
	check("StuckAfter past the failures", start.Add(10*time.Second+state.StuckAfter), "fetchfailed=retrying", "released=retrying")
	check("StuckAfter past the lease too", start.Add(time.Minute+state.StuckAfter), "crashed=processing", "fetchfailed=retrying", "released=retrying")

	// A decision takes a ticket out; so does a permanent failure.
	clk.t = start.Add(2 * time.Minute)
	crashed.Token = "takeover"
	if _, err := s.Claim(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, crashed.Key, crashed.Token, state.Result{Version: 1, Status: state.StatusAccepted}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordFailure(ctx, fetchFailed, "not found", true, "webhook"); err != nil {
		t.Fatal(err)
	}
	later := start.Add(time.Hour)
	check("after a decision and a permanent failure", later, "released=retrying")

	// A failure before the claim on a decided ticket makes it stuck; a
	// delivery that finds nothing newer to decide settles it.
	if err := s.RecordFailure(ctx, done.Key, "fetch record: 429", false, "webhook"); err != nil {
		t.Fatal(err)
	}
	check("decided ticket whose next fetch failed", later, "done=accepted", "released=retrying")
	done.Token = "again"
	if _, err := s.Claim(ctx, done); !errors.Is(err, state.ErrStale) {
		t.Fatalf("claim of the decided version = %v, want ErrStale", err)
	}
	check("settled by a stale claim", later, "released=retrying")
}

// TestQueuedMarkersAndDueOnce: MarkQueued's marker shows in Versions and
// on the ticket; a due change request records the due time it was sent
// for, and a decision clears it; a permanent failure leaves the due index.
func TestQueuedMarkersAndDueOnce(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	s := newStore(t).WithClock(clk.now)

	known := claim("known", 2, "known")
	if _, err := s.Claim(ctx, known); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, known.Key, known.Token, state.Result{Version: 2, Status: state.StatusAccepted}); err != nil {
		t.Fatal(err)
	}
	until := start.Add(10 * time.Minute)
	if err := s.MarkQueued(ctx, []state.Enqueued{
		{Key: known.Key, Version: 3},
		{Key: state.Key{GatewayID: gtw, Table: "incident", SysID: "new"}, Version: 0},
	}, until); err != nil {
		t.Fatal(err)
	}
	got, err := s.Versions(ctx, gtw, "incident", []string{"known", "new", "none"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]state.Known{
		"known": {Decided: 2, QueuedVersion: 3, QueuedUntil: until},
		"new":   {Decided: -1, QueuedVersion: 0, QueuedUntil: until},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("Versions (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		v    int
		at   time.Time
		want bool
	}{
		{2, start.Add(time.Hour), true},  // decided
		{3, start, true},                 // queued
		{3, until, false},                // the marker expired
		{4, start, false},                // newer than what was queued
		{0, start.Add(time.Hour), false}, // "new": only an expired marker
	} {
		k := got["known"]
		if tt.v == 0 {
			k = got["new"]
		}
		if h := k.Handled(tt.v, tt.at); h != tt.want {
			t.Errorf("Handled(%d, %v) = %v, want %v", tt.v, tt.at, h, tt.want)
		}
	}

	// A due change request: sent once for its due time.
	chg := claim("chg", 1, "patch")
	chg.Table = "change_request"
	if _, err := s.Claim(ctx, chg); err != nil {
		t.Fatal(err)
	}
	due := start.Add(time.Hour)
	if err := s.Finish(ctx, chg.Key, chg.Token, state.Result{Version: 1, Status: state.StatusDeferred, Due: due}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.DueTickets(ctx, gtw, due)
	if err != nil || len(ts) != 1 || ts[0].DueSent != "" {
		t.Fatalf("DueTickets = %+v, %v; want chg, never sent", ts, err)
	}
	if err := s.MarkQueued(ctx, []state.Enqueued{{Key: chg.Key, Version: 1, DueAt: ts[0].DueAt}}, due.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ts, err = s.DueTickets(ctx, gtw, due)
	if err != nil || len(ts) != 1 || ts[0].DueSent != ts[0].DueAt || !ts[0].Queued(1, due) {
		t.Fatalf("DueTickets after sending = %+v, %v; want chg sent for its due time and queued", ts, err)
	}
	// The processor decides deferred again, for a later time: sent again.
	clk.t = due
	chg.Token = "due"
	if _, err := s.Claim(ctx, chg); err != nil {
		t.Fatalf("claim when due: %v", err)
	}
	if err := s.Finish(ctx, chg.Key, chg.Token, state.Result{Version: 1, Status: state.StatusDeferred, Due: due.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ts, err = s.DueTickets(ctx, gtw, due.Add(time.Hour))
	if err != nil || len(ts) != 1 || ts[0].DueSent != "" {
		t.Fatalf("DueTickets after a new due time = %+v, %v; want chg, not sent for it", ts, err)
	}
	// Deleted before it is due: the failure is permanent, and the ticket
	// leaves the due index for good.
	if err := s.RecordFailure(ctx, chg.Key, "not found in ServiceNow", true, "deferred"); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.DueTickets(ctx, gtw, due.Add(24*time.Hour)); err != nil || len(ts) != 0 {
		t.Errorf("DueTickets after a permanent failure = %+v, %v; want none", ts, err)
	}
}

// TestBasisOfAnEndingAttempt: an unfinished attempt that recorded the end
// of the open job leaves a basis with that job ended and the attempt's
// status; a job the writer ended meanwhile keeps the writer's state.
func TestBasisOfAnEndingAttempt(t *testing.T) {
	open := state.Job{ID: "j1", State: state.JobOpen, Episode: 1, Sequence: 1}
	ended := open
	ended.State, ended.Sequence = state.JobCancelled, 2
	byWriter := open
	byWriter.State = state.JobSucceeded
	ending := &state.Ending{Job: ended, Status: state.StatusOutOfScope, Reason: "job cancelled: closed", Why: "closed"}
	prior := &state.Prior{Status: state.StatusAccepted, Reason: "new record"}
	tests := []struct {
		name       string
		t          state.Ticket
		wantState  string
		wantStatus string
		wantEnded  bool
	}{
		{name: "finished ticket: as stored", t: state.Ticket{Status: state.StatusAccepted, Job: &open, Ending: ending},
			wantState: state.JobOpen, wantStatus: state.StatusAccepted},
		{name: "unfinished, no ending: the prior", t: state.Ticket{Status: state.StatusProcessing, Job: &open, Prior: prior},
			wantState: state.JobOpen, wantStatus: state.StatusAccepted},
		{name: "unfinished, ending: the job as ended", t: state.Ticket{Status: state.StatusRetrying, Job: &open, Prior: prior, Ending: ending},
			wantState: state.JobCancelled, wantStatus: state.StatusOutOfScope, wantEnded: true},
		{name: "ended by the writer meanwhile: the writer's", t: state.Ticket{Status: state.StatusProcessing, Job: &byWriter, Prior: prior, Ending: ending},
			wantState: state.JobSucceeded, wantStatus: state.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.t.Basis()
			if b.Job.State != tt.wantState || b.Status != tt.wantStatus || b.EndedByAttempt() != tt.wantEnded {
				t.Errorf("Basis() job %s status %s ended-by-attempt %v; want %s, %s, %v",
					b.Job.State, b.Status, b.EndedByAttempt(), tt.wantState, tt.wantStatus, tt.wantEnded)
			}
		})
	}
}
