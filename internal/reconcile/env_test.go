package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/watermark"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	snowUser = "integration"
	snowPass = "s3cret"
)

// clock is a settable time source shared by the simulator (sys_updated_on)
// and the reconciler (timestamps, lag).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's world: emulated AWS resources, a simulated instance
// behind an httptest server (whose handler a test may wrap), a reconciler
// and the real processor.
type env struct {
	t       testing.TB
	res     provision.Resources
	ddb     *dynamodb.Client
	sqs     *sqs.Client
	secrets *secrets.Store
	// gatewayID and webhookID are the test's gateway and its incident
	// webhook, registered as the CLI registers them.
	gatewayID string
	webhookID string
	prefix    string // the test's Secrets Manager name prefix
	clk       *clock
	sim       *snowsim.Sim
	srv       *httptest.Server
	// wrap, when set, sees every request before the simulator does.
	wrap    func(w http.ResponseWriter, r *http.Request, next http.Handler)
	tickets *state.Store
	marks   *watermark.Store
	logs    bytes.Buffer
	emf     syncBuffer
	proc    *pipeline.Processor
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envOptions struct {
	// skew is how far the instance's clock is behind ours.
	skew time.Duration
	// groups filters the gateway by assignment group.
	groups string
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	cfg := awstest.Config(t)
	e := &env{
		t:       t,
		res:     awstest.Resources(t),
		ddb:     dynamodb.NewFromConfig(cfg),
		sqs:     sqs.NewFromConfig(cfg),
		secrets: secrets.New(secretsmanager.NewFromConfig(cfg)),
		clk:     &clock{t: time.Now().UTC().Truncate(time.Second)},
	}
	e.sim = snowsim.New(snowsim.WithUser(snowUser, snowPass),
		snowsim.WithClock(func() time.Time { return e.clk.now().Add(-o.skew) }))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.wrap != nil {
			e.wrap(w, r, e.sim)
			return
		}
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	if err := e.sim.Seed(strings.NewReader(`{"sys_user_group": [
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "name": "Network"},
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02", "name": "Database"}]}`)); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	e.prefix = awstest.UniqueName("snowgate-test-") + "/"
	t.Cleanup(func() {
		// Before the tables go: the gateways' credentials secrets with them.
		gws, _ := registry.New(e.ddb, e.res.RegistryTable).Gateways(context.Background())
		for _, g := range gws {
			_, _ = e.ops(e.clk.now()).DeleteGateway(context.Background(), g.ID, true)
		}
	})
	e.gatewayID = e.addGateway("ops", e.srv.URL, o.groups)
	// Read once so that concurrent readers hit the cache: the embedded
	// emulator's GetSecretValue is not safe for concurrent calls.
	g, err := registry.New(e.ddb, e.res.RegistryTable).Gateway(ctx, e.gatewayID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.secrets.Get(ctx, g.CredentialsSecretARN); err != nil {
		t.Fatal(err)
	}
	e.webhookID = e.addWebhook(registry.TableIncident, e.clk.now())

	e.tickets = state.New(e.ddb, e.res.StateTable)
	e.marks = watermark.New(e.ddb, e.res.StateTable)
	e.proc = pipeline.New(pipeline.Deps{
		Gateways:   registry.New(e.ddb, e.res.RegistryTable),
		Tickets:    e.tickets,
		Dispatch:   queue.NewSender(e.sqs, e.res.DispatchQueueURL),
		ServiceNow: pipeline.Connections{Pool: e.pool()},
	}, pipeline.Config{Logger: slog.New(slog.DiscardHandler)})
	return e
}

// ops is the registration service with a clock that reads now: what it
// creates is created then (the reconciler's first pass starts at a
// webhook's creation).
func (e *env) ops(now time.Time) *registration.Service {
	clock := func() time.Time { return now }
	return registration.New(registry.New(e.ddb, e.res.RegistryTable, registry.WithClock(clock)), e.secrets,
		registration.WithSecretPrefix(e.prefix), registration.WithClock(clock),
		// Group filters resolve to sys_ids on the simulator, as gateway create does.
		registration.WithDirectory(registration.ConnectInstance()))
}

// addGateway registers a gateway on instance (basic auth with the test
// credentials, no dedup window) and returns its id.
func (e *env) addGateway(name, instance, groups string) string {
	e.t.Helper()
	g, err := e.ops(e.clk.now()).CreateGateway(context.Background(), registration.GatewayInput{
		Name: name, InstanceURL: instance, Auth: registry.AuthBasic, Username: snowUser, Password: snowPass,
		AssignmentGroupFilter: groups, DedupWindowMinutes: -1, Active: true,
		// Far above what a test sends: only the budget's tests meet it.
		RateLimitPerHour: 1_000_000, MaxConcurrency: 32,
	})
	if err != nil {
		e.t.Fatalf("create gateway: %v", err)
	}
	return g.ID
}

// addWebhook registers a webhook of the test's gateway for table, created
// at created, and returns its id.
func (e *env) addWebhook(table string, created time.Time) string {
	e.t.Helper()
	return e.addWebhookTo(e.gatewayID, table, created)
}

func (e *env) addWebhookTo(gatewayID, table string, created time.Time) string {
	e.t.Helper()
	issued, err := e.ops(created).CreateWebhook(context.Background(), registration.WebhookInput{
		Name: table, SourceType: registry.SourceServiceNow, EventType: table, GatewayID: gatewayID,
	})
	if err != nil {
		e.t.Fatalf("create webhook: %v", err)
	}
	return issued.Webhook.ID
}

// pool builds the ServiceNow clients of the env's functions: quick
// retries, every request budgeted on the env's state table.
func (e *env) pool() *connect.Pool {
	return connect.New(connect.Config{
		Secrets: e.secrets,
		// Real time: the budget refills as time passes, which the test clock
		// does not.
		Budget:  budget.New(e.ddb, e.res.StateTable, budget.Options{}),
		Options: []servicenow.Option{servicenow.WithMaxAttempts(2), servicenow.WithBackoff(5*time.Millisecond, 50*time.Millisecond)},
	})
}

// reconciler builds a reconciler over the env with cfg.
func (e *env) reconciler(cfg reconcile.Config) *reconcile.Reconciler {
	return e.reconcilerWith(registry.New(e.ddb, e.res.RegistryTable), cfg)
}

// reconcilerWith is reconciler reading the registry through reg.
func (e *env) reconcilerWith(reg reconcile.Registry, cfg reconcile.Config) *reconcile.Reconciler {
	return reconcile.New(reconcile.Deps{
		Registry:   reg,
		Tickets:    e.tickets,
		Watermarks: e.marks,
		Intake:     queue.NewSender(e.sqs, e.res.IntakeQueueURL),
		Connector:  reconcile.Connections{Pool: e.pool()},
		Metrics:    metrics.New(&e.emf),
		Logger:     slog.New(slog.NewJSONHandler(&e.logs, nil)),
		Now:        e.clk.now,
	}, cfg)
}

// run runs a reconciliation pass and returns the result of the incident table.
func (e *env) run(r *reconcile.Reconciler, o reconcile.Options) reconcile.Result {
	e.t.Helper()
	rep, err := r.Run(context.Background(), o)
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	for _, res := range rep.Results {
		if res.Table == registry.TableIncident {
			return res
		}
	}
	e.t.Fatalf("Run: no incident result in %+v", rep)
	return reconcile.Result{}
}

// insert creates an incident and returns its sys_id.
func (e *env) insert(fields map[string]string) string {
	e.t.Helper()
	rec, err := e.sim.Insert(registry.TableIncident, fields)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec["sys_id"]
}

func (e *env) update(sysID string, fields map[string]string) {
	e.t.Helper()
	if _, err := e.sim.Update(registry.TableIncident, sysID, fields); err != nil {
		e.t.Fatal(err)
	}
}

// version is a record's current sys_mod_count on the instance.
func (e *env) version(sysID string) int {
	e.t.Helper()
	rec, ok := e.sim.Record(registry.TableIncident, sysID)
	if !ok {
		e.t.Fatalf("no record %s", sysID)
	}
	v, _ := strconv.Atoi(rec["sys_mod_count"])
	return v
}

// drain receives and deletes every message on the intake queue.
func (e *env) drain() []queue.IntakeMessage {
	e.t.Helper()
	return awstest.DrainJSON[queue.IntakeMessage](e.t, e.sqs, e.res.IntakeQueueURL)
}

// process runs messages through the real processor's Lambda handler, in
// batches of ten as the SQS event source would, and fails on any batch
// item failure.
func (e *env) process(msgs []queue.IntakeMessage) {
	e.t.Helper()
	for start := 0; start < len(msgs); start += 10 {
		var ev events.SQSEvent
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			body, _ := json.Marshal(m)
			ev.Records = append(ev.Records, events.SQSMessage{
				MessageId: fmt.Sprintf("m-%d", start+i), Body: string(body), EventSource: "aws:sqs",
				Attributes: map[string]string{"ApproximateReceiveCount": "1"},
			})
		}
		resp, err := e.proc.Handle(context.Background(), ev)
		if err != nil {
			e.t.Fatalf("process: %v", err)
		}
		if len(resp.BatchItemFailures) > 0 {
			e.t.Fatalf("process: batch item failures %v", resp.BatchItemFailures)
		}
	}
}

// jobs drains the dispatch queue.
func (e *env) jobs() []queue.JobEvent {
	e.t.Helper()
	return awstest.DrainJSON[queue.JobEvent](e.t, e.sqs, e.res.DispatchQueueURL)
}

func (e *env) ticket(sysID string) (state.Ticket, error) {
	return e.tickets.Get(context.Background(), state.Key{GatewayID: e.gatewayID, Table: registry.TableIncident, SysID: sysID})
}

func (e *env) mark() watermark.Mark {
	e.t.Helper()
	m, err := e.marks.Get(context.Background(), e.gatewayID, registry.TableIncident)
	if err != nil {
		e.t.Fatalf("watermark: %v", err)
	}
	return m
}

// bySysID counts messages per sys_id and fails on a sys_id enqueued twice
// at the same version.
func bySysID(t testing.TB, msgs []queue.IntakeMessage) map[string]int {
	t.Helper()
	seen := map[string]int{}
	versions := map[string]bool{}
	for _, m := range msgs {
		v := -1
		if m.SysModCount != nil {
			v = *m.SysModCount
		}
		k := fmt.Sprintf("%s@%d", m.SysID, v)
		if versions[k] {
			t.Errorf("%s enqueued twice", k)
		}
		versions[k] = true
		seen[m.SysID]++
	}
	return seen
}
