package bench

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/sivchari/kumo"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/localrun"
)

// Functions are the three Lambda functions, in the order they are reported.
var Functions = []string{localrun.Ingest, localrun.Processor, localrun.Reconciler}

// Build flags of the Lambda packages, as the Makefile's LAMBDA_FLAGS.
var lambdaFlags = []string{"-trimpath", "-tags", "lambda.norpc", "-ldflags=-s -w"}

// Rig is what the system measurements share: the embedded emulator, served
// at its self-call address as make dev serves it, and builds of the
// functions.
type Rig struct {
	// Root is the module root; Dir a scratch directory for builds and logs.
	Root, Dir string
	// KumoURL is the emulator itself; Emu is it at its self-call address,
	// behind make dev's proxy, which the functions and the HTTP API use.
	KumoURL string
	Emu     *localrun.Emulator
	Cfg     aws.Config
	// Logs collects the functions' log lines (in Dir/functions.log).
	Logs *localrun.Logs
	Log  *slog.Logger

	kumo    *kumo.Server
	logFile *os.File
}

// StartRig starts the emulator. The program must have called
// localrun.ExecWithSelfAddr first.
func StartRig(ctx context.Context, root, dir string, log *slog.Logger) (*Rig, error) {
	f, err := os.Create(filepath.Join(dir, "functions.log"))
	if err != nil {
		return nil, fmt.Errorf("create function log: %w", err)
	}
	k := kumo.NewServer()
	emu, err := localrun.ServeEmulator(k.URL)
	if err != nil {
		k.Close()
		f.Close()
		return nil, err
	}
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{Endpoint: emu.URL, Region: awsconfig.LocalRegion, StaticCredentials: true})
	if err != nil {
		emu.Close()
		k.Close()
		f.Close()
		return nil, err
	}
	return &Rig{Root: root, Dir: dir, KumoURL: k.URL, Emu: emu, Cfg: cfg,
		Logs: localrun.NewLogs(f, false), Log: log, kumo: k, logFile: f}, nil
}

// Close stops the emulator.
func (r *Rig) Close() {
	r.Emu.Close()
	r.kumo.Close()
	r.logFile.Close()
}

// Bootstrap is the host build of a function (see Build).
func (r *Rig) Bootstrap(fn string) string {
	return filepath.Join(r.Dir, "host", fn, "bootstrap")
}

// Package is one function's Lambda package.
type Package struct {
	Function         string
	Unzipped, Zipped int64
}

// Build builds every function twice with the Lambda flags: for
// linux/arm64, zipped as make build does (the deployed package, measured
// only), and for this machine (what runs here).
func (r *Rig) Build(ctx context.Context) ([]Package, error) {
	var pkgs []Package
	for _, fn := range Functions {
		src := "./functions/" + fn
		if err := r.goBuild(ctx, r.Bootstrap(fn), src, "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH); err != nil {
			return nil, err
		}
		arm := filepath.Join(r.Dir, "arm64", fn, "bootstrap")
		if err := r.goBuild(ctx, arm, src, "GOOS=linux", "GOARCH=arm64"); err != nil {
			return nil, err
		}
		p := Package{Function: fn}
		var err error
		if p.Unzipped, p.Zipped, err = zipSize(arm, filepath.Join(r.Dir, "arm64", fn+".zip")); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func (r *Rig) goBuild(ctx context.Context, out, pkg string, env ...string) error {
	args := append([]string{"build"}, lambdaFlags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, pkg)...)
	cmd.Dir = r.Root
	cmd.Env = append(os.Environ(), append(env, "CGO_ENABLED=0")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (%v): %w\n%s", pkg, env, err, b)
	}
	return nil
}

// zipSize writes the bootstrap into a deflated zip, as the Makefile's zip
// does, and returns both sizes.
func zipSize(bootstrap, zipPath string) (unzipped, zipped int64, err error) {
	in, err := os.Open(bootstrap)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", bootstrap, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", bootstrap, err)
	}
	out, err := os.Create(zipPath)
	if err != nil {
		return 0, 0, fmt.Errorf("create %s: %w", zipPath, err)
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err == nil {
		_, err = io.Copy(w, in)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("zip %s: %w", bootstrap, err)
	}
	zs, err := out.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, fmt.Errorf("size of %s: %w", zipPath, err)
	}
	return st.Size(), zs, nil
}
