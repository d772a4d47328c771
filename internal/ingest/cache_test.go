package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
)

func TestRouteCacheBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		max     int
		puts    int
		spacing time.Duration // between puts
		wantLen int
	}{
		{"under the bound", 8, 5, 0, 5},
		{"at the bound", 8, 8, 0, 8},
		{"over the bound", 8, 100, 0, 8},
		// wantLen is not checked here: eviction order is arbitrary.
		{"expired entries make room", 8, 100, time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRouteCache(5*time.Second, tt.max)
			now := t0
			for i := range tt.puts {
				c.put(fmt.Sprintf("%024x", i), &route{}, now)
				now = now.Add(tt.spacing)
			}
			if got := c.len(); got > tt.max || (tt.spacing == 0 && got != tt.wantLen) {
				t.Errorf("len = %d, want %d (bound %d)", got, tt.wantLen, tt.max)
			}
			last := fmt.Sprintf("%024x", tt.puts-1)
			if _, ok := c.get(last, now.Add(-tt.spacing)); !ok {
				t.Errorf("the entry put last is not cached")
			}
		})
	}
}

func TestRouteCacheExpiry(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newRouteCache(5*time.Second, 8)
	c.put("p", &route{}, t0)
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {4999 * time.Millisecond, true}, {-time.Second, false}} {
		c.put("p", &route{}, t0)
		if _, ok := c.get("p", t0.Add(tt.at)); ok != tt.want {
			t.Errorf("get at +%s = %v, want %v", tt.at, ok, tt.want)
		}
	}
	if _, ok := c.get("p", t0.Add(5*time.Second)); ok {
		t.Errorf("get at TTL = hit, want miss")
	}
	if newRouteCache(0, 8) != nil || newRouteCache(time.Second, 0) != nil {
		t.Errorf("a zero TTL or size must disable the cache")
	}
	var off *routeCache
	off.put("p", &route{}, t0)
	if _, ok := off.get("p", t0); ok {
		t.Errorf("a disabled cache returned a hit")
	}
}

func TestValidPathMatchesRegistry(t *testing.T) {
	for _, p := range []string{"", "0123456789abcdef01234567", "0123456789ABCDEF01234567", "0123456789abcdef0123456", "0123456789abcdef012345678",
		"0123456789abcdef0123456g", strings.Repeat("f", 24), "0123456789abcdef0123456\n", "../../etc/passwd/0123456"} {
		if got, want := validPath(p), registry.ValidPath(p); got != want {
			t.Errorf("validPath(%q) = %v, registry.ValidPath = %v", p, got, want)
		}
	}
}

// countingRegistry answers every path unknown except one, and counts reads.
type countingRegistry struct {
	known string
	reads int
}

func (r *countingRegistry) Route(_ context.Context, path string) (registry.Route, error) {
	r.reads++
	if path != r.known {
		return registry.Route{}, registry.ErrNotFound
	}
	return registry.Route{Path: path, WebhookID: "whk_1", GatewayID: "gtw_1", Table: registry.TableIncident, Active: true,
		Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret("s")}}}, nil
}

func (r *countingRegistry) Gateway(context.Context, string) (registry.Gateway, error) {
	return registry.Gateway{}, nil
}

// TestUnknownPathsBounded: a flood of distinct unknown paths keeps the
// unknown cache within its bound and never pushes the route in use out
// of the route cache; a flood on one unknown path costs one read.
func TestUnknownPathsBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	known := fmt.Sprintf("%024x", 1<<40)
	reg := &countingRegistry{known: known}
	h := New(reg, nil, nil, Options{Now: func() time.Time { return t0 }})
	ctx := context.Background()
	if _, err := h.route(ctx, known, t0); err != nil {
		t.Fatalf("route(known): %v", err)
	}
	for i := range 3 * DefaultUnknownCacheSize {
		if _, err := h.route(ctx, fmt.Sprintf("%024x", i), t0); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("route(unknown) = %v, want ErrNotFound", err)
		}
	}
	if n := h.unknown.len(); n > DefaultUnknownCacheSize {
		t.Errorf("unknown paths cached: %d, bound %d", n, DefaultUnknownCacheSize)
	}
	if _, ok := h.cache.get(known, t0); !ok {
		t.Errorf("the known route was pushed out by unknown paths")
	}
	reads := reg.reads
	for range 100 {
		_, _ = h.route(ctx, "ffffffffffffffffffffffff", t0)
	}
	if got := reg.reads - reads; got != 1 {
		t.Errorf("100 requests on one unknown path cost %d reads, want 1", got)
	}
}
