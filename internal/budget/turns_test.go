package budget_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
)

// A backlog denied at once gets turns one token interval apart, from the
// denial's Until on, however many processes book them concurrently; a
// booking after the queue of turns has passed starts again at its own
// time.
func TestBookSpreadsTurns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 1, MaxConcurrency: 4} // a token a second
	from := t0.Add(5 * time.Second)

	const n = 12
	turns := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		b := e.budget(budget.Options{}) // each its own process
		wg.Go(func() {
			tt, err := b.Book(ctx, gw, s, from)
			if err != nil {
				t.Errorf("Book: %v", err)
			}
			turns[i] = tt
		})
	}
	wg.Wait()
	sort.Slice(turns, func(i, j int) bool { return turns[i].Before(turns[j]) })
	for i, tt := range turns {
		if want := from.Add(time.Duration(i) * time.Second); !tt.Equal(want) {
			t.Errorf("turn %d = %s, want %s", i, tt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}

	later := turns[n-1].Add(time.Minute)
	got, err := e.budget(budget.Options{}).Book(ctx, gw, s, later)
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	if !got.Equal(later) {
		t.Errorf("turn after the queue passed = %s, want %s", got, later)
	}
}
