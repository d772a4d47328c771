package localrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Function is one Lambda function as make dev runs it: registered in the
// emulator under Name and served by the bootstrap binary at Bootstrap.
type Function struct {
	// Name is the function name in the emulator, e.g. "snowgate-dev-ingest".
	Name string
	// Bootstrap is the path of a host-architecture build of the function.
	Bootstrap string
	// Timeout is the function's timeout (Lambda's default, 3s, when zero).
	Timeout time.Duration
	// MemoryMB is the configured memory size (128 when zero); the local
	// process is not limited, the function only sees the setting.
	MemoryMB int
	// Env is the function's configuration, as CDK would set it.
	Env map[string]string
	// Environments is how many execution environments serve the function
	// at once (1 when zero): that many bootstrap processes poll the Runtime
	// API, and the emulator hands each invocation to one that is waiting,
	// so up to Environments invocations run side by side, as Lambda runs
	// concurrent invocations in environments of their own.
	Environments int
}

// environments is fn.Environments, at least one.
func (fn Function) environments() int { return max(fn.Environments, 1) }

// ProcessLabel names the log lines of environment i (from 1) of n of the
// named function: the function name alone when it has one environment,
// "<name>#<i>" otherwise, as Lambda writes a log stream per environment.
func ProcessLabel(name string, i, n int) string {
	if n <= 1 {
		return name
	}
	return fmt.Sprintf("%s#%d", name, i)
}

// Supervisor runs function bootstraps against the emulator's Runtime API,
// as the Lambda service runs them in their execution environments.
type Supervisor struct {
	Emulator *Emulator
	// Region and Endpoint are given to the functions as AWS_REGION and
	// AWS_ENDPOINT_URL. Endpoint defaults to the emulator's URL.
	Region   string
	Endpoint string
	Logs     *Logs
	Log      *slog.Logger
	// Backoff is the first delay before restarting a bootstrap that exited;
	// it doubles up to MaxBackoff while the process keeps dying quickly.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Env is the complete environment of the function's process: what the
// Lambda service sets in provided.al2023, dummy credentials for the emulator,
// and the function's own configuration. Nothing leaks in from the parent's
// environment (no AWS_PROFILE, no real credentials).
func (s *Supervisor) Env(fn Function) []string {
	timeout := fn.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	endpoint := s.Endpoint
	if endpoint == "" {
		endpoint = s.Emulator.URL
	}
	env := map[string]string{
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(fn.Bootstrap),
		"AWS_LAMBDA_RUNTIME_API":          s.Emulator.RuntimeAPI(fn.Name),
		"AWS_LAMBDA_FUNCTION_NAME":        fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": fmt.Sprint(memoryMB(fn)),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + fn.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     fmt.Sprint(int(timeout / time.Second)),
		"AWS_REGION":                      s.Region,
		"AWS_DEFAULT_REGION":              s.Region,
		"AWS_ENDPOINT_URL":                endpoint,
		"AWS_ACCESS_KEY_ID":               "test",
		"AWS_SECRET_ACCESS_KEY":           "test",
		"AWS_SESSION_TOKEN":               "test",
	}
	for k, v := range fn.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Run starts the function's bootstrap once per execution environment
// (fn.Environments) and starts each process again whenever it exits, with a
// backoff of its own, until ctx is done; then it stops the processes and
// returns nil. It fails only when the bootstrap cannot be started at all.
func (s *Supervisor) Run(ctx context.Context, fn Function) error {
	abs, err := filepath.Abs(fn.Bootstrap)
	if err != nil {
		return fmt.Errorf("bootstrap of %s: %w", fn.Name, err)
	}
	fn.Bootstrap = abs
	if _, err := os.Stat(fn.Bootstrap); err != nil {
		return fmt.Errorf("bootstrap of %s: %w", fn.Name, err)
	}
	n := fn.environments()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if errs[i] = s.runEnvironment(ctx, fn, ProcessLabel(fn.Name, i+1, n)); errs[i] != nil {
				// The same bootstrap cannot start in the others either.
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runEnvironment keeps one execution environment's process running.
func (s *Supervisor) runEnvironment(ctx context.Context, fn Function, label string) error {
	backoff, maxBackoff := s.Backoff, s.MaxBackoff
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	if maxBackoff < backoff {
		maxBackoff = 10 * time.Second
	}
	delay := backoff
	for {
		started := time.Now()
		err := s.runOnce(ctx, fn, label)
		if ctx.Err() != nil {
			return nil
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return fmt.Errorf("run %s: %w", fn.Name, err)
		}
		// A process that lived a while crashed on a request, not at start:
		// restart it promptly, as Lambda starts a fresh environment.
		if time.Since(started) > 10*delay {
			delay = backoff
		}
		s.Log.Warn("function process exited; restarting", "function", fn.Name,
			"environment", label, "error", err, "restart_in", delay.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxBackoff)
	}
}

func (s *Supervisor) runOnce(ctx context.Context, fn Function, label string) error {
	out := s.Logs.Writer(label)
	defer out.Close()
	cmd := exec.CommandContext(ctx, fn.Bootstrap)
	cmd.Dir = filepath.Dir(fn.Bootstrap)
	cmd.Env = s.Env(fn)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	// Lambda gives a runtime SIGTERM before it reclaims the environment.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", fn.Bootstrap, err)
	}
	s.Log.Info("function process started", "function", fn.Name, "environment", label, "pid", cmd.Process.Pid)
	return cmd.Wait()
}

func memoryMB(fn Function) int {
	if fn.MemoryMB <= 0 {
		return 128
	}
	return fn.MemoryMB
}
