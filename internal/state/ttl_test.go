package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/state"
)

// TestTicketTTL walks one ticket through live and final decisions: a final
// one (out of scope, expired, failed for good, no open job) carries the
// TTL attribute at its decision time plus the TTL; a claim, a failure to
// retry, an open job, a deferred change or an open job that fails for good
// take it away or never set it.
func TestTicketTTL(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	const ttl = 30 * 24 * time.Hour
	s := newStore(t).WithClock(clk.now).WithTicketTTL(ttl)
	k := state.Key{GatewayID: gtw, Table: "incident", SysID: "ttl"}
	expires := func() int64 {
		t.Helper()
		tk, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return tk.ExpiresAt
	}
	version := 0
	decide := func(r state.Result) {
		t.Helper()
		version++
		c := claim("ttl", version, "v"+string(rune('a'+version)))
		if _, err := s.Claim(ctx, c); err != nil {
			t.Fatalf("claim %d: %v", version, err)
		}
		if got := expires(); got != 0 {
			t.Errorf("claimed ticket expires at %d, want never", got)
		}
		r.Version = version
		if err := s.Finish(ctx, k, c.Token, r); err != nil {
			t.Fatal(err)
		}
	}
	at := func() int64 { return clk.t.Add(ttl).Unix() }

	steps := []struct {
		name   string
		result *state.Result // nil: a failure, below
		fail   func() error
		final  bool
	}{
		{name: "out of scope", result: &state.Result{Status: state.StatusOutOfScope}, final: true},
		{name: "open job", result: &state.Result{Status: state.StatusAccepted, JobOpen: true}},
		{name: "job cancelled", result: &state.Result{Status: state.StatusOutOfScope}, final: true},
		{name: "deferred", result: &state.Result{Status: state.StatusDeferred, Due: clk.t.Add(time.Hour)}},
		{name: "expired", result: &state.Result{Status: state.StatusExpired}, final: true},
		{name: "a failure to retry", fail: func() error { return s.DeferFailure(ctx, k, "fetch record: 503", "webhook", time.Time{}) }},
		{name: "failed for good", fail: func() error { return s.RecordFailure(ctx, k, "not found", true, "webhook") }, final: true},
		{name: "job ended in scope, a mention may restart it", result: &state.Result{Status: state.StatusAccepted}},
		{name: "awaiting a mention", result: &state.Result{Status: state.StatusAwaitingMention}},
		{name: "deduplicated", result: &state.Result{Status: state.StatusDeduplicated}},
		{name: "open job again", result: &state.Result{Status: state.StatusAccepted, JobOpen: true}},
		{name: "an open job's ticket failed for good", fail: func() error { return s.RecordFailure(ctx, k, "not found", true, "webhook") }},
	}
	for _, st := range steps {
		clk.t = clk.t.Add(time.Hour)
		if st.result != nil {
			decide(*st.result)
		} else if err := st.fail(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want := int64(0)
		if st.final {
			want = at()
		}
		if got := expires(); got != want {
			t.Errorf("%s: expires at %d, want %d", st.name, got, want)
		}
	}

	// Kept forever: no TTL at all.
	forever := newStore(t).WithClock(clk.now).WithTicketTTL(0)
	c := claim("forever", 1, "a")
	if _, err := forever.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := forever.Finish(ctx, c.Key, c.Token, state.Result{Version: 1, Status: state.StatusOutOfScope}); err != nil {
		t.Fatal(err)
	}
	if tk, err := forever.Get(ctx, c.Key); err != nil || tk.ExpiresAt != 0 {
		t.Errorf("ticket with TTL 0: expires at %d, %v; want never", tk.ExpiresAt, err)
	}
}
