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
	stormRuns := fs.Int("storm-runs", 1, "storm: how often it runs")
	stormRecords := fs.Int("storm-records", 0, "storm: incidents created (0: 500, -quick 200)")
	stormUpdates := fs.Int("storm-updates", 0, "storm: updates of each incident (0: 4)")
	stormQuota := fs.Int("storm-quota", 0, "storm: the instance's requests a minute for the integration user (0: 600)")
	stormRate := fs.Int("storm-rate", 0, "storm: the gateway's budget, requests an hour (0: just below the quota)")
	stormDuration := fs.Duration("storm-duration", 0, "storm: how long the changes take (0: 100s, -quick 40s)")
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
		if _, err := bench.SpliceStorm(page, nil); err != nil && (len(parts) == 0 || slices.Contains(parts, bench.PartStorm)) {
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
		StormRuns: *stormRuns, Storm: bench.StormSettings{Records: *stormRecords, Updates: *stormUpdates, QuotaPerMin: *stormQuota,
			RatePerHour: *stormRate, Duration: *stormDuration},
		Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	var md, storm, svg bytes.Buffer
	rep.Markdown(&md)
	stormRan := rep.Ran(bench.PartStorm)
	if stormRan {
		rep.StormMarkdown(&storm, stormSVG)
		if len(rep.Storms) > 0 {
			if err := bench.StormChart(rep.Storms[len(rep.Storms)-1]).WriteSVG(&svg); err != nil {
				return err
			}
		}
	}
	all := append(append(bytes.Clone(md.Bytes()), '\n'), storm.Bytes()...)
	if _, err := os.Stdout.Write(all); err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(*out, all, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "snowgate-bench: wrote", *out)
		if svg.Len() > 0 {
			if err := writeSVG(filepath.Join(filepath.Dir(*out), stormSVG), svg.Bytes()); err != nil {
				return err
			}
		}
	}
	switch {
	case updateDoc:
		// A run of the storm alone leaves the other tables as they are.
		if len(parts) == 0 || slices.ContainsFunc(parts, func(p string) bool { return p != bench.PartStorm }) {
			if err := bench.SpliceFile(*doc, md.Bytes()); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "snowgate-bench: replaced the tables in", *doc)
		}
		if stormRan {
			if err := bench.SpliceStormFile(*doc, storm.Bytes()); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "snowgate-bench: replaced the storm's section in", *doc)
			if svg.Len() > 0 {
				if err := writeSVG(filepath.Join(filepath.Dir(*doc), stormSVG), svg.Bytes()); err != nil {
					return err
				}
			}
		}
	case *doc != "":
		fmt.Fprintf(os.Stderr, "snowgate-bench: %s left as it is (not a full run; -doc %s replaces its tables anyway)\n", *doc, *doc)
	}
	return nil
}

// stormSVG is the storm's plot, next to the page that shows it.
const stormSVG = "storm.svg"

func writeSVG(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "snowgate-bench: wrote", path)
	return nil
}
