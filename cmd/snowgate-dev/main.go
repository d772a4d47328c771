// Command snowgate-dev runs snowgate on one machine without AWS or Docker
// (make dev), and makes demo changes in its ServiceNow simulator (make demo,
// "snowgate-dev demo").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/localrun"
)

// emulatorPort is LocalStack's port, which tools expect an emulator on;
// another free port is used when it is taken.
const emulatorPort = 4566

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "snowgate-dev:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("snowgate-dev", flag.ExitOnError)
	envFile := fs.String("env-file", ".snowgate/env", "where to write the environment for other terminals")
	buildDir := fs.String("build", "build/local", "host builds of the functions: <dir>/<function>/bootstrap")
	prefix := fs.String("prefix", "snowgate-dev-", "name prefix of tables, queues and functions")
	apiAddr := fs.String("api-addr", "127.0.0.1:0", "loopback address of the HTTP API")
	simAddr := fs.String("snowsim-addr", "127.0.0.1:0", "loopback address of the ServiceNow simulator")
	interval := fs.Duration("reconcile-every", localrun.DefaultInterval, "the reconciler's schedule")
	outbound := fs.Bool("outbound", true, "let the simulator's Business Rules call the webhooks (false: only the reconciler finds changes)")
	ingestEnvs := fs.Int("ingest-envs", localrun.DefaultIngestEnvironments, "execution environments (bootstrap processes) of ingest: HTTP requests served at once")
	processorEnvs := fs.Int("processor-envs", localrun.DefaultProcessorEnvironments, "execution environments (bootstrap processes) of the processor")
	batches := fs.Int("processor-batches", localrun.DefaultProcessorBatches, "the intake event source's maximum concurrency: SQS batches in flight at once")
	engine := fs.String("engine", localrun.EngineDemo, "what consumes the dispatch queue: "+localrun.EngineDemo+
		" (answers job events on the results queue) or "+localrun.EngineOff+" (an engine of your own)")
	engineDelay := fs.Duration("engine-delay", demoengine.DefaultDelay, "how long a demo engine job runs before its final result")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: snowgate-dev [flags]     run the system (make dev)\n       snowgate-dev demo [-env-file f]   make demo changes (make demo)\n\n")
		fs.PrintDefaults()
	}
	args := os.Args[1:]
	demo := len(args) > 0 && args[0] == "demo"
	if demo {
		args = args[1:]
	}
	_ = fs.Parse(args)
	if *ingestEnvs < 1 || *processorEnvs < 1 || *batches < 1 {
		return errors.New("-ingest-envs, -processor-envs and -processor-batches must be at least 1")
	}
	if !slices.Contains(localrun.Engines, *engine) {
		return fmt.Errorf("-engine %q: want %s", *engine, strings.Join(localrun.Engines, " or "))
	}
	if *engineDelay < 0 {
		return errors.New("-engine-delay must not be negative")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if demo {
		env, err := localrun.ReadEnvFile(*envFile)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		return localrun.Demo(ctx, env, os.Stdout)
	}

	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	if endpoint == "" {
		if err := localrun.ExecWithSelfAddr(emulatorPort); err != nil {
			return err
		}
	}
	// The embedded emulator's HTTP API reaches the functions through
	// http.DefaultClient; keep its connections for the next request.
	localrun.PoolDefaultTransport()
	human := term.IsTerminal(int(os.Stdout.Fd()))
	err := localrun.Dev(ctx, localrun.DevConfig{
		Endpoint: endpoint, Region: regionOr(os.Getenv("AWS_REGION")), Prefix: *prefix,
		BuildDir: *buildDir, EnvFile: *envFile, APIAddr: *apiAddr, SimAddr: *simAddr,
		Interval: *interval, Outbound: *outbound,
		IngestEnvironments: *ingestEnvs, ProcessorEnvironments: *processorEnvs, ProcessorBatches: *batches,
		Engine: *engine, EngineDelay: *engineDelay,
		Out: os.Stdout, Logs: localrun.NewLogs(os.Stdout, human),
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func regionOr(r string) string {
	if r == "" {
		return awsconfig.LocalRegion
	}
	return r
}
