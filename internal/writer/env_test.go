package writer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/writer"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	snowUser = "svc_snowgate"
	snowPass = "s3cret-pass"
	// groupNetwork is the records' group, groupEscalation the gateway's
	// escalation group.
	groupNetwork    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"
	groupEscalation = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03"
)

// env is one test's world: emulator tables and a results queue, the
// simulator behind a front that can lose answers, a gateway registered
// for it and a Writer wired as in the function.
type env struct {
	t          testing.TB
	res        provision.Resources
	ddb        *dynamodb.Client
	sqs        *sqs.Client
	sim        *snowsim.Sim
	front      *front
	tickets    *state.Store
	gateways   *registry.Store
	w          *writer.Writer
	logs       *syncBuffer
	emf        *syncBuffer
	gw         string
	results    string // the results queue's URL
	resultsDLQ string
	sm         *secretsmanager.Client
	url        string // the simulator's front
	deps       writer.Deps
	cfg        writer.Config
	clock      *laterClock
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

// front serves the simulator. While crash is set, a PATCH is stored by the
// simulator but answered 502, and the journal cannot be read: the writer
// cannot know whether its write is stored, as after a lost answer
// followed by a crash.
type front struct {
	sim     *snowsim.Sim
	crash   atomic.Bool
	patches atomic.Int64
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.crash.Load() {
		switch {
		case r.Method == http.MethodPatch:
			f.patches.Add(1)
			f.sim.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		case strings.Contains(r.URL.Path, "/"+servicenow.TableJournal):
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	if r.Method == http.MethodPatch {
		f.patches.Add(1)
	}
	f.sim.ServeHTTP(w, r)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	awsCfg := awstest.Config(t)
	e := &env{
		t: t, res: awstest.Resources(t), clock: &laterClock{},
		ddb: dynamodb.NewFromConfig(awsCfg), sqs: sqs.NewFromConfig(awsCfg),
		logs: &syncBuffer{}, emf: &syncBuffer{},
	}
	ctx := context.Background()
	var err error
	e.results, e.resultsDLQ, err = provision.CreateQueue(ctx, e.sqs, "t"+uuid.NewString()[:8]+"-", schema.Results)
	if err != nil {
		t.Fatalf("create the results queue: %v", err)
	}
	t.Cleanup(func() {
		for _, u := range []string{e.results, e.resultsDLQ} {
			_, _ = e.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	e.sim = snowsim.New(snowsim.WithUser(snowUser, snowPass))
	e.front = &front{sim: e.sim}
	srv := httptest.NewServer(e.front)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if err := e.sim.Seed(strings.NewReader(`{"sys_user_group": [
		{"sys_id": "` + groupNetwork + `", "name": "Network"},
		{"sys_id": "` + groupEscalation + `", "name": "Automation escalations"}]}`)); err != nil {
		t.Fatal(err)
	}

	e.sm = secretsmanager.NewFromConfig(awsCfg)
	store := secrets.New(e.sm)
	e.gateways = registry.New(e.ddb, e.res.RegistryTable)
	ops := registration.New(e.gateways, store,
		registration.WithSecretPrefix(awstest.UniqueName("snowgate-test-")+"/"),
		registration.WithDirectory(registration.ConnectInstance()))
	created, err := ops.CreateGateway(ctx, registration.GatewayInput{
		Name: "ops", InstanceURL: srv.URL, Auth: registry.AuthBasic, Username: snowUser, Password: snowPass,
		EscalationGroup: "Automation escalations", Active: true, WriteBack: true,
		// Far above what a test sends: only the budget's tests meet it.
		RateLimitPerHour: 1_000_000, MaxConcurrency: 32,
	})
	if err != nil {
		t.Fatalf("create gateway: %v", err)
	}
	e.gw = created.ID
	t.Cleanup(func() { _, _ = ops.DeleteGateway(context.Background(), e.gw, true) })

	e.tickets = state.New(e.ddb, e.res.StateTable)
	e.deps = writer.Deps{
		Gateways: e.gateways,
		Tickets:  e.tickets,
		ServiceNow: writer.Connections{Pool: connect.New(connect.Config{
			Secrets: store,
			Budget:  budget.New(e.ddb, e.res.StateTable, budget.Options{Now: e.clock.now}),
			Options: []servicenow.Option{servicenow.WithMaxAttempts(2), servicenow.WithBackoff(10*time.Millisecond, 2*time.Second)},
		})},
		Queue: e.sqs,
	}
	e.cfg = writer.Config{
		QueueURL: e.results,
		Logger:   slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics:  metrics.New(e.emf),
		// The test changes the gateway between results.
		GatewayTTL: time.Nanosecond,
	}
	e.w = writer.New(e.deps, e.cfg)
	return e
}

// setMapping changes the gateway's outbound mapping.
func (e *env) setMapping(change func(g *registry.Gateway)) {
	e.t.Helper()
	if _, err := e.gateways.UpdateGateway(context.Background(), e.gw, func(g *registry.Gateway) error {
		change(g)
		return nil
	}); err != nil {
		e.t.Fatalf("update gateway: %v", err)
	}
}

func (e *env) key(table, sysID string) state.Key {
	return state.Key{GatewayID: e.gw, Table: table, SysID: sysID}
}

// openJob inserts a record in the simulator and gives it a ticket with an
// open job, the way the processor leaves it: the version claimed and
// decided (state's public API), the job map on the ticket and the job
// index. It returns the sys_id and the job id.
func (e *env) openJob(table string, fields map[string]string) (string, string) {
	e.t.Helper()
	ctx := context.Background()
	rec, err := e.sim.Insert(table, fields)
	if err != nil {
		e.t.Fatal(err)
	}
	sysID := rec["sys_id"]
	k := e.key(table, sysID)
	v := e.version(table, sysID)
	token := uuid.NewString()
	jobID := "job_" + uuid.NewString()
	if _, err := e.tickets.Claim(ctx, state.Claim{Key: k, Mirror: v.Mirror, SysModCount: v.SysModCount, SysUpdatedOn: v.SysUpdatedOn,
		Source: queue.SourceWebhook, Token: token, Lease: time.Minute}); err != nil {
		e.t.Fatalf("claim: %v", err)
	}
	if err := e.tickets.IndexJob(ctx, jobID, k); err != nil {
		e.t.Fatal(err)
	}
	if err := e.tickets.Finish(ctx, k, token, state.Result{Version: v.SysModCount, Status: state.StatusAccepted, Reason: queue.ReasonNewRecord, JobID: jobID}); err != nil {
		e.t.Fatalf("finish: %v", err)
	}
	e.putJob(k, state.Job{ID: jobID, State: state.JobOpen, Episode: 1, Sequence: 1, OpenedAt: time.Now().UTC(),
		Events: []state.JobEventRecord{{Type: queue.EventJobCreated, Sequence: 1, EventID: uuid.NewString(), At: time.Now().UTC()}}})
	return sysID, jobID
}

// putJob writes the ticket's job map as the processor creates it.
func (e *env) putJob(k state.Key, j state.Job) {
	e.t.Helper()
	av, err := attributevalue.Marshal(j)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ddb.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.res.StateTable),
		Key:                       map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: k.PK()}},
		UpdateExpression:          aws.String("SET #job = :job"),
		ExpressionAttributeNames:  map[string]string{"#job": "job"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":job": av},
	}); err != nil {
		e.t.Fatalf("put job: %v", err)
	}
}

// setJobState changes the job's state, as the processor does on a cancel.
func (e *env) setJobState(k state.Key, s string) {
	e.t.Helper()
	tk, err := e.tickets.Get(context.Background(), k)
	if err != nil || tk.Job == nil {
		e.t.Fatalf("ticket %s: %v, job %v", k.PK(), err, tk.Job)
	}
	j := *tk.Job
	j.State = s
	e.putJob(k, j)
}

// version reads the record as the processor fetches it.
func (e *env) version(table, sysID string) state.Version {
	e.t.Helper()
	c, err := servicenow.New(e.url, servicenow.BasicAuth(snowUser, snowPass))
	if err != nil {
		e.t.Fatal(err)
	}
	fields := servicenow.IncidentFields
	if table == registry.TableChangeRequest {
		fields = servicenow.ChangeRequestFields
	}
	rec, err := c.Get(context.Background(), table, sysID, fields...)
	if err != nil {
		e.t.Fatalf("get %s: %v", sysID, err)
	}
	v, err := state.VersionOf(table, rec)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) ticket(table, sysID string) state.ResultTicket {
	e.t.Helper()
	tk, err := e.tickets.TicketForResult(context.Background(), e.key(table, sysID))
	if err != nil {
		e.t.Fatalf("ticket %s: %v", sysID, err)
	}
	return tk
}

var msgSeq atomic.Int64

// message is an SQS record carrying body.
func message(body string) events.SQSMessage {
	return events.SQSMessage{
		MessageId: fmt.Sprintf("msg-%d", msgSeq.Add(1)), Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}, EventSource: "aws:sqs",
	}
}

func resultMessage(r queue.JobResult) events.SQSMessage {
	b, _ := json.Marshal(r)
	return message(string(b))
}

// invoke runs a batch through the handler the way the Lambda runtime does
// and returns the ids of the messages reported as failed.
func (e *env) invoke(msgs ...events.SQSMessage) []string {
	e.t.Helper()
	payload, err := json.Marshal(events.SQSEvent{Records: msgs})
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := lambda.NewHandler(e.w.Handle).Invoke(context.Background(), payload)
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

// metric returns the last value the EMF lines gave a metric.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	var v float64
	for line := range strings.SplitSeq(strings.TrimSpace(e.emf.String()), "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil {
			continue
		}
		if n, ok := doc[name].(float64); ok {
			v = n
		}
	}
	return v
}
