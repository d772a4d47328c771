// Package awstest gives tests a real AWS emulator over HTTP on loopback and
// fresh, uniquely named tables and queues per test. No SDK is mocked.
//
// The emulator is chosen by SNOWGATE_TEST_EMULATOR:
//
//	kumo      (default) the embedded kumo emulator, in-process, one per test binary
//	moto      a moto_server process on a free loopback port, one per test binary
//	endpoint  whatever AWS_ENDPOINT_URL points at (LocalStack, a shared moto, AWS)
//
// Packages that use it call awstest.Main from TestMain so that an emulator
// process is stopped when the binary ends.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/sivchari/kumo"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/emulatorfix"
	"github.com/snowgate/snowgate/internal/provision"
)

// EnvEmulator selects the emulator; see the package comment.
const EnvEmulator = "SNOWGATE_TEST_EMULATOR"

// Emulator names.
const (
	Kumo     = "kumo"
	Moto     = "moto"
	Endpoint = "endpoint"
)

var (
	once     sync.Once
	endpoint string
	kind     string
	startErr error
	stop     = func() {}
)

// Main runs the tests and stops the emulator afterwards. Use it as
//
//	func TestMain(m *testing.M) { awstest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	stop()
	os.Exit(code)
}

// Kind reports which emulator the tests run against.
func Kind() string {
	k := os.Getenv(EnvEmulator)
	if k == "" {
		return Kumo
	}
	return k
}

// URL starts the emulator on first use and returns its endpoint.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		t.Fatalf("start %s emulator: %v", kind, startErr)
	}
	return endpoint
}

// Config returns an aws.Config pointed at the emulator with dummy credentials.
func Config(t testing.TB) aws.Config {
	t.Helper()
	url := URL(t)
	opts := awsconfig.Options{Endpoint: url, StaticCredentials: kind != Endpoint}
	if kind == Endpoint {
		opts.Endpoint = ""
	}
	cfg, err := awsconfig.Load(context.Background(), opts)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return cfg
}

// Resources creates this test's own tables and queues, deleted when it ends.
func Resources(t testing.TB) provision.Resources {
	t.Helper()
	cfg := Config(t)
	prefix := "t" + randomHex(4) + "-"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := provision.Create(ctx, cfg, prefix)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := provision.Delete(ctx, cfg, r); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return r
}

// UniqueName returns a short random name with the given prefix, for
// per-test resources such as secrets.
func UniqueName(prefix string) string { return prefix + randomHex(6) }

func start() {
	kind = Kind()
	switch kind {
	case Kumo:
		srv := kumo.NewServer()
		u, _ := url.Parse(srv.URL)
		front := httptest.NewServer(emulatorfix.Proxy(u))
		endpoint, stop = front.URL, func() { front.Close(); srv.Close() }
	case Moto:
		endpoint, stop, startErr = startMoto()
	case Endpoint:
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
		if endpoint == "" {
			startErr = fmt.Errorf("%s=endpoint needs AWS_ENDPOINT_URL", EnvEmulator)
		}
	default:
		startErr = fmt.Errorf("unknown %s %q (want kumo, moto or endpoint)", EnvEmulator, kind)
	}
}

func startMoto() (string, func(), error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return "", nil, fmt.Errorf("moto_server not installed (pip install 'moto[server]'): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	// The emulator dies with the test binary even if Main is not reached.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start moto_server: %w", err)
	}
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return url, kill, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	kill()
	return "", nil, fmt.Errorf("moto_server did not answer on %s within 30s: %s", url, out.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
