// Package localrun plays, on one machine, the parts of AWS that the embedded
// emulator (kumo) does not: it runs each function's real bootstrap process on
// the emulator's Lambda Runtime API, registers the functions and the HTTP API
// through the SDK as a deployment would, fronts that API on a plain loopback
// URL, polls the intake queue the way Lambda's SQS event source mapping does
// and fires the reconciler's schedule the way an EventBridge rule does.
//
// make dev (cmd/snowgate-dev) wires these pieces together; the tests drive
// each of them against the emulator with a tiny function of their own.
package localrun

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sivchari/kumo"

	"github.com/snowgate/snowgate/internal/emulatorfix"
)

// kumo reads these when its packages initialise, before main runs: its HTTP
// API calls the Lambda invoke endpoint back through this address.
const (
	envKumoHost = "KUMO_HOST"
	envKumoPort = "KUMO_PORT"
)

// selfHost is where the emulator listens: loopback only, never 0.0.0.0.
const selfHost = "127.0.0.1"

// ExecWithSelfAddr makes sure KUMO_HOST and KUMO_PORT name a free loopback
// address before kumo's package initialisation reads them. When they are
// unset it picks one (preferred when it is free, any free port otherwise),
// sets them and re-executes the current program, so it returns only when the
// environment was already right or on error. Call it first thing in main (or
// TestMain), before anything else starts.
//
// Re-executing is the only way: kumo resolves its self-call address in init
// functions, so setting the variables later has no effect.
func ExecWithSelfAddr(preferred int) error {
	if os.Getenv(envKumoPort) != "" {
		return nil
	}
	port, err := pickPort(preferred)
	if err != nil {
		return err
	}
	if err := os.Setenv(envKumoHost, selfHost); err != nil {
		return fmt.Errorf("set %s: %w", envKumoHost, err)
	}
	if err := os.Setenv(envKumoPort, strconv.Itoa(port)); err != nil {
		return fmt.Errorf("set %s: %w", envKumoPort, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable to re-execute: %w", err)
	}
	if err := syscall.Exec(exe, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("re-execute %s with %s=%d: %w", exe, envKumoPort, port, err)
	}
	return nil
}

// SelfAddr is the host:port kumo calls itself back on, as kumo resolves it.
func SelfAddr() string {
	host, port := os.Getenv(envKumoHost), os.Getenv(envKumoPort)
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "4566"
	}
	return net.JoinHostPort(host, port)
}

func pickPort(preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort(selfHost, strconv.Itoa(preferred))); err == nil {
			l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", selfHost+":0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Emulator is kumo reachable at its self-call address (SelfAddr), so that
// its HTTP API can invoke functions, and the functions' Runtime API clients
// can reach it, at one URL. It also notices which functions have a bootstrap
// polling for work, which kumo needs before it routes an invocation to them.
type Emulator struct {
	// URL is the endpoint for SDK clients and functions: http://SelfAddr.
	URL string

	kumo *kumo.Server
	srv  *http.Server

	mu      sync.Mutex
	polling map[string]chan struct{}
}

// StartEmulator starts the embedded kumo and serves it at SelfAddr.
func StartEmulator() (*Emulator, error) {
	k := kumo.NewServer()
	e, err := ServeEmulator(k.URL)
	if err != nil {
		k.Close()
		return nil, err
	}
	e.kumo = k
	return e, nil
}

// ServeEmulator serves an already running kumo (at target) at SelfAddr; the
// tests use it with the harness's emulator. kumo keeps its state per process,
// so every server in a process sees the same functions, queues and tables.
func ServeEmulator(target string) (*Emulator, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse emulator URL %q: %w", target, err)
	}
	addr := SelfAddr()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on the emulator's self-call address %s: %w", addr, err)
	}
	e := &Emulator{URL: "http://" + addr, polling: map[string]chan struct{}{}}
	proxy := emulatorProxy(u)
	e.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fn, ok := runtimeNext(r.URL.Path); ok {
				e.markPolling(fn)
			}
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = e.srv.Serve(l) }()
	return e, nil
}

// emulatorProxy is the reverse proxy to kumo at u that the emulator's
// address serves.
func emulatorProxy(u *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:    pooledTransport(),
		ErrorHandler: proxyError,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// Virtual-hosted execute-api requests are routed by Host.
			r.Out.Host = r.In.Host
			emulatorfix.ForwardBody(r.Out)
		},
		ModifyResponse: emulatorfix.AddDynamoDBChecksum,
	}
}

// Close stops serving and, if it started one, the embedded kumo.
func (e *Emulator) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Long polls of the Runtime API would hold a graceful shutdown open.
	if err := e.srv.Shutdown(ctx); err != nil {
		_ = e.srv.Close()
	}
	if e.kumo != nil {
		e.kumo.Close()
	}
}

// RuntimeAPI is the AWS_LAMBDA_RUNTIME_API value for the named function.
func (e *Emulator) RuntimeAPI(function string) string {
	return strings.TrimPrefix(e.URL, "http://") + "/_runtime/" + function
}

// WaitPolling blocks until a bootstrap has asked the Runtime API for work for
// the named function. Until then kumo fails synchronous invocations of it.
func (e *Emulator) WaitPolling(ctx context.Context, function string) error {
	select {
	case <-e.pollingChan(function):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to poll the runtime API: %w", function, ctx.Err())
	}
}

func (e *Emulator) pollingChan(fn string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.polling[fn]
	if !ok {
		ch = make(chan struct{})
		e.polling[fn] = ch
	}
	return ch
}

func (e *Emulator) markPolling(fn string) {
	ch := e.pollingChan(fn)
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// runtimeNext recognises /_runtime/{fn}/2018-06-01/runtime/invocation/next.
func runtimeNext(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/_runtime/")
	if !ok {
		return "", false
	}
	fn, tail, ok := strings.Cut(rest, "/")
	return fn, ok && fn != "" && tail == "2018-06-01/runtime/invocation/next"
}
