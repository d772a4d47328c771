package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/schema"
)

// coldStarter starts function processes with the configuration of a
// deployment (fresh, empty tables and queues) and times their start.
type coldStarter struct {
	r   *Rig
	lc  *lambda.Client
	sup *localrun.Supervisor
	env map[string]string
	n   int
}

func (r *Rig) coldStarter(ctx context.Context) (*coldStarter, error) {
	res, err := provision.Create(ctx, r.Cfg, "bench-cold-")
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	env := res.Env()
	env[schema.EnvSecretPrefix] = schema.DefaultSecretPrefix
	return &coldStarter{r: r, lc: lambda.NewFromConfig(r.Cfg), env: env,
		sup: &localrun.Supervisor{Emulator: r.Emu, Region: r.Cfg.Region, Logs: r.Logs, Log: r.Log}}, nil
}

func (c *coldStarter) function(fn string) localrun.Function {
	c.n++
	return localrun.Function{Name: fmt.Sprintf("bench-cold-%s-%d", fn, c.n), Bootstrap: c.r.Bootstrap(fn),
		Timeout: 90 * time.Second, MemoryMB: 256, Env: c.env}
}

// Kumo times one start of fn on the emulator's Runtime API: from starting
// the process until it first asks for an event (Emulator.WaitPolling).
func (c *coldStarter) Kumo(ctx context.Context, fn string) (time.Duration, error) {
	f := c.function(fn)
	if _, err := localrun.Register(ctx, c.lc, f); err != nil {
		return 0, err
	}
	cmd := exec.Command(f.Bootstrap)
	cmd.Env = c.sup.Env(f)
	out := c.r.Logs.Writer(f.Name)
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", f.Bootstrap, err)
	}
	err := c.r.Emu.WaitPolling(wait, f.Name)
	d := time.Since(start)
	stop(cmd)
	if err != nil {
		return 0, err
	}
	return d, nil
}

// RIE logs the outcome and length of the runtime's initialisation.
var (
	initDone     = regexp.MustCompile(`INIT RTDONE\(status: (\w+)\)`)
	initDuration = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

// RIE times one start of fn under the AWS Lambda runtime interface
// emulator, listening on loopback: RIE starts the bootstrap at the first
// invocation and logs the time until the runtime asked for its first event
// as "INIT REPORT(durationMs: …)". Its Runtime API stays on RIE's default,
// 127.0.0.1:9001 (setting another address makes this version bind it
// twice), so starts under RIE run one at a time.
func (c *coldStarter) RIE(ctx context.Context, rie, fn string, event []byte) (time.Duration, error) {
	f := c.function(fn)
	rieAddr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", rieAddr, f.Bootstrap)
	for _, kv := range c.sup.Env(f) {
		if !strings.HasPrefix(kv, "AWS_LAMBDA_RUNTIME_API=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", rie, err)
	}
	defer stop(cmd)
	url := "http://" + rieAddr + "/2015-03-31/functions/function/invocations"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := postJSON(ctx, url, event)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("invoke %s under RIE: %w\n%s", fn, err, tail(buf.String(), 1000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 100 {
		log := buf.String()
		if m := initDone.FindStringSubmatch(log); m != nil && m[1] != "success" {
			return 0, fmt.Errorf("%s under RIE: initialisation ended with %s\n%s", fn, m[1], tail(log, 1000))
		}
		if m := initDuration.FindStringSubmatch(log); m != nil {
			ms, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("parse %q: %w", m[0], err)
			}
			return time.Duration(ms * float64(time.Millisecond)), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s under RIE: no INIT REPORT logged\n%s", fn, tail(buf.String(), 1000))
}

func postJSON(ctx context.Context, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// stop ends a process started here as Lambda ends an environment.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
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

// coldEvents are harmless first events: a GET that ingest refuses, an empty
// SQS batch, a scheduled run over empty tables.
var coldEvents = map[string][]byte{
	localrun.Ingest:     []byte(`{"version":"2.0","routeKey":"$default","rawPath":"/","requestContext":{"http":{"method":"GET","path":"/"}}}`),
	localrun.Processor:  []byte(`{"Records":[]}`),
	localrun.Reconciler: []byte(`{"version":"0","id":"bench","detail-type":"Scheduled Event","source":"aws.events","time":"2026-01-01T00:00:00Z","resources":["arn:aws:events:us-east-1:000000000000:rule/bench"],"detail":{}}`),
}

var errNoRIE = errors.New("the runtime interface emulator is not installed")
