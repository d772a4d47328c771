// Command snowgate-bench measures snowgate on this machine next to its
// baselines (make bench, make bench-quick) and prints the results as
// Markdown tables. It writes them to build/bench.md and, after a full run,
// into docs/performance.md between its bench markers, replacing the tables
// of the run before.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/snowgate/snowgate/internal/bench"
	"github.com/snowgate/snowgate/internal/localrun"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "snowgate-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("snowgate-bench", flag.ExitOnError)
	quick := fs.Bool("quick", false, "shorter runs (make bench-quick)")
	runs := fs.Int("runs", 3, "repetitions of every measurement (at least 3)")
	out := fs.String("out", "build/bench.md", "where to write the Markdown report as well as to stdout")
	rie := fs.String("rie", "bin/tools/aws-lambda-rie", "the AWS Lambda runtime interface emulator; empty skips its cold starts")
	doc := fs.String("doc", "docs/performance.md", "the page whose tables between its bench markers are replaced; "+
		"only after a full run (no -quick, no -only) unless given explicitly; empty: never")
	keep := fs.Bool("keep", false, "keep the scratch directory (builds, function logs)")
	only := fs.String("only", "", "run only these parts, comma-separated: "+strings.Join(bench.Parts, ", ")+" (the functions are always built)")
	ingestEnvs := fs.Int("ingest-envs", 0, "webhook to dispatch: execution environments of ingest (0: make dev's default)")
	processorEnvs := fs.Int("processor-envs", 0, "webhook to dispatch: execution environments of the processor (0: make dev's default)")
	batches := fs.Int("processor-batches", 0, "webhook to dispatch: SQS batches in flight at once (0: make dev's default)")
	rates := fs.String("rates", "", "webhook to dispatch: records per second, comma-separated (default 10,100)")
	_ = fs.Parse(os.Args[1:])
	docSet := false
	fs.Visit(func(f *flag.Flag) { docSet = docSet || f.Name == "doc" })
	var rs []int
	if *rates != "" {
		for _, r := range strings.Split(*rates, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(r))
			if err != nil || n < 1 {
				return fmt.Errorf("-rates: %q is not a positive number", r)
			}
			rs = append(rs, n)
		}
	}
	var parts []string
	if *only != "" {
		for _, p := range strings.Split(*only, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(bench.Parts, p) {
				return fmt.Errorf("-only: unknown part %q (want %s)", p, strings.Join(bench.Parts, ", "))
			}
			parts = append(parts, p)
		}
	}

	// Check the page before measuring for minutes, not after.
	updateDoc := *doc != "" && (docSet || (!*quick && len(parts) == 0))
	if updateDoc {
		page, err := os.ReadFile(*doc)
		if err != nil {
			return fmt.Errorf("-doc: %w", err)
		}
		if _, err := bench.Splice(page, nil); err != nil {
			return fmt.Errorf("-doc %s: %w", *doc, err)
		}
	}

	// The embedded emulator must listen where its HTTP API calls back.
	if err := localrun.ExecWithSelfAddr(0); err != nil {
		return err
	}
	// The embedded emulator's HTTP API reaches the functions through
	// http.DefaultClient; keep its connections for the next request.
	localrun.PoolDefaultTransport()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("run it from the module root (make bench): %w", err)
	}
	dir, err := os.MkdirTemp("", "snowgate-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "snowgate-bench: scratch directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := bench.Run(ctx, bench.Options{
		Root: root, Dir: dir, Quick: *quick, Runs: *runs, RIE: *rie, Progress: os.Stderr, Only: parts, Rates: rs,
		IngestEnvironments: *ingestEnvs, ProcessorEnvironments: *processorEnvs, ProcessorBatches: *batches,
		Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	var md bytes.Buffer
	rep.Markdown(&md)
	if _, err := os.Stdout.Write(md.Bytes()); err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "snowgate-bench: wrote", *out)
	}
	switch {
	case updateDoc:
		if err := bench.SpliceFile(*doc, md.Bytes()); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "snowgate-bench: replaced the tables in", *doc)
	case *doc != "":
		fmt.Fprintf(os.Stderr, "snowgate-bench: %s left as it is (not a full run; -doc %s replaces its tables anyway)\n", *doc, *doc)
	}
	return nil
}
