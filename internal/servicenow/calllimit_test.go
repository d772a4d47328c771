package servicenow_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// TestCallLimit: no more than n calls run at once per instance, other
// instances are not held up, and a caller whose context ends stops waiting.
func TestCallLimit(t *testing.T) {
	l := servicenow.NewCallLimit(2)
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			_ = l.Do(context.Background(), "https://a", func() error {
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				started <- struct{}{}
				<-release
				inFlight.Add(-1)
				return nil
			})
		})
	}
	<-started
	<-started

	// Another instance has slots of its own.
	if err := l.Do(context.Background(), "https://b", func() error { return nil }); err != nil {
		t.Fatalf("other instance: %v", err)
	}
	// A caller that gives up does not wait for a slot.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Do(ctx, "https://a", func() error { t.Error("ran without a slot"); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}

	close(release)
	wg.Wait()
	if got := most.Load(); got != 2 {
		t.Errorf("at most %d calls in flight, want 2", got)
	}
}
