package budget_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
)

// benchClock moves a millisecond for each operation done: at the highest
// rate (a token a millisecond) every take finds its token, so the benchmark
// measures the happy path and nothing else.
type benchClock struct{ ms atomic.Int64 }

func (c *benchClock) now() time.Time { return t0.Add(time.Duration(c.ms.Load()) * time.Millisecond) }
func (c *benchClock) tick()          { c.ms.Add(1) }

var benchSettings = budget.Settings{RatePerHour: budget.MaxRatePerHour, Burst: budget.MaxBurst, MaxConcurrency: budget.MaxMaxConcurrency}

// reportCalls adds the DynamoDB requests per operation to the result.
func reportCalls(b *testing.B, cc *countingClient) {
	total := 0
	for _, n := range cc.reset() {
		total += n
	}
	b.ReportMetric(float64(total)/float64(b.N), "calls/op")
}

// BenchmarkTake is a take of one token on the happy path against the
// emulator, from one goroutine and from several sharing a Budget (as the
// goroutines of one Lambda environment do). Each take is one conditional
// UpdateItem over HTTP on loopback; calls/op counts the requests.
func BenchmarkTake(b *testing.B) {
	ctx := context.Background()
	setup := func(b *testing.B) (*budget.Budget, *countingClient, *benchClock) {
		e := newEnv(b)
		clk := &benchClock{}
		bu, cc := countingBudget(e, budget.Options{Now: clk.now})
		if _, err := bu.Take(ctx, gw, benchSettings, 1); err != nil {
			b.Fatal(err)
		}
		cc.reset()
		return bu, cc, clk
	}
	b.Run("serial", func(b *testing.B) {
		bu, cc, clk := setup(b)
		for b.Loop() {
			if _, err := bu.Take(ctx, gw, benchSettings, 1); err != nil {
				b.Fatal(err)
			}
			clk.tick()
		}
		reportCalls(b, cc)
	})
	b.Run("parallel", func(b *testing.B) {
		skipOnMoto(b)
		bu, cc, clk := setup(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := bu.Take(ctx, gw, benchSettings, 1); err != nil {
					b.Error(err)
					return
				}
				clk.tick()
			}
		})
		reportCalls(b, cc)
	})
}

// BenchmarkAcquireRelease is a slot and a token for one request, and the
// slot given back: two conditional UpdateItems.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	clk := &benchClock{}
	bu, cc := countingBudget(e, budget.Options{Now: clk.now})
	for b.Loop() {
		g, err := bu.Acquire(ctx, gw, benchSettings, 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := bu.Release(ctx, g); err != nil {
			b.Fatal(err)
		}
		clk.tick()
	}
	reportCalls(b, cc)
}
