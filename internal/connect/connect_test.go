package connect_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	snowUser = "svc.snowgate"
	snowPass = "pw-test-only"
)

// env is a simulated instance, a gateway of it with a credentials secret,
// and a budget on a state table of the emulator.
type env struct {
	sim     *snowsim.Server
	secrets *secrets.Store
	budget  *budget.Budget
	db      *dynamodb.Client
	table   string
	gw      registry.Gateway
	clock   *clock
}

// clock is the budget's time, moved by the tests instead of waited for.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

func newEnv(t *testing.T, rate, ceiling int) *env {
	t.Helper()
	ctx := context.Background()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table, err := provision.CreateTable(ctx, db, awstest.UniqueName("cn")+"-"+schema.State.ID, schema.State)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	sec := secrets.New(secretsmanager.NewFromConfig(cfg))
	doc, _ := json.Marshal(registry.Credentials{Auth: registry.AuthBasic, Username: snowUser, Password: snowPass})
	arn, err := sec.Create(ctx, awstest.UniqueName("snowgate-test-")+"/gw", string(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser(snowUser, snowPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	clk := &clock{t: time.Now()}
	return &env{
		sim: sim, secrets: sec, clock: clk, db: db, table: table,
		budget: budget.New(db, table, budget.Options{Now: clk.now}),
		gw: registry.Gateway{ID: awstest.UniqueName("gtw_"), InstanceURL: sim.URL, CredentialsSecretARN: arn,
			RateLimitPerHour: rate, MaxConcurrency: ceiling},
	}
}

func (e *env) pool() *connect.Pool {
	return connect.New(connect.Config{
		Secrets: e.secrets, Budget: e.budget, Wait: time.Millisecond,
		Options: []servicenow.Option{servicenow.WithMaxAttempts(1)},
	})
}

func (e *env) incident(t *testing.T) string {
	t.Helper()
	rec, err := e.sim.Sim.Insert("incident", map[string]string{"short_description": "printer on fire"})
	if err != nil {
		t.Fatal(err)
	}
	return rec["sys_id"]
}

func denial(t *testing.T, err error) *budget.DeniedError {
	t.Helper()
	var d *budget.DeniedError
	if !servicenow.IsNotAdmitted(err) || !errors.As(err, &d) {
		t.Fatalf("error = %v, want a call the budget did not admit", err)
	}
	return d
}

// A 429 with Retry-After pauses the gateway for every caller: the next
// request is not sent, and its error says until when.
func TestRateLimitedPausesTheGateway(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	id := e.incident(t)
	e.sim.Sim.SetRateLimits(snowsim.RateLimitRule{Name: "integration", User: snowUser, Limit: 1, Window: time.Hour})
	// Another client of the same user spends the hour's one request (the
	// budget, which learns the limit from the answers it sees, would
	// otherwise hold the second request back itself).
	other, err := servicenow.New(e.sim.URL, servicenow.BasicAuth(snowUser, snowPass))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, "incident", id); err != nil {
		t.Fatalf("other client's Get: %v", err)
	}
	c, err := e.pool().Client(ctx, e.gw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "incident", id); !errors.Is(err, servicenow.ErrRateLimited) {
		t.Fatalf("Get: %v, want the rule's 429", err)
	}
	before := requests(e.sim.Sim)
	_, err = c.Get(ctx, "incident", id)
	d := denial(t, err)
	if !errors.Is(d, budget.ErrPaused) || d.Cause != budget.CauseRateLimited {
		t.Errorf("denial = %v, want paused, rate_limited", d)
	}
	if wait := d.Until.Sub(e.clock.now()); wait <= time.Minute || wait > time.Hour+time.Minute {
		t.Errorf("paused for %s, want until the rule's window ends (within the hour)", wait)
	}
	if got := requests(e.sim.Sim); got != before {
		t.Errorf("a request went to the paused instance: %d requests, want %d", got, before)
	}
	if !connect.Paused(err) {
		t.Errorf("Paused(%v) = false", err)
	}
	if ra := connect.RetryAfter(err, e.clock.now()); ra <= time.Minute {
		t.Errorf("RetryAfter = %s, want the pause's end", ra)
	}
}

// A 403 is the gateway's misconfiguration: it pauses until a probe finds
// the right restored, and that probe resumes it.
func TestForbiddenPausesUntilAProbeSucceeds(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	id := e.incident(t)
	e.sim.Sim.SetReadDenied(snowUser, "incident", true)
	c, err := e.pool().Client(ctx, e.gw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "incident", id); !errors.Is(err, servicenow.ErrForbidden) {
		t.Fatalf("Get: %v, want 403", err)
	}
	_, err = c.Get(ctx, "incident", id)
	if d := denial(t, err); d.Cause != budget.CauseAuth {
		t.Fatalf("denial cause = %q, want auth", d.Cause)
	}
	st, err := e.budget.Status(ctx, e.gw.ID, e.gw.BudgetSettings())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Paused || !st.ProbeRequired {
		t.Fatalf("status = %+v, want paused until a probe", st)
	}

	// The role is granted; the probe time comes and the first request
	// through resumes the gateway.
	e.sim.Sim.SetReadDenied(snowUser, "incident", false)
	e.clock.advance(budget.Backoffs[budget.CauseAuth].Base + time.Second)
	if _, err := c.Get(ctx, "incident", id); err != nil {
		t.Fatalf("probe Get: %v", err)
	}
	if st, _ := e.budget.Status(ctx, e.gw.ID, e.gw.BudgetSettings()); st.Paused {
		t.Fatalf("after a successful probe: %+v, want resumed", st)
	}
	if _, err := c.Get(ctx, "incident", id); err != nil {
		t.Fatalf("Get after the probe: %v", err)
	}
}

// Past its burst, a gateway's requests wait for their turns: each denied
// request is given its own, one token interval after the one before.
func TestSpentRateDefersToTurns(t *testing.T) {
	e := newEnv(t, 3600, 4) // a token a second, burst 20 → BurstFor: 20
	ctx := context.Background()
	id := e.incident(t)
	c, err := e.pool().Client(ctx, e.gw)
	if err != nil {
		t.Fatal(err)
	}
	burst := registry.BurstFor(3600)
	for i := range burst {
		if _, err := c.Get(ctx, "incident", id); err != nil {
			t.Fatalf("Get %d within the burst: %v", i, err)
		}
	}
	var turns []time.Time
	for range 3 {
		_, err := c.Get(ctx, "incident", id)
		d := denial(t, err)
		if !errors.Is(d, budget.ErrNoTokens) {
			t.Fatalf("denial = %v, want no tokens", d)
		}
		turns = append(turns, d.Until)
	}
	for i := 1; i < len(turns); i++ {
		if gap := turns[i].Sub(turns[i-1]); gap < 900*time.Millisecond || gap > 1100*time.Millisecond {
			t.Errorf("turn %d is %s after turn %d, want a token interval (1s)", i, gap, i-1)
		}
	}
	if got := requests(e.sim.Sim); got != burst {
		t.Errorf("instance saw %d requests, want the burst, %d", got, burst)
	}
}

// requests counts the HTTP requests the simulator answered.
func requests(sim *snowsim.Sim) int {
	n := 0
	for _, c := range sim.Stats().Requests {
		n += c
	}
	return n
}

// A write with nothing to be deferred with may wait out a short pause in
// process (WithWait); others are told to come back.
func TestWithWaitWaitsOutAShortPause(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	id := e.incident(t)
	// Real time here: the wait is a real one.
	b := budget.New(e.db, e.table, budget.Options{})
	pool := connect.New(connect.Config{Secrets: e.secrets, Budget: b, Wait: time.Millisecond})
	c, err := pool.Client(ctx, e.gw)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Pause(ctx, e.gw.ID, time.Now().Add(time.Second), budget.CauseOperator, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "incident", id); !connect.Paused(err) {
		t.Fatalf("Get while paused: %v, want held back", err)
	}
	if _, err := c.Get(connect.WithWait(ctx, 5*time.Second), "incident", id); err != nil {
		t.Fatalf("Get with a wait longer than the pause: %v", err)
	}
}
