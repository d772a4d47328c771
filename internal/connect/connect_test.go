package connect_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

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
	// reads counts the GetSecretValue calls sent to the emulator.
	reads *secretReads
}

// secretReads counts the GetSecretValue requests going through it.
type secretReads struct {
	next aws.HTTPClient
	n    atomic.Int64
}

func (r *secretReads) Do(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") == "secretsmanager.GetSecretValue" {
		r.n.Add(1)
	}
	return r.next.Do(req)
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
	reads := &secretReads{next: cfg.HTTPClient}
	smCfg := cfg.Copy()
	smCfg.HTTPClient = reads
	sec := secrets.New(secretsmanager.NewFromConfig(smCfg))
	id := "gtw_" + uuid.NewString()
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser(snowUser, snowPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	arn := gatewaySecret(t, sec, id, sim.URL)
	clk := &clock{t: time.Now()}
	return &env{
		sim: sim, secrets: sec, clock: clk, db: db, table: table, reads: reads,
		budget: budget.New(db, table, budget.Options{Now: clk.now}),
		gw: registry.Gateway{ID: id, InstanceURL: sim.URL, CredentialsSecretARN: arn,
			RateLimitPerHour: rate, MaxConcurrency: ceiling},
	}
}

// gatewaySecret stores the simulator user's credentials for instance (""
// names none, as a secret written before they did) in the secret named for
// gateway id, under a prefix of the test's own.
func gatewaySecret(t *testing.T, sec *secrets.Store, id, instance string) string {
	t.Helper()
	doc, _ := json.Marshal(registry.Credentials{Auth: registry.AuthBasic, Username: snowUser, Password: snowPass, InstanceURL: instance})
	arn, err := sec.Create(context.Background(), schema.GatewaySecretName(awstest.UniqueName("snowgate-test-")+"/", id), string(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	return arn
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

// A gateway item is trusted with the credentials secret named for it only,
// and with a ServiceNow or loopback host unless registered for another:
// whoever can write the registry table cannot have a gateway's (or another
// gateway's) password sent to a host of theirs. A refused item's secret is
// never read.
func TestTamperedGatewayIsRefused(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	other := "gtw_" + uuid.NewString()
	otherARN := gatewaySecret(t, e.secrets, other, e.sim.URL)

	for _, tc := range []struct {
		name   string
		tamper func(*registry.Gateway)
		says   string // in the error
	}{
		{"another gateway's secret", func(g *registry.Gateway) { g.CredentialsSecretARN = otherARN }, "gateways/" + other},
		{"another gateway's secret and a host of the writer's", func(g *registry.Gateway) {
			g.CredentialsSecretARN, g.InstanceURL = otherARN, "https://collector.example.net"
		}, "not the one named for it"},
		{"a secret not named for a gateway", func(g *registry.Gateway) {
			g.CredentialsSecretARN = strings.Replace(g.CredentialsSecretARN, "/gateways/", "/webhooks/", 1)
		}, "not the one named for it"},
		{"a host that is not ServiceNow's", func(g *registry.Gateway) { g.InstanceURL = "https://collector.example.net" }, "--allow-custom-host"},
		{"a look-alike host", func(g *registry.Gateway) { g.InstanceURL = "https://acme.service-now.com.example.net" }, "--allow-custom-host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := e.gw
			tc.tamper(&g)
			before := e.reads.n.Load()
			_, err := e.pool().Client(ctx, g)
			if !errors.Is(err, connect.ErrUntrusted) {
				t.Fatalf("Client = %v, want ErrUntrusted", err)
			}
			if msg := err.Error(); !strings.Contains(msg, g.ID) || !strings.Contains(msg, tc.says) || strings.Contains(msg, snowPass) {
				t.Errorf("error %q: want it to name gateway %s and say %q, without the password", msg, g.ID, tc.says)
			}
			if n := e.reads.n.Load() - before; n != 0 {
				t.Errorf("%d GetSecretValue calls for a refused gateway, want none", n)
			}
		})
	}

	// The secret names the instance its credentials are for, which the
	// table's writers cannot change: another ServiceNow instance (one of
	// the writer's), or a custom host with the permission set beside it,
	// is refused once the secret is read, before any request.
	for _, tc := range []struct {
		name   string
		tamper func(*registry.Gateway)
	}{
		{"another ServiceNow instance", func(g *registry.Gateway) { g.InstanceURL = "https://dev99999.service-now.com" }},
		{"a custom host, allowed in the item", func(g *registry.Gateway) {
			g.InstanceURL, g.AllowCustomHost = "https://collector.example.net", true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := e.gw
			tc.tamper(&g)
			_, err := e.pool().Client(ctx, g)
			if !errors.Is(err, connect.ErrUntrusted) || !strings.Contains(err.Error(), "not the one its credentials secret is for") {
				t.Fatalf("Client = %v, want ErrUntrusted: not the secret's instance", err)
			}
			if strings.Contains(err.Error(), snowPass) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}

	t.Run("a custom host it was registered for", func(t *testing.T) {
		g := e.gw
		g.ID = "gtw_" + uuid.NewString()
		g.InstanceURL, g.AllowCustomHost = "https://itsm.example.net", true
		g.CredentialsSecretARN = gatewaySecret(t, e.secrets, g.ID, g.InstanceURL)
		before := e.reads.n.Load()
		c, err := e.pool().Client(ctx, g)
		if err != nil {
			t.Fatalf("Client: %v", err)
		}
		// The count above sees reads: this one read the secret.
		if n := e.reads.n.Load() - before; n != 1 {
			t.Errorf("%d GetSecretValue calls, want 1", n)
		}
		if c.InstanceURL() != g.InstanceURL {
			t.Errorf("client of %s, want %s", c.InstanceURL(), g.InstanceURL)
		}
	})

	t.Run("tampered after its client was made", func(t *testing.T) {
		p := e.pool()
		if _, err := p.Client(ctx, e.gw); err != nil {
			t.Fatalf("Client of the gateway as registered: %v", err)
		}
		g := e.gw
		g.InstanceURL = "https://collector.example.net"
		if _, err := p.Client(ctx, g); !errors.Is(err, connect.ErrUntrusted) {
			t.Fatalf("Client after the host changed = %v, want ErrUntrusted", err)
		}
	})
}

// A secret written before secrets named their instance (or by hand) leaves
// the item's instance URL to the host check alone.
func TestSecretWithoutInstance(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	g := e.gw
	g.ID = "gtw_" + uuid.NewString()
	g.CredentialsSecretARN = gatewaySecret(t, e.secrets, g.ID, "")
	if _, err := e.pool().Client(ctx, g); err != nil {
		t.Fatalf("Client of a gateway whose secret names no instance: %v", err)
	}
	g.InstanceURL = "https://collector.example.net"
	if _, err := e.pool().Client(ctx, g); !errors.Is(err, connect.ErrUntrusted) {
		t.Fatalf("Client on a custom host = %v, want ErrUntrusted", err)
	}
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
