package pipeline_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/contract"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	snowUser = "svc_snowgate"
	snowPass = "s3cret-pass"
)

// env is one test's world: emulator resources, a ServiceNow simulator, a
// gateway registered for it and a Processor wired as in the function.
type env struct {
	t       testing.TB
	res     provision.Resources
	ddb     *dynamodb.Client
	sqs     *sqs.Client
	secrets *secrets.Store
	sim     *snowsim.Server
	tickets *state.Store
	p       *pipeline.Processor
	logs    *syncBuffer
	emf     *syncBuffer
	ops     *registration.Service
	gw      string // the gateway's id
	cfg     pipeline.Config
	deps    pipeline.Deps
	clock   *laterClock
}

// laterClock is the budget's time: real time, plus what a test skipped
// with later (a pause it does not wait out). It moves with real time, so
// the budget's in-process waits end.
type laterClock struct{ skipped atomic.Int64 }

func (c *laterClock) now() time.Time { return time.Now().Add(time.Duration(c.skipped.Load())) }

// later moves the budget's time on by d.
func (e *env) later(d time.Duration) { e.clock.skipped.Add(int64(d)) }

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

func newEnv(t testing.TB, cfg pipeline.Config) *env {
	t.Helper()
	awsCfg := awstest.Config(t)
	e := &env{
		t:       t,
		clock:   &laterClock{},
		res:     awstest.Resources(t),
		ddb:     dynamodb.NewFromConfig(awsCfg),
		sqs:     sqs.NewFromConfig(awsCfg),
		secrets: secrets.New(secretsmanager.NewFromConfig(awsCfg)),
		logs:    &syncBuffer{},
		emf:     &syncBuffer{},
	}
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser(snowUser, snowPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	e.sim = sim
	e.seed(`{"sys_user_group": [
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "name": "Network"},
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02", "name": "Database"}]}`)

	// Filters are resolved on the simulator, as gateway create does.
	e.ops = registration.New(registry.New(e.ddb, e.res.RegistryTable), e.secrets,
		registration.WithSecretPrefix(awstest.UniqueName("snowgate-test-")+"/"),
		registration.WithDirectory(registration.ConnectInstance()))
	t.Cleanup(func() {
		// Before the tables go: the gateways' credentials secrets with them.
		gws, _ := registry.New(e.ddb, e.res.RegistryTable).Gateways(context.Background())
		for _, g := range gws {
			_, _ = e.ops.DeleteGateway(context.Background(), g.ID, true)
		}
	})
	e.gw = e.createGateway(registry.Gateway{Name: "ops", Active: true, WriteBack: true})

	e.tickets = state.New(e.ddb, e.res.StateTable)
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	cfg.Metrics = metrics.New(e.emf)
	e.cfg = cfg
	e.deps = pipeline.Deps{
		Gateways: registry.New(e.ddb, e.res.RegistryTable),
		Tickets:  e.tickets,
		Dispatch: checkedDispatch{t: t, next: queue.NewSender(e.sqs, e.res.DispatchQueueURL)},
		// Quick retries keep failing cases short.
		ServiceNow: pipeline.Connections{Pool: connect.New(connect.Config{
			Secrets: e.secrets,
			Budget:  budget.New(e.ddb, e.res.StateTable, budget.Options{Now: e.clock.now}),
			Options: []servicenow.Option{servicenow.WithMaxAttempts(2), servicenow.WithBackoff(10*time.Millisecond, 2*time.Second)},
		})},
	}
	e.p = pipeline.New(e.deps, cfg)
	return e
}

// The test gateways' ServiceNow budget, unless a test sets its own: far
// above what a test sends, so only the tests of the budget meet it.
const (
	testRatePerHour    = 1_000_000
	testMaxConcurrency = 32
)

// createGateway registers a gateway, pointed at the simulator with the test
// credentials unless another instance is set, and returns its id.
func (e *env) createGateway(g registry.Gateway) string {
	e.t.Helper()
	if g.InstanceURL == "" {
		g.InstanceURL = e.sim.URL
	}
	created, err := e.ops.CreateGateway(context.Background(), registration.GatewayInput{
		Name: g.Name, InstanceURL: g.InstanceURL, Auth: registry.AuthBasic, Username: snowUser, Password: snowPass,
		AssignmentGroupFilter: g.AssignmentGroupFilter, EnvironmentFilter: g.EnvironmentFilter,
		DedupWindowMinutes: g.DedupWindowMinutes, EscalationGroup: g.EscalationGroup, WriteBack: g.WriteBack, Active: g.Active,
		RateLimitPerHour: cmp.Or(g.RateLimitPerHour, testRatePerHour), MaxConcurrency: cmp.Or(g.MaxConcurrency, testMaxConcurrency),
	})
	if err != nil {
		e.t.Fatalf("create gateway: %v", err)
	}
	return created.ID
}

// setGateway gives the test's gateway the settings of g (all of them; its
// id and credentials stay), its filters resolved on the instance.
func (e *env) setGateway(g registry.Gateway) {
	e.t.Helper()
	e.updateGateway(g, false)
}

// updateGateway is setGateway, offline (filters stored as typed) when skip
// is set.
func (e *env) updateGateway(g registry.Gateway, skip bool) {
	e.t.Helper()
	if g.InstanceURL == "" {
		g.InstanceURL = e.sim.URL
	}
	rate, ceiling := cmp.Or(g.RateLimitPerHour, testRatePerHour), cmp.Or(g.MaxConcurrency, testMaxConcurrency)
	if _, _, err := e.ops.UpdateGateway(context.Background(), e.gw, registration.GatewayChanges{
		Name: &g.Name, Description: &g.Description, InstanceURL: &g.InstanceURL,
		AssignmentGroupFilter: &g.AssignmentGroupFilter, EnvironmentFilter: &g.EnvironmentFilter,
		DedupWindowMinutes: &g.DedupWindowMinutes, EscalationGroup: &g.EscalationGroup, WriteBack: &g.WriteBack, Active: &g.Active,
		RateLimitPerHour: &rate, MaxConcurrency: &ceiling,
		SkipInstanceChecks: skip,
	}); err != nil {
		e.t.Fatalf("update gateway: %v", err)
	}
}

func (e *env) seed(fixture string) {
	e.t.Helper()
	if err := e.sim.Sim.Seed(strings.NewReader(fixture)); err != nil {
		e.t.Fatal(err)
	}
}

// insert creates a record through the simulator and returns its sys_id.
func (e *env) insert(table string, fields map[string]string) string {
	e.t.Helper()
	rec, err := e.sim.Sim.Insert(table, fields)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec["sys_id"]
}

var msgSeq atomic.Int64

// message is an SQS record carrying an intake message for a record.
func message(gateway, table, sysID string) events.SQSMessage {
	body, _ := json.Marshal(queue.IntakeMessage{
		GatewayID: gateway, Table: table, SysID: sysID,
		Source: queue.SourceWebhook, ReceivedAt: time.Now().UTC(),
	})
	return events.SQSMessage{
		MessageId:   fmt.Sprintf("msg-%d", msgSeq.Add(1)),
		Body:        string(body),
		Attributes:  map[string]string{"ApproximateReceiveCount": "1"},
		EventSource: "aws:sqs",
	}
}

// invoke runs a batch through the handler the way the Lambda runtime does
// and returns the ids of the messages reported as failed.
func (e *env) invoke(ctx context.Context, msgs ...events.SQSMessage) []string {
	e.t.Helper()
	payload, err := json.Marshal(events.SQSEvent{Records: msgs})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.invokeJSON(ctx, payload)
}

func (e *env) invokeJSON(ctx context.Context, payload []byte) []string {
	e.t.Helper()
	out, err := lambda.NewHandler(e.p.Handle).Invoke(ctx, payload)
	if err != nil {
		e.t.Fatalf("Invoke: %v", err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		e.t.Fatalf("decode response %s: %v", out, err)
	}
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func (e *env) ticket(table, sysID string) state.Ticket {
	e.t.Helper()
	tk, err := e.tickets.Get(context.Background(), state.Key{GatewayID: e.gw, Table: table, SysID: sysID})
	if err != nil {
		e.t.Fatalf("ticket %s/%s: %v", table, sysID, err)
	}
	return tk
}

// budget is the test gateway's ServiceNow budget as gateway show reads it.
func (e *env) budget() budget.Status {
	e.t.Helper()
	ctx := context.Background()
	g, err := registry.New(e.ddb, e.res.RegistryTable).Gateway(ctx, e.gw)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := budget.New(e.ddb, e.res.StateTable, budget.Options{Now: e.clock.now}).Status(ctx, e.gw, g.BudgetSettings())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// jobs drains the dispatch queue.
func (e *env) jobs() []queue.JobEvent {
	e.t.Helper()
	return awstest.DrainJSON[queue.JobEvent](e.t, e.sqs, e.res.DispatchQueueURL)
}

// checkedDispatch holds every event the pipeline sends, in every test, to
// the published contract (docs/schemas/events) before it reaches the queue.
type checkedDispatch struct {
	t    testing.TB
	next pipeline.Dispatcher
}

func (d checkedDispatch) SendJSON(ctx context.Context, body any, attrs map[string]string) error {
	b, err := json.Marshal(body)
	if err != nil {
		d.t.Errorf("dispatch body does not encode: %v", err)
	} else if err := contract.ValidateEvent(b); err != nil {
		d.t.Errorf("the pipeline sent an event outside its contract: %v\n%s", err, b)
	}
	return d.next.SendJSON(ctx, body, attrs)
}
