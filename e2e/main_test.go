package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
)

func TestMain(m *testing.M) {
	if !remoteMode() && awstest.Kind() == awstest.Kumo {
		// kumo's HTTP API calls Lambda back at KUMO_HOST:KUMO_PORT, read at
		// package initialisation: this re-executes the test binary with them.
		if err := localrun.ExecWithSelfAddr(0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// Not awstest.Main: it exits before the builds could be removed. The
	// suite only ever starts the in-process kumo (it skips on moto), which
	// needs no stopping.
	code := m.Run()
	removeBuild()
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildSkip string // why the functions cannot be built here
	buildErr  error  // they can, but the build failed
)

func removeBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// functions are the function packages, by the name localrun runs them as.
var functions = []string{localrun.Ingest, localrun.Processor, localrun.Reconciler}

// bootstraps builds the three functions for this machine once per test
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
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go %v: %w\n%s", args, err, b)
		return
	}
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
