package state_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/state"
)

func TestVersions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// 250 records span three BatchGetItem chunks. Those decided (every
	// third is claimed but not finished, or released) have their decided
	// version; a claim that did not finish, or a record that only failed
	// before any claim, has none: it is not handled. "other" belongs to
	// another table.
	want := map[string]state.Known{}
	var ids []string
	for i := range 250 {
		id := fmt.Sprintf("%032x", i)
		c := claim(id, i%7, id)
		if _, err := s.Claim(ctx, c); err != nil {
			t.Fatalf("Claim %s: %v", id, err)
		}
		ids = append(ids, id)
		switch i % 3 {
		case 0:
			continue
		case 1:
			if err := s.Release(ctx, c.Key, c.Token, "dispatch: throttled", nil); err != nil {
				t.Fatalf("Release %s: %v", id, err)
			}
			continue
		}
		if err := s.Finish(ctx, c.Key, c.Token, state.Result{Version: i % 7, Status: state.StatusAccepted}); err != nil {
			t.Fatalf("Finish %s: %v", id, err)
		}
		want[id] = state.Known{Decided: i % 7}
	}
	failed := state.Key{GatewayID: gtw, Table: "incident", SysID: "f"}
	if err := s.RecordFailure(ctx, failed, "fetch failed", false, "webhook"); err != nil {
		t.Fatalf("RecordFailure: %v", err)
	}
	other := claim("other", 9, "other")
	other.Table = "change_request"
	if _, err := s.Claim(ctx, other); err != nil {
		t.Fatalf("Claim other: %v", err)
	}
	ids = append(ids, "f", "other", "unknown", ids[0]) // with a repeat

	got, err := s.Versions(ctx, gtw, "incident", ids)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Versions (-want +got):\n%s", diff)
	}

	if got, err := s.Versions(ctx, gtw, "incident", nil); err != nil || len(got) != 0 {
		t.Errorf("Versions(nil) = %v, %v; want empty, nil", got, err)
	}
}
