package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Load is the outcome of one closed-loop run.
type Load struct {
	Clients int
	// Latencies of the successful requests, sorted.
	Latencies []time.Duration
	Errors    int
	// FirstErr is the first failure, for the report's notes.
	FirstErr error
	Elapsed  time.Duration
}

// Throughput is successful requests per second of wall time.
func (l Load) Throughput() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(len(l.Latencies)) / l.Elapsed.Seconds()
}

// ClosedLoop sends total requests from clients workers, each sending its
// next request as soon as the previous one answered (a closed loop: the
// offered load adapts to the system, so the result is its capacity at that
// concurrency, not a queue that builds up). Workers take requests from a
// shared counter, so exactly total are sent. A request fails when do
// returns an error; its latency is not recorded. It stops early when ctx
// is done.
func ClosedLoop(ctx context.Context, clients, total int, do func(ctx context.Context) error) Load {
	clients = max(1, min(clients, total))
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	errs := make([]int, clients)
	var (
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, total/clients+1)
			for ctx.Err() == nil && next.Add(1) <= int64(total) {
				t0 := time.Now()
				if err := do(ctx); err != nil {
					errs[w]++
					errOnce.Do(func() { firstErr = err })
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			lat[w] = mine
		})
	}
	wg.Wait()
	l := Load{Clients: clients, Elapsed: time.Since(start), FirstErr: firstErr}
	for w := range clients {
		l.Latencies = append(l.Latencies, lat[w]...)
		l.Errors += errs[w]
	}
	slices.Sort(l.Latencies)
	return l
}
