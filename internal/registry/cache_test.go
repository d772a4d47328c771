package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
)

// countingReader answers from a map and counts the reads.
type countingReader struct {
	gws   map[string]registry.Gateway
	reads int
}

func (r *countingReader) Gateway(_ context.Context, id string) (registry.Gateway, error) {
	r.reads++
	g, ok := r.gws[id]
	if !ok {
		return registry.Gateway{}, registry.ErrNotFound
	}
	return g, nil
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &countingReader{gws: map[string]registry.Gateway{"gtw_a": {ID: "gtw_a", Name: "a"}}}
	c := registry.NewCache(src, 30*time.Second, func() time.Time { return now })

	for range 3 {
		if g, err := c.Gateway(ctx, "gtw_a"); err != nil || g.Name != "a" {
			t.Fatalf("Gateway = %+v, %v", g, err)
		}
	}
	if src.reads != 1 {
		t.Errorf("3 gets within the TTL read the registry %d times, want 1", src.reads)
	}

	src.gws["gtw_a"] = registry.Gateway{ID: "gtw_a", Name: "renamed"}
	now = now.Add(30 * time.Second)
	if g, _ := c.Gateway(ctx, "gtw_a"); g.Name != "renamed" || src.reads != 2 {
		t.Errorf("after the TTL: %q with %d reads, want the new read", g.Name, src.reads)
	}

	for range 2 {
		if _, err := c.Gateway(ctx, "gtw_missing"); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("unknown gateway: %v", err)
		}
	}
	if src.reads != 4 {
		t.Errorf("failed reads were cached: %d reads, want 4", src.reads)
	}
}
