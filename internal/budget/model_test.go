package budget_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
)

// model is the budget as a textbook token bucket, in exact arithmetic: a
// level that refills at the rate up to the burst, a pause end, and the
// leases held. The DynamoDB budget keeps the same bucket as one timestamp
// (see the package doc); the model test holds the two to the same answers.
type model struct {
	s       budget.Settings
	learned int
	level   *big.Rat
	at      int64 // ms of level
	paused  int64 // pause end, ms
	leases  map[int]int64
}

func newModel(s budget.Settings, now int64) *model {
	s = s.WithDefaults()
	return &model{s: s, level: big.NewRat(int64(s.Burst), 1), at: now, leases: map[int]int64{}}
}

// limits is the documented policy: the rate and the burst must fit under a
// learned hourly limit together.
func (m *model) limits() (rate, burst int, interval int64) {
	rate, burst = m.s.RatePerHour, m.s.Burst
	if m.learned > 0 && rate+burst > m.learned {
		burst = max(1, min(burst, m.learned/10))
		rate = max(1, min(rate, m.learned-burst))
	}
	hour := int64(time.Hour / time.Millisecond)
	return rate, burst, (hour + int64(rate) - 1) / int64(rate)
}

// sync refills the level up to now.
func (m *model) sync(now int64) {
	_, burst, iv := m.limits()
	l := new(big.Rat).Add(m.level, big.NewRat(now-m.at, iv))
	if cap := big.NewRat(int64(burst), 1); l.Cmp(cap) > 0 {
		l = cap
	}
	m.level, m.at = l, now
}

func (m *model) live(now int64) int {
	n := 0
	for _, exp := range m.leases {
		if exp > now {
			n++
		}
	}
	return n
}

// take answers a take (slot false) or an acquire: nil and the grant taken,
// or the denial and its end.
func (m *model) take(now int64, n int, slot bool, id int, lease time.Duration) (int64, error) {
	m.sync(now)
	_, _, iv := m.limits()
	need := big.NewRat(int64(n), 1)
	switch {
	case m.paused > now:
		return m.paused, budget.ErrPaused
	case n > 0 && m.level.Cmp(need) < 0:
		wait := new(big.Rat).Mul(new(big.Rat).Sub(need, m.level), big.NewRat(iv, 1))
		f, _ := wait.Float64()
		return now + int64(f+0.5), budget.ErrNoTokens
	case slot && m.live(now) >= m.s.MaxConcurrency:
		return 0, budget.ErrNoSlot
	}
	m.level.Sub(m.level, need)
	if slot {
		m.leases[id] = now + lease.Milliseconds()
	}
	return 0, nil
}

// learn applies a new limit; what is owed stays owed.
func (m *model) learn(now int64, limit int) {
	m.sync(now)
	_, oldBurst, _ := m.limits()
	owed := new(big.Rat).Sub(big.NewRat(int64(oldBurst), 1), m.level)
	m.learned = limit
	_, burst, _ := m.limits()
	m.level = new(big.Rat).Sub(big.NewRat(int64(burst), 1), owed)
}

func (m *model) remaining(now int64, r int, reset int64) {
	if r == 0 && reset > now {
		m.paused = max(m.paused, reset)
		return
	}
	m.sync(now)
	if _, burst, _ := m.limits(); r < burst {
		if rr := big.NewRat(int64(r), 1); m.level.Cmp(rr) > 0 {
			m.level = rr
		}
	}
}

func (m *model) tokens(now int64) float64 {
	m.sync(now)
	f, _ := m.level.Float64()
	return max(0, f)
}

// granted is one grant the DynamoDB budget made, for the rate bound.
type granted struct {
	at     int64
	tokens int
}

// held is a grant an actor holds a slot with.
type held struct {
	g  budget.Grant
	id int
}

// TestModel drives several actors — separate Budgets, as separate Lambda
// environments are, each with its own view of the item — through random
// interleavings of take, acquire, release, pause, resume and observe on a
// fake clock, and holds every answer and the state after every step to the
// model. It also checks the two promises directly: never more than
// rate×time + burst tokens granted over any interval, and never more than
// the ceiling of slots held.
func TestModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 400) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	e := newEnv(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 15))
	const lease = 2 * time.Minute
	// Rates whose milliseconds per token are whole (3600, 1800, 900, 450
	// an hour), so the model's exact answers are the item's too.
	s := budget.Settings{RatePerHour: 3600, Burst: 4, MaxConcurrency: 3}
	limits := []int{1804, 904, 454, 100000}
	const actors = 4
	bs := make([]*budget.Budget, actors)
	for i := range bs {
		bs[i] = e.budget(budget.Options{SlotLease: lease, Rand: rng.Float64})
	}
	now := func() int64 { return e.clk.now().UnixMilli() }
	m := newModel(s, now())
	holds := make([][]held, actors)
	var log []granted
	nextID := 0

	outcomes := map[string]int{}
	check := func(step int, what string, err, want error, wantUntil int64) {
		t.Helper()
		outcomes[kind(err)]++
		if want == nil {
			if err != nil {
				t.Fatalf("step %d %s = %v, model grants", step, what, err)
			}
			return
		}
		if !errors.Is(err, want) {
			t.Fatalf("step %d %s = %v, model says %v", step, what, err, want)
		}
		if until, _ := budget.RetryAt(err); wantUntil != 0 && abs(until.UnixMilli()-wantUntil) > 1 {
			t.Fatalf("step %d %s: Until = %d, model says %d", step, what, until.UnixMilli(), wantUntil)
		}
	}

	for step := range steps {
		a := rng.IntN(actors)
		b := bs[a]
		var what string
		switch r := rng.IntN(100); {
		case r < 20:
			d := time.Duration(rng.IntN(5)) * time.Second
			what = fmt.Sprint("advance ", d)
			e.clk.advance(d)
		case r < 46:
			n := 1 + rng.IntN(3)
			what = fmt.Sprintf("actor %d Take(%d)", a, n)
			_, err := b.Take(ctx, gw, s, n)
			until, want := m.take(now(), n, false, 0, lease)
			check(step, what, err, want, until)
			if err == nil {
				log = append(log, granted{now(), n})
			}
		case r < 72:
			n := rng.IntN(3)
			what = fmt.Sprintf("actor %d Acquire(%d)", a, n)
			g, err := b.Acquire(ctx, gw, s, n)
			until, want := m.take(now(), n, true, nextID, lease)
			check(step, what, err, want, until)
			if err == nil {
				holds[a] = append(holds[a], held{g, nextID})
				log = append(log, granted{now(), n})
				nextID++
			}
		case r < 84:
			if len(holds[a]) == 0 {
				continue
			}
			i := rng.IntN(len(holds[a]))
			h := holds[a][i]
			holds[a] = append(holds[a][:i], holds[a][i+1:]...)
			what = fmt.Sprintf("actor %d Release(slot %d)", a, h.g.Slot)
			if err := b.Release(ctx, h.g); err != nil {
				t.Fatalf("step %d %s: %v", step, what, err)
			}
			delete(m.leases, h.id)
		case r < 86:
			d := time.Duration(1+rng.IntN(10)) * time.Second
			what = fmt.Sprintf("actor %d Pause(%s)", a, d)
			if err := b.Pause(ctx, gw, e.clk.now().Add(d), budget.CauseOperator, "model"); err != nil {
				t.Fatalf("step %d %s: %v", step, what, err)
			}
			m.paused = max(m.paused, now()+d.Milliseconds())
		case r < 87:
			what = fmt.Sprintf("actor %d Resume", a)
			if err := b.Resume(ctx, gw); err != nil {
				t.Fatalf("step %d %s: %v", step, what, err)
			}
			m.paused = 0
		case r < 92:
			// The instance's rule changed: every actor hears it.
			limit := limits[rng.IntN(len(limits))]
			what = fmt.Sprintf("all Observe(limit %d)", limit)
			for _, b := range bs {
				if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: limit, Remaining: -1}); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
			}
			m.learn(now(), limit)
		case r < 97:
			rem := rng.IntN(6)
			reset := e.clk.now().Add(time.Duration(1+rng.IntN(10)) * time.Second)
			what = fmt.Sprintf("actor %d Observe(remaining %d)", a, rem)
			if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: m.learned, Remaining: rem, Reset: reset}); err != nil {
				t.Fatalf("step %d %s: %v", step, what, err)
			}
			m.remaining(now(), rem, reset.UnixMilli())
		default:
			what = "advance past the slot leases"
			e.clk.advance(lease + time.Second)
		}

		st := status(t, bs[0], s)
		if st.SlotsInUse > s.MaxConcurrency {
			t.Fatalf("step %d %s: %d slots in use, ceiling %d", step, what, st.SlotsInUse, s.MaxConcurrency)
		}
		if want := m.live(now()); st.SlotsInUse != want {
			t.Fatalf("step %d %s: %d slots in use, model says %d", step, what, st.SlotsInUse, want)
		}
		if want := m.tokens(now()); abs64(st.Tokens-want) > 1e-6 {
			t.Fatalf("step %d %s: %v tokens, model says %v", step, what, st.Tokens, want)
		}
		if want := m.paused > now(); st.Paused != want {
			t.Fatalf("step %d %s: paused %v, model says %v", step, what, st.Paused, want)
		}
	}

	// Over every interval between two grants, at most rate×time + burst.
	var total int
	for _, g := range log {
		total += g.tokens
	}
	for i := range log {
		sum := 0
		for j := i; j < len(log); j++ {
			sum += log[j].tokens
			bound := float64(s.RatePerHour)*float64(log[j].at-log[i].at)/float64(time.Hour/time.Millisecond) + float64(s.Burst)
			if float64(sum) > bound {
				t.Fatalf("%d tokens granted in [%d, %d] ms, bound %.2f", sum, log[i].at, log[j].at, bound)
			}
		}
	}
	t.Logf("%d steps, %d tokens granted over %s; answers %v", steps, total, e.clk.now().Sub(t0), outcomes)
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func abs64(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func kind(err error) string {
	for _, k := range []error{budget.ErrPaused, budget.ErrNoTokens, budget.ErrNoSlot} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	if err != nil {
		return "error"
	}
	return "granted"
}

// TestConcurrentRandom runs actors at the same time: in each round the
// clock stands still while every actor makes random takes, acquires,
// releases and limit observations at once; between rounds it moves on.
// Grant times are then exact, and the two promises are checked as in
// TestModel: rate×time + burst over every interval, the ceiling always.
func TestConcurrentRandom(t *testing.T) {
	skipOnMoto(t)
	e := newEnv(t)
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 6, MaxConcurrency: 3}
	const actors, rounds, opsPerRound = 6, 30, 6
	rng := rand.New(rand.NewPCG(15, 15))
	bs := make([]*budget.Budget, actors)
	seeds := make([]uint64, actors)
	for i := range bs {
		bs[i] = e.budget(budget.Options{})
		seeds[i] = rng.Uint64()
	}
	var (
		mu       sync.Mutex
		log      []granted
		inFlight int
		most     int
	)
	holds := make([][]budget.Grant, actors)
	for round := range rounds {
		at := e.clk.now().UnixMilli()
		var wg sync.WaitGroup
		for a, b := range bs {
			r := rand.New(rand.NewPCG(seeds[a], uint64(round)))
			wg.Go(func() {
				for range opsPerRound {
					switch op := r.IntN(10); {
					case op < 4:
						n := 1 + r.IntN(3)
						if _, err := b.Take(ctx, gw, s, n); err == nil {
							mu.Lock()
							log = append(log, granted{at, n})
							mu.Unlock()
						} else if !denial(err) {
							t.Errorf("Take: %v", err)
						}
					case op < 7:
						n := r.IntN(2)
						g, err := b.Acquire(ctx, gw, s, n)
						if err != nil {
							if !denial(err) {
								t.Errorf("Acquire: %v", err)
							}
							continue
						}
						mu.Lock()
						log = append(log, granted{at, n})
						inFlight++
						most = max(most, inFlight)
						mu.Unlock()
						holds[a] = append(holds[a], g)
					case op < 9:
						if len(holds[a]) == 0 {
							continue
						}
						g := holds[a][0]
						holds[a] = holds[a][1:]
						mu.Lock()
						inFlight--
						mu.Unlock()
						if err := b.Release(ctx, g); err != nil {
							t.Errorf("Release: %v", err)
						}
					default:
						limit := []int{1806, 100000}[r.IntN(2)]
						if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: limit, Remaining: -1}); err != nil && !errors.Is(err, budget.ErrContended) {
							t.Errorf("Observe: %v", err)
						}
					}
				}
			})
		}
		wg.Wait()
		if st := status(t, bs[0], s); st.SlotsInUse > s.MaxConcurrency || st.SlotsInUse != inFlight {
			t.Fatalf("round %d: %d slots in use, %d held, ceiling %d", round, st.SlotsInUse, inFlight, s.MaxConcurrency)
		}
		e.clk.advance(time.Duration(rng.IntN(5)) * 500 * time.Millisecond)
	}
	if most > s.MaxConcurrency {
		t.Errorf("%d slots held at once, ceiling %d", most, s.MaxConcurrency)
	}
	total := 0
	for _, g := range log {
		total += g.tokens
	}
	// Per interval [a, b] between round times: all grants made at a..b.
	times := map[int64]int{}
	for _, g := range log {
		times[g.at] += g.tokens
	}
	var ts []int64
	for at := range times {
		ts = append(ts, at)
	}
	slices.Sort(ts)
	for i := range ts {
		sum := 0
		for j := i; j < len(ts); j++ {
			sum += times[ts[j]]
			bound := float64(s.RatePerHour)*float64(ts[j]-ts[i])/float64(time.Hour/time.Millisecond) + float64(s.Burst)
			if float64(sum) > bound {
				t.Fatalf("%d tokens granted in [%d, %d] ms, bound %.2f", sum, ts[i], ts[j], bound)
			}
		}
	}
	t.Logf("%d tokens granted over %s in %d rounds, at most %d slots held", total, e.clk.now().Sub(t0), rounds, most)
}

// denial reports whether err says "not now" rather than a failure.
func denial(err error) bool {
	_, ok := budget.RetryAt(err)
	return ok || errors.Is(err, budget.ErrContended)
}
