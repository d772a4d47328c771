package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// Variables that point the suite at a deployed system (LocalStack or AWS)
// instead of starting one. SNOWGATE_E2E_API_URL switches it; the rest are
// the usual SNOWGATE_* names (as .snowgate/env or stackenv write them) and
// the SDK's AWS_* settings.
const (
	envRemoteAPIURL = "SNOWGATE_E2E_API_URL"
	// envInstanceURL is the simulator's URL as the deployed functions reach
	// it, when that differs from SNOWGATE_SNOWSIM_URL (a container network).
	envInstanceURL = "SNOWGATE_E2E_INSTANCE_URL"
	// envRemoteWait is added to every wait: a deployed reconciler runs
	// every two minutes, not every second.
	envRemoteWait = "SNOWGATE_E2E_WAIT"
	// envPersonUser and envPersonPassword name a user of the instance who
	// is not the gateway's integration user: the comments and work notes a
	// person writes. Without them, the tests that need one are skipped.
	envPersonUser     = "SNOWGATE_E2E_PERSON_USER"
	envPersonPassword = "SNOWGATE_E2E_PERSON_PASSWORD"
)

func remoteMode() bool { return os.Getenv(envRemoteAPIURL) != "" }

// Settings of the local system that make the suite quick; the code under
// test is the same as deployed, only these knobs differ.
const (
	// reconcileEvery stands for the rate(2 minutes) schedule.
	reconcileEvery = time.Second
	// intakeVisibility stands for the intake queue's 180 s, so that a
	// failed message is redelivered within the test.
	intakeVisibility = 5 * time.Second
	batchWindow      = 200 * time.Millisecond
	// engineDelay is how long a demo engine job runs before its final
	// result (make dev: 2s).
	engineDelay = time.Second
)

// system is the running snowgate and ServiceNow simulator as the suite
// sees them: URLs, queues, and the CLI's environment.
type system struct {
	cfg         aws.Config
	sqs         *sqs.Client
	env         map[string]string // what the CLI reads
	apiURL      string
	simURL      string
	simUser     string
	simPass     string
	instanceURL string // the simulator as the functions reach it
	// integrationUser is the gateway's user on the instance (simUser, for
	// the system as a person sees it too).
	integrationUser string
	// person signs in as someone other than the gateway's integration
	// user; empty when there is no such user.
	personUser, personPass string
	// sim is the in-process simulator (local mode only), for faults.
	sim  *snowsim.Sim
	logs *logFile      // local mode only
	wait time.Duration // added to every wait
	// fnPrefix begins the functions' names (local mode only).
	fnPrefix string
	// dispatch relays the dispatch queue to the demo engine, engineOut the
	// engine's results to the results queue (see relay).
	dispatch, engineOut *relay
	// sent are the results the test sent itself, by id.
	sent map[string]result
}

func (s *system) queue(name string) string { return s.env[name] }

// newSystem starts the whole system for this test, or returns the deployed
// one named by the environment. Options change the local system only (see
// localOptions).
func newSystem(t *testing.T, opts ...localOption) *system {
	t.Helper()
	if remoteMode() {
		return remoteSystem(t)
	}
	if awstest.Kind() != awstest.Kumo {
		t.Skip("the end-to-end suite needs kumo's Lambda Runtime API and HTTP API (skipped on moto)")
	}
	return localSystem(t, opts...)
}

// localOptions are what a test may change of the local system (the
// outage tests stage their outages with them); the zero value is the
// system every other test runs.
type localOptions struct {
	// ingestEndpoint and processorEndpoint, when set, return the AWS
	// endpoint the ingest function or the processor uses instead of the
	// emulator's URL (a hop that counts its calls, a proxy that fails
	// some).
	ingestEndpoint, processorEndpoint func(t *testing.T, emulatorURL string) string
	// env is added to every function's environment (a shorter retry
	// horizon, a cap on pauses).
	env map[string]string
	// processors is how many execution environments serve the processor,
	// intakePollers how many batches of the intake queue are in flight at
	// once (1 each when zero). With more than one poller the intake has no
	// batching window, as in the stack, so that every poller long polls:
	// with a window, all but one wait for a backlog.
	processors, intakePollers int
	// instance, when set, wraps the simulator's handler (to count or to
	// swallow what snowgate sends it).
	instance func(http.Handler) http.Handler
}

type localOption func(*localOptions)

func remoteSystem(t *testing.T) *system {
	t.Helper()
	env := map[string]string{}
	for _, k := range []string{schema.EnvRegistryTable, schema.EnvStateTable, schema.EnvIntakeQueueURL,
		schema.EnvIntakeDLQURL, schema.EnvDispatchQueueURL, schema.EnvDispatchDLQURL, schema.EnvResultsQueueURL,
		schema.EnvResultsDLQURL, localrun.EnvSimURL} {
		if env[k] = os.Getenv(k); env[k] == "" {
			t.Fatalf("%s is set, so the suite targets a deployed system, but %s is not", envRemoteAPIURL, k)
		}
	}
	env[schema.EnvAPIURL] = os.Getenv(envRemoteAPIURL)
	env[schema.EnvSecretPrefix] = os.Getenv(schema.EnvSecretPrefix)
	if env[schema.EnvSecretPrefix] == "" {
		env[schema.EnvSecretPrefix] = schema.DefaultSecretPrefix
	}
	cfg, err := awsconfig.Load(t.Context(), awsconfig.Options{})
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	wait := 5 * time.Minute
	if v := os.Getenv(envRemoteWait); v != "" {
		if wait, err = time.ParseDuration(v); err != nil {
			t.Fatalf("%s=%q: %v", envRemoteWait, v, err)
		}
	}
	s := &system{
		cfg: cfg, sqs: sqs.NewFromConfig(cfg), env: env, apiURL: env[schema.EnvAPIURL],
		simURL: env[localrun.EnvSimURL], simUser: os.Getenv(localrun.EnvSimUser), simPass: os.Getenv(localrun.EnvSimPassword),
		instanceURL: os.Getenv(envInstanceURL), wait: wait,
		personUser: os.Getenv(envPersonUser), personPass: os.Getenv(envPersonPassword), sent: map[string]result{},
	}
	if s.instanceURL == "" {
		s.instanceURL = s.simURL
	}
	s.integrationUser = s.simUser
	s.startEngine(t, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return s
}

var (
	emuOnce sync.Once
	emu     *localrun.Emulator
	emuErr  error
	emuProc *exec.Cmd
	emuStop io.Closer // the emulator process's stdin
)

// emulator starts the emulator process (testdata/kumo) once per test binary
// and serves it at its self-call address.
func emulator(t *testing.T) *localrun.Emulator {
	t.Helper()
	emuOnce.Do(func() {
		cmd := exec.Command(emulatorBin)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			emuErr = err
			return
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			emuErr = err
			return
		}
		cmd.Stderr = os.Stderr
		if emuErr = cmd.Start(); emuErr != nil {
			return
		}
		emuProc, emuStop = cmd, stdin
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			emuErr = fmt.Errorf("read the emulator's URL: %w", err)
			return
		}
		emu, emuErr = localrun.ServeEmulator(strings.TrimSpace(line))
	})
	if emuErr != nil {
		t.Fatalf("start the emulator: %v", emuErr)
	}
	return emu
}

func stopEmulator() {
	if emu != nil {
		emu.Close()
	}
	if emuProc != nil {
		_ = emuStop.Close() // it exits when its stdin closes
		done := make(chan struct{})
		go func() { _ = emuProc.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = emuProc.Process.Kill()
		}
	}
}

// localSystem runs what make dev runs, for this test alone: fresh tables
// and queues, the real bootstraps on the emulator's Runtime API, the HTTP
// API and its loopback front, the SQS event source and the schedule, and an
// empty simulator (no records, no Business Rules).
func localSystem(t *testing.T, opts ...localOption) *system {
	t.Helper()
	var o localOptions
	for _, opt := range opts {
		opt(&o)
	}
	build := bootstraps(t)
	emu := emulator(t)
	cfg, err := awsconfig.Load(t.Context(), awsconfig.Options{Endpoint: emu.URL, StaticCredentials: true})
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	res, err := provision.Create(t.Context(), cfg, "t"+awstest.UniqueName("")+"-")
	if err != nil {
		t.Fatalf("create tables and queues: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := provision.Delete(ctx, cfg, res); err != nil {
			t.Logf("delete tables and queues: %v", err)
		}
	})
	sqsc := sqs.NewFromConfig(cfg)
	// The writer pushes a retried result out itself; a failed invocation
	// is retried at the visibility timeout, shortened like the intake's.
	for _, url := range []string{res.IntakeQueueURL, res.ResultsQueueURL} {
		if _, err := sqsc.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{
			QueueUrl: aws.String(url),
			Attributes: map[string]string{
				string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(intakeVisibility / time.Second)),
			},
		}); err != nil {
			t.Fatalf("shorten the visibility timeout of %s: %v", url, err)
		}
	}

	logs := newLogFile(t)
	log := slog.New(slog.NewJSONHandler(logs.logs.Writer("e2e"), nil))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	s := &system{cfg: cfg, sqs: sqsc, simUser: "admin", simPass: awstest.UniqueName("pw-"), logs: logs,
		personUser: "e2e.person", personPass: awstest.UniqueName("pw-"), sent: map[string]result{}}
	s.integrationUser = s.simUser
	s.sim = snowsim.New(snowsim.WithUser(s.simUser, s.simPass), snowsim.WithUser(s.personUser, s.personPass),
		snowsim.WithLogger(slog.New(slog.NewJSONHandler(logs.logs.Writer("snowsim"), nil))))
	var simHandler http.Handler = localrun.SimHandler(s.sim, log)
	if o.instance != nil {
		simHandler = o.instance(simHandler)
	}
	simSrv := httptest.NewServer(simHandler)
	t.Cleanup(simSrv.Close)
	s.simURL, s.instanceURL = simSrv.URL, simSrv.URL

	prefix := awstest.UniqueName("e2e") + "-"
	s.fnPrefix = prefix
	secretPrefix := awstest.UniqueName("snowgate-e2e-") + "/"
	fnEnv := res.Env()
	fnEnv[schema.EnvSecretPrefix] = secretPrefix
	// Every run reads back this far; the default (2 min) only costs reads,
	// a shorter one keeps the logs of a failing run readable.
	fnEnv[reconcile.EnvOverlap] = "10s"
	// Failed messages retried in compressed time, as the short visibility
	// timeout stands for the queue's: backoff from 1 s to 5 s (not 1 min
	// to 1 h), a two-minute horizon.
	fnEnv[redelivery.EnvBase], fnEnv[redelivery.EnvCap], fnEnv[redelivery.EnvHorizon] = "1s", "5s", "2m"
	maps.Copy(fnEnv, o.env)
	lc := lambda.NewFromConfig(cfg)
	sup := &localrun.Supervisor{Emulator: emu, Region: cfg.Region, Logs: logs.logs, Log: log, Backoff: 50 * time.Millisecond}
	arns := map[string]string{}
	for _, name := range functions {
		fn := localrun.Function{
			Name: prefix + name, Bootstrap: filepath.Join(build, name, "bootstrap"),
			Timeout: 30 * time.Second, MemoryMB: 256, Env: fnEnv,
		}
		if name == localrun.Ingest && o.ingestEndpoint != nil {
			fn.Env = maps.Clone(fnEnv)
			fn.Env["AWS_ENDPOINT_URL"] = o.ingestEndpoint(t, emu.URL)
		}
		if name == localrun.Processor {
			fn.Environments = o.processors
			if o.processorEndpoint != nil {
				fn.Env = maps.Clone(fnEnv)
				fn.Env["AWS_ENDPOINT_URL"] = o.processorEndpoint(t, emu.URL)
			}
		}
		if arns[name], err = localrun.Register(t.Context(), lc, fn); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		wg.Go(func() {
			if err := sup.Run(ctx, fn); err != nil {
				t.Errorf("function %s: %v", fn.Name, err)
			}
		})
	}
	apiID, err := localrun.CreateHTTPAPI(t.Context(), apigatewayv2.NewFromConfig(cfg), prefix+"api", localrun.IngestRoute, arns[localrun.Ingest])
	if err != nil {
		t.Fatalf("create HTTP API: %v", err)
	}
	front, err := localrun.StartFront("127.0.0.1:0", emu.URL, apiID)
	if err != nil {
		t.Fatalf("start HTTP API front: %v", err)
	}
	t.Cleanup(front.Close)
	s.apiURL = front.URL

	wctx, wcancel := context.WithTimeout(t.Context(), time.Minute)
	defer wcancel()
	for _, name := range functions {
		if err := emu.WaitPolling(wctx, prefix+name); err != nil {
			t.Fatalf("function %s never asked for work: %v", prefix+name, err)
		}
	}
	// The stack's event source mappings: intake → processor, results →
	// writer.
	for _, es := range []struct {
		queueURL, function string
		pollers            int
	}{
		{res.IntakeQueueURL, localrun.Processor, o.intakePollers}, {res.ResultsQueueURL, localrun.Writer, 0},
	} {
		window := batchWindow
		if es.pollers > 1 {
			window = 0
		}
		src := &localrun.SQSSource{
			SQS: sqsc, Lambda: lc, Log: log, QueueURL: es.queueURL, Function: prefix + es.function,
			Region: cfg.Region, BatchSize: 10, Window: window, WaitTime: time.Second, Concurrency: es.pollers,
		}
		wg.Go(func() {
			if err := src.Run(ctx); err != nil {
				t.Errorf("SQS event source of %s: %v", es.function, err)
			}
		})
	}
	sched := &localrun.Schedule{Lambda: lc, Log: log, Function: prefix + localrun.Reconciler,
		Rule: prefix + "reconcile", Region: cfg.Region, Interval: reconcileEvery}
	wg.Go(func() { _ = sched.Run(ctx) })

	s.env = res.Env()
	s.env[schema.EnvAPIURL] = s.apiURL
	s.env[schema.EnvSecretPrefix] = secretPrefix
	s.startEngine(t, slog.New(slog.NewJSONHandler(logs.logs.Writer("engine"), nil)))
	return s
}

// startEngine runs make dev's demo engine for the system, behind two
// relays: the dispatch queue is relayed to a queue of the engine's own,
// and the engine answers on another, relayed to the results queue. The
// relays record every event and result and check each against its
// contract; what fails the check fails the test. They stop before the
// functions do.
func (s *system) startEngine(t *testing.T, log *slog.Logger) {
	t.Helper()
	in := s.privateQueue(t, "engine-in")
	out := s.privateQueue(t, "engine-out")
	s.dispatch = &relay{name: "dispatch", sqs: s.sqs, from: s.queue(schema.EnvDispatchQueueURL), to: in,
		log: log, check: checkEvent, seen: map[string]bool{}}
	s.engineOut = &relay{name: "results", sqs: s.sqs, from: out, to: s.queue(schema.EnvResultsQueueURL),
		log: log, check: checkResult, seen: map[string]bool{}}
	eng := &demoengine.Engine{SQS: s.sqs, DispatchURL: in, ResultsURL: out, Delay: engineDelay, WaitTime: time.Second, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, r := range []*relay{s.dispatch, s.engineOut} {
			for _, p := range r.problemList() {
				t.Errorf("a message breaks its contract: %s", p)
			}
		}
	})
	wg.Go(func() { s.dispatch.run(ctx) })
	wg.Go(func() { s.engineOut.run(ctx) })
	wg.Go(func() {
		if err := eng.Run(ctx); err != nil {
			t.Errorf("demo engine: %v", err)
		}
	})
}

// privateQueue creates a queue of the test's own, deleted at its end.
func (s *system) privateQueue(t *testing.T, name string) string {
	t.Helper()
	out, err := s.sqs.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(awstest.UniqueName("e2e-") + "-" + name)})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Logf("delete queue %s: %v", name, err)
		}
	})
	return url
}

// logFile collects every program's log lines for the test; a failed test
// shows the last of them.
type logFile struct {
	logs *localrun.Logs
	mu   sync.Mutex
	buf  bytes.Buffer
}

func newLogFile(t *testing.T) *logFile {
	l := &logFile{}
	l.logs = localrun.NewLogs(lockedWriter{l}, false)
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("SNOWGATE_E2E_LOGS") == "" {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if n := 300; len(lines) > n && os.Getenv("SNOWGATE_E2E_LOGS") == "" {
			lines = lines[len(lines)-n:]
		}
		t.Logf("logs of the system (last %d lines; SNOWGATE_E2E_LOGS=1 shows all):\n%s", len(lines), strings.Join(lines, "\n"))
	})
	return l
}

// sum adds up a numeric field of the JSON log lines with message msg whose
// fields equal match, as a CloudWatch Logs Insights query would.
func (l *logFile) sum(msg, field string, match map[string]string) int {
	n := 0
	for _, line := range l.lines(msg, match) {
		if v, ok := line[field].(float64); ok {
			n += int(v)
		}
	}
	return n
}

// count counts the JSON log lines with message msg whose fields equal
// match (see matches), by the value of their field by.
func (l *logFile) count(msg string, match map[string]string, by string) map[string]int {
	n := map[string]int{}
	for _, line := range l.lines(msg, match) {
		n[fmt.Sprint(line[by])]++
	}
	return n
}

// lines returns the JSON log lines with message msg whose fields equal
// match, in the order they were written.
func (l *logFile) lines(msg string, match map[string]string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg && matches(line, match) {
			out = append(out, line)
		}
	}
	return out
}

// matches reports whether a log line's fields equal match, compared as
// text.
func matches(line map[string]any, match map[string]string) bool {
	for k, v := range match {
		if fmt.Sprint(line[k]) != v {
			return false
		}
	}
	return true
}

type lockedWriter struct{ l *logFile }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.l.buf.Write(p)
}

var _ io.Writer = lockedWriter{}
