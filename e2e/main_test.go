package e2e_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/internal/localrun"
)

func TestMain(m *testing.M) {
	// kumo's HTTP API calls Lambda back at KUMO_HOST:KUMO_PORT, which the
	// emulator process (testdata/kumo) inherits, and localrun's emulator
	// front listens there.
	if os.Getenv("KUMO_PORT") == "" {
		if err := setSelfAddr(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// Not awstest.Main: the suite does not use the harness's emulator.
	code := m.Run()
	stopEmulator()
	removeBuild()
	os.Exit(code)
}

func setSelfAddr() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port for the emulator: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := os.Setenv("KUMO_HOST", "127.0.0.1"); err != nil {
		return err
	}
	return os.Setenv("KUMO_PORT", strconv.Itoa(port))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildSkip string // why the functions cannot be built here
	buildErr  error  // they can, but the build failed
	// emulatorBin is testdata/kumo, built with the functions.
	emulatorBin string
)

func removeBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// functions are the function packages, by the name localrun runs them as.
var functions = []string{localrun.Ingest, localrun.Processor, localrun.Reconciler, localrun.Writer}

// bootstraps builds the functions for this machine once per test
// binary, as make build-local does, and returns the directory holding
// <function>/bootstrap. It skips the test when they cannot be built here
// (no Go toolchain or no sources at run time) and fails it when the build
// fails.
func bootstraps(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildSkip != "" {
		t.Skipf("the functions' bootstrap binaries cannot be built: %s", buildSkip)
	}
	if buildErr != nil {
		t.Fatalf("build the functions' bootstrap binaries: %v", buildErr)
	}
	return buildDir
}

func build() {
	if _, err := exec.LookPath("go"); err != nil {
		buildSkip = "no go command"
		return
	}
	for _, fn := range functions {
		if _, err := os.Stat(filepath.Join("..", "functions", fn, "main.go")); err != nil {
			buildSkip = "no sources: " + err.Error()
			return
		}
	}
	dir, err := os.MkdirTemp("", "snowgate-e2e-")
	if err != nil {
		buildErr = err
		return
	}
	buildDir = dir
	out := filepath.Join(dir, "out")
	args := []string{"build", "-tags", "lambda.norpc", "-o", out + string(filepath.Separator)}
	for _, fn := range functions {
		args = append(args, "./functions/"+fn)
	}
	args = append(args, "./e2e/testdata/kumo")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go %v: %w\n%s", args, err, b)
		return
	}
	emulatorBin = filepath.Join(out, "kumo"+exeSuffix())
	// go build -o dir/ names each binary after its package directory.
	for _, fn := range functions {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			buildErr = err
			return
		}
		if err := os.Rename(filepath.Join(out, fn+exeSuffix()), filepath.Join(dir, fn, "bootstrap")); err != nil {
			buildErr = err
			return
		}
	}
}

func exeSuffix() string {
	if filepath.Separator == '\\' {
		return ".exe"
	}
	return ""
}
