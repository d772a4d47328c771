package budget_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const gw = "gtw_00000000-0000-4000-8000-000000000001"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source shared by every Budget of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's state table on the emulator.
type env struct {
	cfg   aws.Config
	db    *dynamodb.Client
	table string
	clk   *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := provision.CreateTable(ctx, db, awstest.UniqueName("tb")+"-"+schema.State.ID, schema.State)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return &env{cfg: cfg, db: db, table: name, clk: newClock()}
}

// budget returns a new Budget (a separate process, with its own view of
// the item) on the env's table and clock.
func (e *env) budget(opts budget.Options) *budget.Budget {
	if opts.Now == nil {
		opts.Now = e.clk.now
	}
	return budget.New(e.db, e.table, opts)
}

// denied checks that err is a *DeniedError wrapping want, and returns it.
func denied(t *testing.T, err error, want error) *budget.DeniedError {
	t.Helper()
	var d *budget.DeniedError
	if !errors.As(err, &d) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want a *DeniedError wrapping %v", err, want)
	}
	return d
}

func status(t *testing.T, b *budget.Budget, s budget.Settings) budget.Status {
	t.Helper()
	st, err := b.Status(context.Background(), gw, s)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func TestSettingsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   budget.Settings
		want budget.Settings
	}{
		{"zero", budget.Settings{}, budget.Settings{RatePerHour: 3600, Burst: 20, MaxConcurrency: 2}},
		{"set", budget.Settings{RatePerHour: 100, Burst: 5, MaxConcurrency: 8}, budget.Settings{RatePerHour: 100, Burst: 5, MaxConcurrency: 8}},
		{"negative", budget.Settings{RatePerHour: -1, Burst: -1, MaxConcurrency: -1}, budget.Settings{RatePerHour: 3600, Burst: 20, MaxConcurrency: 2}},
		{"bounded", budget.Settings{RatePerHour: 1 << 40, Burst: 1 << 40, MaxConcurrency: 1000}, budget.Settings{RatePerHour: budget.MaxRatePerHour, Burst: budget.MaxBurst, MaxConcurrency: budget.MaxMaxConcurrency}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.in.WithDefaults()); diff != "" {
				t.Errorf("WithDefaults(%+v) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestTakeBurstThenRefill(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 5}
	if st := status(t, b, s); st.Tokens != 5 || st.Rate != 3600 || st.Burst != 5 {
		t.Fatalf("fresh Status = %+v, want a full bucket of 5 at 3600/h", st)
	}
	for i := range 5 {
		g, err := b.Take(ctx, gw, s, 1)
		if err != nil {
			t.Fatalf("Take #%d: %v", i+1, err)
		}
		if g.Tokens != 1 || g.Slot != -1 || g.Probe {
			t.Errorf("Take #%d = %+v, want one token, no slot", i+1, g)
		}
	}
	_, err := b.Take(ctx, gw, s, 1)
	if d := denied(t, err, budget.ErrNoTokens); !d.Until.Equal(t0.Add(time.Second)) {
		t.Errorf("Until = %s, want %s (one token a second)", d.Until, t0.Add(time.Second))
	}
	if st := status(t, b, s); st.Tokens != 0 {
		t.Errorf("Status tokens = %v, want 0", st.Tokens)
	}

	e.clk.advance(500 * time.Millisecond)
	if st := status(t, b, s); st.Tokens != 0.5 {
		t.Errorf("after 0.5 s, Status tokens = %v, want 0.5", st.Tokens)
	}
	if _, err := b.Take(ctx, gw, s, 1); !errors.Is(err, budget.ErrNoTokens) {
		t.Fatalf("Take after 0.5 s = %v, want ErrNoTokens", err)
	}
	e.clk.advance(500 * time.Millisecond)
	if _, err := b.Take(ctx, gw, s, 1); err != nil {
		t.Fatalf("Take after 1 s: %v", err)
	}
	if _, err := b.Take(ctx, gw, s, 1); !errors.Is(err, budget.ErrNoTokens) {
		t.Fatalf("second Take after 1 s = %v, want ErrNoTokens", err)
	}

	// A quiet hour refills to the burst, no further.
	e.clk.advance(time.Hour)
	if st := status(t, b, s); st.Tokens != 5 {
		t.Errorf("after an hour, Status tokens = %v, want 5 (the burst)", st.Tokens)
	}
	for i := range 5 {
		if _, err := b.Take(ctx, gw, s, 1); err != nil {
			t.Fatalf("Take #%d after an hour: %v", i+1, err)
		}
	}
	if _, err := b.Take(ctx, gw, s, 1); !errors.Is(err, budget.ErrNoTokens) {
		t.Fatalf("sixth Take after an hour = %v, want ErrNoTokens", err)
	}
}

func TestTakeBatch(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 360, Burst: 5} // a token every 10 s
	if g, err := b.Take(ctx, gw, s, 3); err != nil || g.Tokens != 3 {
		t.Fatalf("Take(3) = %+v, %v; want 3 tokens", g, err)
	}
	_, err := b.Take(ctx, gw, s, 3)
	if d := denied(t, err, budget.ErrNoTokens); !d.Until.Equal(t0.Add(10 * time.Second)) {
		t.Errorf("Take(3) with 2 left: Until = %s, want %s", d.Until, t0.Add(10*time.Second))
	}
	if _, err := b.Take(ctx, gw, s, 6); !errors.Is(err, budget.ErrTooMany) {
		t.Errorf("Take(6) with burst 5 = %v, want ErrTooMany", err)
	}
	if _, err := b.Take(ctx, gw, s, 0); err == nil {
		t.Errorf("Take(0) = nil, want an error")
	}
	if _, err := b.Take(ctx, gw, s, 2); err != nil {
		t.Fatalf("Take(2) with 2 left: %v", err)
	}
	e.clk.advance(30 * time.Second)
	if _, err := b.Take(ctx, gw, s, 3); err != nil {
		t.Fatalf("Take(3) after 30 s: %v", err)
	}
}

func TestSlotsLeaseAndRelease(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{SlotLease: time.Minute})
	other := e.budget(budget.Options{SlotLease: time.Minute})
	ctx := context.Background()
	s := budget.Settings{MaxConcurrency: 2}
	g1, err := b.Acquire(ctx, gw, s, 1)
	if err != nil {
		t.Fatalf("Acquire 1: %v", err)
	}
	if g1.Slot < 0 || g1.Tokens != 1 || !g1.Expires.Equal(t0.Add(time.Minute)) {
		t.Errorf("Acquire 1 = %+v, want a slot and a token until %s", g1, t0.Add(time.Minute))
	}
	g2, err := other.Acquire(ctx, gw, s, 0)
	if err != nil {
		t.Fatalf("Acquire 2: %v", err)
	}
	if g1.Slot == g2.Slot {
		t.Fatalf("two grants hold slot %d", g1.Slot)
	}
	_, err = b.Acquire(ctx, gw, s, 1)
	if d := denied(t, err, budget.ErrNoSlot); !d.Until.Equal(t0.Add(budget.DefaultSlotWait)) {
		t.Errorf("Until = %s, want %s", d.Until, t0.Add(budget.DefaultSlotWait))
	}
	if st := status(t, b, s); st.SlotsInUse != 2 || st.MaxConcurrency != 2 {
		t.Errorf("Status slots = %d of %d, want 2 of 2", st.SlotsInUse, st.MaxConcurrency)
	}

	if err := b.Release(ctx, g1); err != nil {
		t.Fatalf("Release: %v", err)
	}
	g3, err := other.Acquire(ctx, gw, s, 0)
	if err != nil {
		t.Fatalf("Acquire after a release: %v", err)
	}

	// A holder that vanished: its lease ends and the slot comes back.
	e.clk.advance(time.Minute)
	if st := status(t, b, s); st.SlotsInUse != 0 {
		t.Errorf("after the leases ended, Status slots = %d, want 0", st.SlotsInUse)
	}
	g4, err := b.Acquire(ctx, gw, s, 0)
	if err != nil {
		t.Fatalf("Acquire after leases ended: %v", err)
	}
	g5, err := b.Acquire(ctx, gw, s, 0)
	if err != nil {
		t.Fatalf("second Acquire after leases ended: %v", err)
	}
	// The late holders' releases do not free the new holders' slots.
	for _, g := range []budget.Grant{g2, g3} {
		if err := other.Release(ctx, g); err != nil {
			t.Fatalf("late Release: %v", err)
		}
	}
	if st := status(t, b, s); st.SlotsInUse != 2 {
		t.Errorf("after late releases, Status slots = %d, want 2", st.SlotsInUse)
	}
	for _, g := range []budget.Grant{g4, g5} {
		if err := b.Release(ctx, g); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if st := status(t, b, s); st.SlotsInUse != 0 {
		t.Errorf("after releases, Status slots = %d, want 0", st.SlotsInUse)
	}
	// Lowering the ceiling takes effect at once.
	if _, err := b.Acquire(ctx, gw, budget.Settings{MaxConcurrency: 1}, 0); err != nil {
		t.Fatalf("Acquire under ceiling 1: %v", err)
	}
	if _, err := b.Acquire(ctx, gw, budget.Settings{MaxConcurrency: 1}, 0); !errors.Is(err, budget.ErrNoSlot) {
		t.Errorf("second Acquire under ceiling 1 = %v, want ErrNoSlot", err)
	}
}

func TestAcquireTokensBeforeSlot(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 1, MaxConcurrency: 1}
	g, err := b.Acquire(ctx, gw, s, 1)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// Neither a token nor a slot is left: the token's time is the answer.
	if _, err := b.Acquire(ctx, gw, s, 1); !errors.Is(err, budget.ErrNoTokens) {
		t.Errorf("Acquire = %v, want ErrNoTokens", err)
	}
	// A denied Acquire took nothing: after the release and a second, it goes.
	if err := b.Release(ctx, g); err != nil {
		t.Fatal(err)
	}
	e.clk.advance(time.Second)
	if _, err := b.Acquire(ctx, gw, s, 1); err != nil {
		t.Errorf("Acquire after a release and a second: %v", err)
	}
}

func TestAcquireWait(t *testing.T) {
	e := newEnv(t)
	var slept []time.Duration
	b := e.budget(budget.Options{Sleep: func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		e.clk.advance(d)
		return nil
	}})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 1}
	if _, err := b.AcquireWait(ctx, gw, s, 1, 5*time.Second); err != nil {
		t.Fatalf("AcquireWait: %v", err)
	}
	g, err := b.AcquireWait(ctx, gw, s, 1, 5*time.Second)
	if err != nil {
		t.Fatalf("AcquireWait for the next token: %v", err)
	}
	if diff := cmp.Diff([]time.Duration{time.Second}, slept); diff != "" {
		t.Errorf("slept (-want +got):\n%s", diff)
	}
	if err := b.Release(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := b.Pause(ctx, gw, e.clk.now().Add(time.Hour), budget.CauseOperator, "maintenance"); err != nil {
		t.Fatal(err)
	}
	slept = nil
	if _, err := b.AcquireWait(ctx, gw, s, 1, 5*time.Second); !errors.Is(err, budget.ErrPaused) || len(slept) != 0 {
		t.Errorf("AcquireWait on a pause of an hour = %v after sleeping %v, want ErrPaused at once", err, slept)
	}
}

func TestPauseAndResume(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{})
	other := e.budget(budget.Options{})
	ctx := context.Background()
	var s budget.Settings
	if _, err := other.Take(ctx, gw, s, 1); err != nil { // other's view: not paused
		t.Fatal(err)
	}
	until := t0.Add(time.Hour)
	if err := b.Pause(ctx, gw, until, budget.CauseRateLimited, "429 until 13:00"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	// A shorter pause does not shorten it.
	if err := b.Pause(ctx, gw, t0.Add(time.Minute), budget.CauseOperator, "shorter"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	want := &budget.DeniedError{GatewayID: gw, Err: budget.ErrPaused, Until: until, Cause: budget.CauseRateLimited, Reason: "429 until 13:00"}
	for name, call := range map[string]func() error{
		"Take":    func() error { _, err := other.Take(ctx, gw, s, 1); return err },
		"Acquire": func() error { _, err := other.Acquire(ctx, gw, s, 1); return err },
	} {
		d := denied(t, call(), budget.ErrPaused)
		if diff := cmp.Diff(*want, *d, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
			t.Errorf("%s while paused (-want +got):\n%s", name, diff)
		}
		if at, ok := budget.RetryAt(call()); !ok || !at.Equal(until) {
			t.Errorf("RetryAt(%s) = %s, %v; want %s", name, at, ok, until)
		}
	}
	st := status(t, b, s)
	if !st.Paused || !st.PausedUntil.Equal(until) || st.PauseCause != budget.CauseRateLimited || st.PauseReason != "429 until 13:00" || !st.PausedAt.Equal(t0) {
		t.Errorf("Status = %+v, want paused until %s (rate_limited)", st, until)
	}

	// It ends by itself.
	e.clk.advance(time.Hour)
	if _, err := other.Take(ctx, gw, s, 1); err != nil {
		t.Fatalf("Take after the pause: %v", err)
	}
	if st := status(t, b, s); st.Paused {
		t.Errorf("Status after the pause = %+v, want not paused", st)
	}

	// Or by hand.
	if err := b.Pause(ctx, gw, e.clk.now().Add(24*time.Hour), budget.CauseOperator, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Take(ctx, gw, s, 1); !errors.Is(err, budget.ErrPaused) {
		t.Fatalf("Take = %v, want ErrPaused", err)
	}
	if err := b.Resume(ctx, gw); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := other.Take(ctx, gw, s, 1); err != nil {
		t.Fatalf("Take after Resume: %v", err)
	}
}

func TestTripBacksOffExponentiallyWithJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rand   float64
		factor float64 // the pause as a part of the backoff's delay
	}{
		{"least jitter", 0, 0.5},
		{"most jitter", 1 - 1e-12, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.budget(budget.Options{Rand: func() float64 { return tc.rand }})
			ctx := context.Background()
			policy := budget.Backoffs[budget.CauseUnavailable]
			wantDelays := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
				160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
			for i, want := range wantDelays {
				if got := policy.Delay(i + 1); got != want {
					t.Errorf("Delay(%d) = %s, want %s", i+1, got, want)
				}
				until, err := b.Trip(ctx, gw, budget.CauseUnavailable, "503 Service Unavailable")
				if err != nil {
					t.Fatalf("Trip #%d: %v", i+1, err)
				}
				if want == 0 {
					if !until.IsZero() {
						t.Errorf("Trip #%d paused until %s, want no pause below the threshold", i+1, until)
					}
					continue
				}
				got := until.Sub(e.clk.now())
				lo, hi := want/2, want
				if got < lo || got > hi {
					t.Errorf("Trip #%d paused %s, want within [%s, %s]", i+1, got, lo, hi)
				}
				if d := time.Duration(tc.factor * float64(want)); got < d-time.Millisecond || got > d {
					t.Errorf("Trip #%d with rand %v paused %s, want %s", i+1, tc.rand, got, d)
				}
				st := status(t, b, budget.Settings{})
				if !st.Paused || st.PauseCause != budget.CauseUnavailable || st.Failures != i+1 || st.ProbeRequired {
					t.Errorf("Status after Trip #%d = %+v", i+1, st)
				}
				e.clk.advance(want) // the pause ends; the next request fails again
			}
			// A success resets the count: the next failure does not pause.
			if err := b.Report(ctx, gw, budget.Settings{}, budget.Outcome{Status: 200}); err != nil {
				t.Fatalf("Report(200): %v", err)
			}
			if st := status(t, b, budget.Settings{}); st.Failures != 0 {
				t.Errorf("after a success, failures = %d, want 0", st.Failures)
			}
			if until, err := b.Trip(ctx, gw, budget.CauseUnavailable, "503"); err != nil || !until.IsZero() {
				t.Errorf("Trip after a success = %s, %v; want no pause", until, err)
			}
		})
	}
}

func TestProbeLetsOneCallerThrough(t *testing.T) {
	e := newEnv(t)
	opts := budget.Options{Rand: func() float64 { return 0.5 }, ProbeLease: time.Minute}
	a, c := e.budget(opts), e.budget(opts)
	ctx := context.Background()
	var s budget.Settings
	if err := a.Report(ctx, gw, s, budget.Outcome{Status: http.StatusUnauthorized}); err != nil {
		t.Fatalf("Report(401): %v", err)
	}
	st := status(t, a, s)
	firstProbe := t0.Add(45 * time.Second) // a minute, jittered by 0.5 into [30 s, 60 s]
	if !st.Paused || !st.ProbeRequired || st.PauseCause != budget.CauseAuth || !st.PausedUntil.Equal(firstProbe) {
		t.Fatalf("Status after 401 = %+v, want paused for a probe at %s", st, firstProbe)
	}
	if _, err := c.Take(ctx, gw, s, 1); !errors.Is(err, budget.ErrPaused) {
		t.Fatalf("Take before the probe time = %v, want ErrPaused", err)
	}

	// The probe time came: one caller gets the probe, the others wait.
	e.clk.advance(45 * time.Second)
	g, err := c.Acquire(ctx, gw, s, 1)
	if err != nil || !g.Probe {
		t.Fatalf("Acquire at the probe time = %+v, %v; want a probe", g, err)
	}
	_, err = a.Take(ctx, gw, s, 1)
	if d := denied(t, err, budget.ErrPaused); !d.Until.Equal(e.clk.now().Add(time.Minute)) {
		t.Errorf("Take during the probe: Until = %s, want the probe lease's end %s", d.Until, e.clk.now().Add(time.Minute))
	}

	// The probe fails: the next one comes later (2 minutes, jittered to 1.5).
	if err := c.Done(ctx, g, budget.Outcome{Status: http.StatusUnauthorized}); err != nil {
		t.Fatalf("Done(401): %v", err)
	}
	st = status(t, a, s)
	if next := e.clk.now().Add(90 * time.Second); !st.ProbeRequired || !st.PausedUntil.Equal(next) || st.Failures != 2 {
		t.Fatalf("Status after a failed probe = %+v, want the next probe at %s", st, next)
	}

	// The prober vanishes: after its lease another caller probes.
	e.clk.advance(90 * time.Second)
	if g, err := a.Take(ctx, gw, s, 1); err != nil || !g.Probe {
		t.Fatalf("Take at the second probe time = %+v, %v; want a probe", g, err)
	}
	e.clk.advance(time.Minute)
	g, err = c.Take(ctx, gw, s, 1)
	if err != nil || !g.Probe {
		t.Fatalf("Take after the probe lease = %+v, %v; want a probe", g, err)
	}

	// The probe succeeds: the gateway is open to everyone.
	if err := c.Done(ctx, g, budget.Outcome{Status: http.StatusOK}); err != nil {
		t.Fatalf("Done(200): %v", err)
	}
	if st := status(t, a, s); st.Paused || st.Failures != 0 {
		t.Errorf("Status after a good probe = %+v, want open", st)
	}
	for _, b := range []*budget.Budget{a, c} {
		if g, err := b.Take(ctx, gw, s, 1); err != nil || g.Probe {
			t.Errorf("Take after a good probe = %+v, %v; want a plain grant", g, err)
		}
	}
}

func TestObserveLearnsDown(t *testing.T) {
	e := newEnv(t)
	b := e.budget(budget.Options{})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 20}
	rate := func(limit int) (int, int) {
		t.Helper()
		if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: limit, Remaining: -1}); err != nil {
			t.Fatalf("Observe(%d): %v", limit, err)
		}
		st := status(t, b, s)
		if st.LearnedLimit != limit || st.ConfiguredRate != 3600 {
			t.Errorf("Observe(%d): Status = %+v", limit, st)
		}
		return st.Rate, st.Burst
	}
	for _, tc := range []struct{ limit, rate, burst int }{
		{1000, 980, 20},    // the burst on top of the rate fits the hour
		{100000, 3600, 20}, // never above the configured rate
		{3610, 3590, 20},
		{100, 90, 10}, // a small limit shrinks the burst too
		{5, 4, 1},
	} {
		if r, bu := rate(tc.limit); r != tc.rate || bu != tc.burst {
			t.Errorf("limit %d/h: rate %d burst %d, want %d and %d", tc.limit, r, bu, tc.rate, tc.burst)
		}
	}

	// Learning keeps what is owed: 10 tokens taken at 3600/h are owed at 1800/h too.
	rate(100000)
	if _, err := b.Take(ctx, gw, s, 10); err != nil {
		t.Fatal(err)
	}
	if r, _ := rate(1820); r != 1800 {
		t.Fatalf("rate = %d, want 1800", r)
	}
	if st := status(t, b, s); st.Tokens != 10 {
		t.Errorf("after learning 1800/h, tokens = %v, want 10", st.Tokens)
	}
	e.clk.advance(2 * time.Second)
	if st := status(t, b, s); st.Tokens != 11 {
		t.Errorf("2 s later at 1800/h, tokens = %v, want 11", st.Tokens)
	}

	// Remaining below our tokens takes the surplus away.
	if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: 1820, Remaining: 3, Reset: e.clk.now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, b, s); st.Tokens != 3 {
		t.Errorf("after Remaining 3, tokens = %v, want 3", st.Tokens)
	}
	// Remaining 0 pauses until the reset.
	reset := e.clk.now().Add(20 * time.Minute).Truncate(time.Second)
	if err := b.Observe(ctx, gw, s, budget.RateLimit{Limit: 1820, Remaining: 0, Reset: reset}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Take(ctx, gw, s, 1)
	if d := denied(t, err, budget.ErrPaused); !d.Until.Equal(reset) || d.Cause != budget.CauseRateLimited {
		t.Errorf("Take after Remaining 0 = %+v, want paused until %s", d, reset)
	}
}

func TestParseRateLimit(t *testing.T) {
	h := http.Header{}
	if _, ok := budget.ParseRateLimit(h); ok {
		t.Errorf("ParseRateLimit(no headers) ok, want not")
	}
	h.Set("X-RateLimit-Limit", "500")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", "1772370000")
	rl, ok := budget.ParseRateLimit(h)
	want := budget.RateLimit{Limit: 500, Remaining: 0, Reset: time.Unix(1772370000, 0)}
	if !ok || !cmp.Equal(want, rl) {
		t.Errorf("ParseRateLimit = %+v, %v; want %+v", rl, ok, want)
	}
}

func TestReport(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		outcomes  []budget.Outcome
		paused    bool
		cause     budget.Cause
		until     time.Duration // from t0; for a jittered pause the upper bound
		jittered  bool
		probe     bool
		failures  int
		rate      int
		remaining float64
	}{
		{name: "200", outcomes: []budget.Outcome{{Status: 200}}, rate: 3600, remaining: 20},
		{name: "404 is an answer", outcomes: []budget.Outcome{{Status: 404}}, rate: 3600, remaining: 20},
		{name: "cancelled by the caller", outcomes: []budget.Outcome{{Err: context.Canceled}}, rate: 3600, remaining: 20},
		{name: "429 Retry-After seconds", outcomes: []budget.Outcome{{Status: 429, Header: hdr("Retry-After", "3600")}},
			paused: true, cause: budget.CauseRateLimited, until: time.Hour, rate: 3600, remaining: 20},
		{name: "429 Retry-After date", outcomes: []budget.Outcome{{Status: 429, Header: hdr("Retry-After", t0.Add(10*time.Minute).Format(http.TimeFormat))}},
			paused: true, cause: budget.CauseRateLimited, until: 10 * time.Minute, rate: 3600, remaining: 20},
		{name: "429 X-RateLimit-Reset", outcomes: []budget.Outcome{{Status: 429, Header: hdr("X-RateLimit-Limit", "1000",
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", itoa(t0.Add(30*time.Minute).Unix()))}},
			paused: true, cause: budget.CauseRateLimited, until: 30 * time.Minute, rate: 980, remaining: 20},
		{name: "429 without Retry-After", outcomes: []budget.Outcome{{Status: 429}},
			paused: true, cause: budget.CauseOverloaded, until: 2 * time.Second, jittered: true, failures: 1, rate: 3600, remaining: 20},
		{name: "two 5xx", outcomes: []budget.Outcome{{Status: 500}, {Status: 503}}, failures: 2, rate: 3600, remaining: 20},
		{name: "5xx, timeout, 502", outcomes: []budget.Outcome{{Status: 500}, {Err: context.DeadlineExceeded}, {Status: 502}},
			paused: true, cause: budget.CauseUnavailable, until: 10 * time.Second, jittered: true, failures: 3, rate: 3600, remaining: 20},
		{name: "5xx then 200 then 5xx", outcomes: []budget.Outcome{{Status: 500}, {Status: 500}, {Status: 200}, {Status: 500}},
			failures: 1, rate: 3600, remaining: 20},
		{name: "403", outcomes: []budget.Outcome{{Status: 403}},
			paused: true, cause: budget.CauseAuth, until: time.Minute, jittered: true, probe: true, failures: 1, rate: 3600, remaining: 20},
		{name: "rate-limit headers on a 200", outcomes: []budget.Outcome{{Status: 200, Header: hdr("X-RateLimit-Limit", "1000", "X-RateLimit-Remaining", "7")}},
			rate: 980, remaining: 7},
	}
	e := newEnv(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := e.budget(budget.Options{})
			ctx := context.Background()
			id := gw + "-" + itoa(int64(i))
			var s budget.Settings
			for _, o := range tc.outcomes {
				if err := b.Report(ctx, id, s, o); err != nil {
					t.Fatalf("Report(%+v): %v", o, err)
				}
			}
			st, err := b.Status(ctx, id, s)
			if err != nil {
				t.Fatal(err)
			}
			if st.Paused != tc.paused || st.PauseCause != tc.cause || st.ProbeRequired != tc.probe ||
				st.Failures != tc.failures || st.Rate != tc.rate || st.Tokens != tc.remaining {
				t.Errorf("Status = %+v, want paused=%v cause=%q probe=%v failures=%d rate=%d tokens=%v",
					st, tc.paused, tc.cause, tc.probe, tc.failures, tc.rate, tc.remaining)
			}
			if !tc.paused {
				return
			}
			lo, hi := t0.Add(tc.until), t0.Add(tc.until)
			if tc.jittered {
				lo = t0.Add(tc.until / 2)
			}
			if st.PausedUntil.Before(lo) || st.PausedUntil.After(hi) {
				t.Errorf("paused until %s, want within [%s, %s]", st.PausedUntil, lo, hi)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// countingClient counts the DynamoDB operations a Budget sends.
type countingClient struct {
	inner aws.HTTPClient
	mu    sync.Mutex
	ops   map[string]int
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.ops[r.Header.Get("X-Amz-Target")]++
	c.mu.Unlock()
	return c.inner.Do(r)
}

func (c *countingClient) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.ops
	c.ops = map[string]int{}
	return got
}

func countingBudget(e *env, opts budget.Options) (*budget.Budget, *countingClient) {
	cfg := e.cfg.Copy()
	cc := &countingClient{inner: cfg.HTTPClient, ops: map[string]int{}}
	cfg.HTTPClient = cc
	if opts.Now == nil {
		opts.Now = e.clk.now
	}
	return budget.New(dynamodb.NewFromConfig(cfg), e.table, opts), cc
}

// TestHappyPathCost holds the cost the package doc states: one write per
// take or acquire, one per release, nothing for a success to report.
func TestHappyPathCost(t *testing.T) {
	e := newEnv(t)
	b, cc := countingBudget(e, budget.Options{})
	ctx := context.Background()
	s := budget.Settings{RatePerHour: budget.MaxRatePerHour, Burst: 1000, MaxConcurrency: 4}
	if _, err := b.Take(ctx, gw, s, 1); err != nil { // the first take creates the item
		t.Fatal(err)
	}
	cc.reset()
	const n = 20
	for range n {
		if _, err := b.Take(ctx, gw, s, 2); err != nil {
			t.Fatal(err)
		}
		g, err := b.Acquire(ctx, gw, s, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Done(ctx, g, budget.Outcome{Status: 200, Header: http.Header{"X-Ratelimit-Limit": {"10000000"}}}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"DynamoDB_20120810.UpdateItem": 3*n + 1} // + learning the limit once
	if diff := cmp.Diff(want, cc.reset()); diff != "" {
		t.Errorf("DynamoDB operations for %d take+acquire+done (-want +got):\n%s", n, diff)
	}
}

// skipOnMoto skips a test that needs conditional writes to be atomic: moto
// evaluates them without isolation. Sequential behaviour is tested on moto
// too.
func skipOnMoto(t testing.TB) {
	t.Helper()
	if awstest.Kind() == awstest.Moto {
		t.Skip("moto does not isolate concurrent conditional writes")
	}
}

// TestConcurrentTakesNeverExceedTheBucket: many processes taking at once
// get exactly the burst, then exactly what the refill adds.
func TestConcurrentTakesNeverExceedTheBucket(t *testing.T) {
	skipOnMoto(t)
	e := newEnv(t)
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 40}
	const procs, perProc = 8, 12
	budgets := make([]*budget.Budget, procs)
	for i := range budgets {
		budgets[i] = e.budget(budget.Options{})
	}
	round := func() int64 {
		var granted atomic.Int64
		var wg sync.WaitGroup
		for _, b := range budgets {
			for range 2 { // two goroutines share each process's Budget
				wg.Go(func() {
					for range perProc / 2 {
						_, err := b.Take(ctx, gw, s, 1)
						switch {
						case err == nil:
							granted.Add(1)
						case errors.Is(err, budget.ErrNoTokens), errors.Is(err, budget.ErrContended):
						default:
							t.Errorf("Take: %v", err)
						}
					}
				})
			}
		}
		wg.Wait()
		return granted.Load()
	}
	if got := round(); got != 40 {
		t.Errorf("%d concurrent takes at a full bucket got %d tokens, want exactly the burst 40", procs*perProc, got)
	}
	e.clk.advance(10 * time.Second)
	if got := round(); got != 10 {
		t.Errorf("10 s later, %d concurrent takes got %d tokens, want exactly 10", procs*perProc, got)
	}
}

// TestConcurrentSlotsNeverExceedTheCeiling: requests held under slots by
// many processes at once never number more than the ceiling.
func TestConcurrentSlotsNeverExceedTheCeiling(t *testing.T) {
	skipOnMoto(t)
	e := newEnv(t)
	ctx := context.Background()
	s := budget.Settings{RatePerHour: budget.MaxRatePerHour, Burst: 1000, MaxConcurrency: 3}
	var inFlight, most, done atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		b := e.budget(budget.Options{})
		wg.Go(func() {
			for range 15 {
				g, err := b.Acquire(ctx, gw, s, 1)
				if errors.Is(err, budget.ErrNoSlot) || errors.Is(err, budget.ErrContended) {
					continue
				}
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				if st, err := b.Status(ctx, gw, s); err != nil || st.SlotsInUse > 3 {
					t.Errorf("Status = %+v, %v; want at most 3 slots in use", st, err)
				}
				inFlight.Add(-1)
				done.Add(1)
				if err := b.Release(ctx, g); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if most.Load() > 3 || done.Load() == 0 {
		t.Errorf("at most %d requests in flight (%d done), want 1..3", most.Load(), done.Load())
	}
}

// TestSettingsChangeKeepsWhatIsOwed: callers that count the bucket in
// different settings (a --rate-limit change reaching one function before
// another) convert it rather than each spending a full bucket of its own.
func TestSettingsChangeKeepsWhatIsOwed(t *testing.T) {
	e := newEnv(t)
	fast, slow := e.budget(budget.Options{}), e.budget(budget.Options{})
	ctx := context.Background()
	fastS := budget.Settings{RatePerHour: 3600, Burst: 5}
	slowS := budget.Settings{RatePerHour: 360, Burst: 5}
	if _, err := fast.Take(ctx, gw, fastS, 5); err != nil {
		t.Fatal(err)
	}
	_, err := slow.Take(ctx, gw, slowS, 1)
	if d := denied(t, err, budget.ErrNoTokens); !d.Until.Equal(t0.Add(10 * time.Second)) {
		t.Errorf("slow Take after the fast one spent the bucket: Until = %s, want %s", d.Until, t0.Add(10*time.Second))
	}
	if st := status(t, slow, slowS); st.Tokens != 0 || st.Rate != 360 {
		t.Errorf("Status = %+v, want no tokens at 360/h", st)
	}
	e.clk.advance(10 * time.Second)
	if _, err := slow.Take(ctx, gw, slowS, 1); err != nil {
		t.Fatalf("slow Take 10 s later: %v", err)
	}
	// Back to the fast settings: the five tokens owed are owed at a second
	// each, so two are there in two seconds.
	_, err = fast.Take(ctx, gw, fastS, 2)
	if d := denied(t, err, budget.ErrNoTokens); !d.Until.Equal(e.clk.now().Add(2 * time.Second)) {
		t.Errorf("fast Take(2): Until = %s, want %s", d.Until, e.clk.now().Add(2*time.Second))
	}
}
