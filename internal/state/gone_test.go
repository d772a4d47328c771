package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/state"
)

// TestRecordGone: a 404 is stored on a ticket that mirrored the record
// (final, with the TTL, unless its job is open); for a record the table
// never held a version of it stores nothing, and removes an item that
// only held a failure before any claim.
func TestRecordGone(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newStore(t).WithClock(clk.now)
	finish := func(id string, r state.Result) state.Key {
		t.Helper()
		c := claim(id, 1, "Router down")
		if _, err := s.Claim(ctx, c); err != nil {
			t.Fatal(err)
		}
		r.Version = 1
		if err := s.Finish(ctx, c.Key, c.Token, r); err != nil {
			t.Fatal(err)
		}
		return c.Key
	}
	known := finish("known", state.Result{Status: state.StatusOutOfScope})
	open := finish("open", state.Result{Status: state.StatusAccepted, JobOpen: true})
	stray := state.Key{GatewayID: gtw, Table: "incident", SysID: "stray"}
	if err := s.DeferFailure(ctx, stray, "fetch record: 503", "webhook", time.Time{}); err != nil {
		t.Fatal(err)
	}
	never := state.Key{GatewayID: gtw, Table: "incident", SysID: "never"}

	tests := []struct {
		name        string
		key         state.Key
		wantErr     error
		wantStatus  string // "" for no item
		wantExpires bool
	}{
		{name: "mirrored ticket", key: known, wantStatus: state.StatusFailed, wantExpires: true},
		{name: "open job", key: open, wantStatus: state.StatusFailed},
		{name: "only a failure before any claim", key: stray, wantErr: state.ErrNotFound},
		{name: "never seen", key: never, wantErr: state.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.RecordGone(ctx, tt.key, "not found in ServiceNow", "webhook")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("RecordGone = %v, want %v", err, tt.wantErr)
			}
			tk, err := s.Get(ctx, tt.key)
			if tt.wantStatus == "" {
				if !errors.Is(err, state.ErrNotFound) {
					t.Errorf("Get = %+v, %v; want no item", tk, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tk.Status != tt.wantStatus || (tk.ExpiresAt != 0) != tt.wantExpires || tk.Number == "" {
				t.Errorf("ticket %s expires %d number %q; want %s, expiring %v, the mirror kept", tk.Status, tk.ExpiresAt, tk.Number, tt.wantStatus, tt.wantExpires)
			}
		})
	}
}
