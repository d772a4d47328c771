package localrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// Function names, as in the CDK stack (infra/stack).
const (
	Ingest     = "ingest"
	Processor  = "processor"
	Reconciler = "reconciler"
	Writer     = "writer"
)

// functionSettings mirror the CDK stack's (infra/stack/service.go): a
// separate Go module that this one cannot import.
var functionSettings = []struct {
	name     string
	timeout  time.Duration
	memoryMB int
}{
	{Ingest, 10 * time.Second, 256},
	{Processor, schema.ProcessorTimeout, 512},
	{Reconciler, 90 * time.Second, 256},
	{Writer, schema.WriterTimeout, 256},
}

// The processor's and the writer's SQS event sources, as in the CDK stack:
// batches of up to 10 and no batching window (SQS's default), so a long
// poll hands over what it found as soon as there is something.
const (
	processorBatchSize = 10
	writerBatchSize    = 10
	// writerBatches is the writer's concurrency in make dev; the stack
	// allows 5, a machine of two cores needs no more than one.
	writerBatches = 1
)

// eventSource is one of the stack's SQS event source mappings: which
// function consumes which queue, in batches of what size.
type eventSource struct {
	function string
	// queue names the queue in make dev's summary ("intake").
	queue     string
	queueURL  func(provision.Resources) string
	batchSize int
	window    time.Duration
	// batches is the mapping's maximum concurrency.
	batches func(DevConfig) int
}

// eventSources mirror the CDK stack's event source mappings. make dev
// polls a queue only while its function runs: polling for a function that
// cannot run would only push every message to the dead-letter queue.
var eventSources = []eventSource{
	{
		function: Processor, queue: "intake", queueURL: func(r provision.Resources) string { return r.IntakeQueueURL },
		batchSize: processorBatchSize, window: 0,
		batches: func(c DevConfig) int { return countOr(c.ProcessorBatches, DefaultProcessorBatches) },
	},
	{
		// No batching window, as in the stack: an in_progress note reaches
		// the ticket at once.
		function: Writer, queue: "results", queueURL: func(r provision.Resources) string { return r.ResultsQueueURL },
		batchSize: writerBatchSize, window: 0,
		batches: func(DevConfig) int { return writerBatches },
	},
}

// Engines make dev can run on the dispatch queue (DevConfig.Engine).
const (
	// EngineDemo answers job events like an automation engine would
	// (internal/demoengine).
	EngineDemo = "demo"
	// EngineOff leaves the dispatch queue to an engine of your own.
	EngineOff = "off"
)

// Engines lists the engine settings.
var Engines = []string{EngineDemo, EngineOff}

// Concurrency of make dev when DevConfig leaves it zero: sized for a
// machine of two cores rather than for what Lambda would scale to (the CDK
// stack lets the processor's event source reach 10 batches at once).
const (
	DefaultIngestEnvironments    = 4
	DefaultProcessorEnvironments = 4
	DefaultProcessorBatches      = 4
)

// Environment variables make dev adds for the CLI and make demo.
const (
	EnvSimURL      = "SNOWGATE_SNOWSIM_URL"
	EnvSimUser     = "SNOWGATE_SNOWSIM_USER"
	EnvSimPassword = "SNOWGATE_SNOWSIM_PASSWORD"
)

// DevConfig configures Dev.
type DevConfig struct {
	// Endpoint is an external emulator (moto, LocalStack): no functions
	// run. Empty runs the embedded kumo; the program must have called
	// ExecWithSelfAddr.
	Endpoint string
	// Emulator, when set, is used instead of starting one (tests).
	Emulator *Emulator
	Region   string
	// Prefix names the tables, queues and functions ("snowgate-dev-").
	Prefix string
	// BuildDir holds the host builds, <function>/bootstrap.
	BuildDir string
	// EnvFile is where the export lines go (".snowgate/env").
	EnvFile string
	// APIAddr and SimAddr are the loopback listen addresses of the HTTP API
	// front and the ServiceNow simulator ("127.0.0.1:0": any free port).
	APIAddr string
	SimAddr string
	// Interval is the reconciler's schedule (DefaultInterval when zero).
	Interval time.Duration
	// Outbound starts the simulator with outbound calls (webhooks) on.
	Outbound bool
	// IngestEnvironments and ProcessorEnvironments are how many execution
	// environments (bootstrap processes) run each function, so that many
	// invocations of it run at once; ProcessorBatches is the most batches
	// the intake queue's event source has in flight at once (its maximum
	// concurrency). Zero takes the Default* constants. The reconciler has
	// one: its schedule never overlaps runs.
	IngestEnvironments    int
	ProcessorEnvironments int
	ProcessorBatches      int
	// Engine is what consumes the dispatch queue: EngineDemo (the default
	// when empty) or EngineOff. EngineDelay is how long a demo job runs
	// before its final result (demoengine.DefaultDelay when zero).
	Engine      string
	EngineDelay time.Duration

	// Out gets the summary and the hints; Logs every program's log lines.
	Out  io.Writer
	Logs *Logs
}

// secretPrefix names make dev's secrets as a stack's are named, with the
// resource prefix standing for the stack's name: "snowgate-dev-" gives
// snowgate/snowgate-dev/gateways/<id> and snowgate/snowgate-dev/webhooks/<id>.
func (c DevConfig) secretPrefix() string {
	name := strings.TrimSuffix(c.Prefix, "-")
	if name == "" {
		name = "dev"
	}
	return schema.SecretPrefix(name)
}

// environments is how many execution environments run the named function.
func (c DevConfig) environments(name string) int {
	switch name {
	case Ingest:
		return countOr(c.IngestEnvironments, DefaultIngestEnvironments)
	case Processor:
		return countOr(c.ProcessorEnvironments, DefaultProcessorEnvironments)
	}
	return 1
}

// engine is the engine setting, EngineDemo when empty.
func (c DevConfig) engine() string {
	if c.Engine == "" {
		return EngineDemo
	}
	return c.Engine
}

// ErrUnknownEngine is returned by Dev for an Engine it does not know.
var ErrUnknownEngine = errors.New("unknown engine")

func countOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Dev runs the whole system on this machine until ctx is done, then stops
// every process it started and removes the env file.
func Dev(ctx context.Context, c DevConfig) error {
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logs == nil {
		c.Logs = NewLogs(os.Stderr, false)
	}
	if !slices.Contains(Engines, c.engine()) {
		return fmt.Errorf("%w %q: want one of %s", ErrUnknownEngine, c.Engine, strings.Join(Engines, ", "))
	}
	if c.EngineDelay < 0 {
		return fmt.Errorf("engine delay %s is negative", c.EngineDelay)
	}
	for _, s := range functionSettings {
		n := c.environments(s.name)
		c.Logs.Align(ProcessLabel(c.Prefix+s.name, n, n))
	}
	d := &dev{c: c, log: slog.New(slog.NewJSONHandler(c.Logs.Writer("dev"), nil))}
	defer d.close()
	if err := d.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	d.log.Info("stopping")
	return nil
}

type dev struct {
	c       DevConfig
	log     *slog.Logger
	closers []func()
	wg      sync.WaitGroup
	cancel  context.CancelFunc

	endpoint string
	emu      *Emulator
	res      provision.Resources
	apiURL   string
	sim      *snowsim.Sim
	simURL   string
	simUser  string
	simPass  string
	demo     demoRegistry
	running  []string
}

func (d *dev) onClose(f func()) { d.closers = append(d.closers, f) }

func (d *dev) close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func (d *dev) start(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	c := d.c

	d.endpoint = c.Endpoint
	if c.Emulator != nil {
		d.emu, d.endpoint = c.Emulator, c.Emulator.URL
	} else if d.endpoint == "" {
		emu, err := StartEmulator()
		if err != nil {
			return err
		}
		d.emu, d.endpoint = emu, emu.URL
		d.onClose(emu.Close)
	}
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{Endpoint: d.endpoint, Region: c.Region, StaticCredentials: true})
	if err != nil {
		return err
	}
	if d.res, err = provision.Create(ctx, cfg, c.Prefix); err != nil {
		return fmt.Errorf("provision tables and queues: %w", err)
	}
	if err := d.startSim(c); err != nil {
		return err
	}
	if d.emu != nil {
		if err := d.startFunctions(ctx, cfg); err != nil {
			return err
		}
	}
	reg := registry.New(dynamodb.NewFromConfig(cfg), d.res.RegistryTable)
	sec := secrets.New(secretsmanager.NewFromConfig(cfg))
	if d.demo, err = createDemo(ctx, reg, sec, d.c.secretPrefix(), d.sim, d.simURL, d.simUser, d.simPass, d.apiURL); err != nil {
		return err
	}
	if err := d.writeEnv(cfg.Region); err != nil {
		return err
	}
	d.onClose(d.retireEnv)
	d.wg.Go(func() { watchWebhooks(ctx, reg, d.demo.webhookIDs(), d.log, d.c.Out, d.simURL) })
	if c.engine() == EngineDemo {
		d.startEngine(ctx, cfg)
	}
	d.printSummary()
	return nil
}

// startSim serves the ServiceNow simulator, seeded with demo records, and
// its admin endpoints.
func (d *dev) startSim(c DevConfig) error {
	d.simUser, d.simPass = "admin", randomHex(8)
	sim, err := demoSim(d.simUser, d.simPass,
		snowsim.WithLogger(slog.New(slog.NewJSONHandler(c.Logs.Writer("snowsim"), nil))),
		// Its Business Rules call the webhooks as fast as records change.
		snowsim.WithHTTPClient(&http.Client{Transport: pooledTransport()}),
	)
	if err != nil {
		return err
	}
	sim.SetOutbound(c.Outbound)
	srv, url, err := serve(c.SimAddr, simHandler(sim, d.log))
	if err != nil {
		return fmt.Errorf("start the ServiceNow simulator: %w", err)
	}
	d.onClose(func() { shutdown(srv) })
	d.sim, d.simURL = sim, url
	return nil
}

// demoSim is make dev's ServiceNow simulator: the user, the demo records,
// and opts.
func demoSim(user, pass string, opts ...snowsim.Option) (*snowsim.Sim, error) {
	sim := snowsim.New(append([]snowsim.Option{snowsim.WithUser(user, pass)}, opts...)...)
	if err := sim.Seed(bytes.NewReader(snowsim.DemoFixture())); err != nil {
		return nil, fmt.Errorf("seed the ServiceNow simulator: %w", err)
	}
	return sim, nil
}

// startFunctions registers the functions and the HTTP API in the
// emulator, starts the bootstraps that are built, the front, the SQS event
// source and the schedule.
func (d *dev) startFunctions(ctx context.Context, cfg aws.Config) error {
	lc := lambda.NewFromConfig(cfg)
	env := d.res.Env()
	env[schema.EnvSecretPrefix] = d.c.secretPrefix()
	sup := &Supervisor{Emulator: d.emu, Region: cfg.Region, Logs: d.c.Logs, Log: d.log}
	arns := map[string]string{}
	var running []string
	for _, s := range functionSettings {
		fn := Function{
			Name:         d.c.Prefix + s.name,
			Bootstrap:    filepath.Join(d.c.BuildDir, s.name, "bootstrap"),
			Timeout:      s.timeout,
			MemoryMB:     s.memoryMB,
			Env:          env,
			Environments: d.c.environments(s.name),
		}
		arn, err := Register(ctx, lc, fn)
		if err != nil {
			return err
		}
		arns[s.name] = arn
		if _, err := os.Stat(fn.Bootstrap); err != nil {
			d.log.Warn("function not built: registered but not running; invocations of it fail",
				"function", fn.Name, "bootstrap", fn.Bootstrap, "hint", "make build-local")
			continue
		}
		running = append(running, s.name)
		d.wg.Go(func() {
			if err := sup.Run(ctx, fn); err != nil {
				d.log.Error("function stopped", "function", fn.Name, "error", err)
			}
		})
	}
	apiID, err := CreateHTTPAPI(ctx, apigatewayv2.NewFromConfig(cfg), d.c.Prefix+"api", IngestRoute, arns[Ingest])
	if err != nil {
		return err
	}
	front, err := StartFront(d.c.APIAddr, d.emu.URL, apiID)
	if err != nil {
		return err
	}
	d.onClose(front.Close)
	d.apiURL = front.URL

	// The drivers start once the functions poll, so the first batch or
	// tick does not fail on a function still starting.
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range running {
		if err := d.emu.WaitPolling(wait, d.c.Prefix+name); err != nil {
			d.log.Warn("function did not start polling", "function", d.c.Prefix+name, "error", err)
		}
	}
	for _, es := range eventSources {
		if !slices.Contains(running, es.function) {
			d.log.Warn("queue not polled: its function is not built", "function", d.c.Prefix+es.function, "queue", es.queueURL(d.res))
			continue
		}
		src := &SQSSource{
			SQS: sqs.NewFromConfig(cfg), Lambda: lc, Log: d.log,
			QueueURL: es.queueURL(d.res), Function: d.c.Prefix + es.function, Region: cfg.Region,
			BatchSize: es.batchSize, Window: es.window, Concurrency: es.batches(d.c),
		}
		d.wg.Go(func() {
			if err := src.Run(ctx); err != nil {
				d.log.Error("SQS event source stopped", "function", src.Function, "error", err)
			}
		})
	}
	if slices.Contains(running, Reconciler) {
		sched := &Schedule{
			Lambda: lc, Log: d.log, Function: d.c.Prefix + Reconciler,
			Rule: d.c.Prefix + "reconcile", Region: cfg.Region, Interval: d.c.Interval,
		}
		d.wg.Go(func() { _ = sched.Run(ctx) })
	} else {
		d.log.Warn("no reconciliation schedule: the reconciler is not built")
	}
	d.running = running
	return nil
}

// startEngine runs the demo engine on the dispatch queue, answering on the
// results queue, until ctx is done.
func (d *dev) startEngine(ctx context.Context, cfg aws.Config) {
	e := &demoengine.Engine{
		SQS: sqs.NewFromConfig(cfg), DispatchURL: d.res.DispatchQueueURL, ResultsURL: d.res.ResultsQueueURL,
		Delay: d.c.EngineDelay, Log: slog.New(slog.NewJSONHandler(d.c.Logs.Writer("engine"), nil)),
	}
	d.wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			d.log.Error("demo engine stopped", "error", err)
		}
	})
}

// Env returns the variables the env file exports.
func (d *dev) env(region string) map[string]string {
	env := d.res.Env()
	env["AWS_ENDPOINT_URL"] = d.endpoint
	env["AWS_REGION"] = region
	env["AWS_ACCESS_KEY_ID"] = "test"
	env["AWS_SECRET_ACCESS_KEY"] = "test"
	env[schema.EnvSecretPrefix] = d.c.secretPrefix()
	env[schema.EnvAPIURL] = d.apiURL
	env[EnvSimURL] = d.simURL
	env[EnvSimUser] = d.simUser
	env[EnvSimPassword] = d.simPass
	return env
}

func (d *dev) writeEnv(region string) error {
	env := d.env(region)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by make dev while it runs; removed when it stops.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	if err := os.MkdirAll(filepath.Dir(d.c.EnvFile), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(d.c.EnvFile), err)
	}
	// It holds the simulator's password: owner only.
	if err := os.WriteFile(d.c.EnvFile, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", d.c.EnvFile, err)
	}
	return nil
}

// retireEnv removes the env file, so nothing points at the stopped system.
func (d *dev) retireEnv() {
	if err := os.Remove(d.c.EnvFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("remove env file", "file", d.c.EnvFile, "error", err)
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func serve(addr string, h http.Handler) (*http.Server, string, error) {
	l, err := listen(addr)
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv, "http://" + l.Addr().String(), nil
}

func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
}
