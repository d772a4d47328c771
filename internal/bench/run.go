package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Options choose how long the measurements run.
type Options struct {
	// Root is the module root; Dir a scratch directory.
	Root, Dir string
	// Quick shortens every measurement (make bench-quick).
	Quick bool
	// Runs is how often each measurement is repeated (at least 3).
	Runs int
	// RIE is the runtime interface emulator binary; empty skips it.
	RIE string
	// Only limits the run to some parts (Parts); empty runs them all.
	Only []string
	// Rates replaces the webhook-to-dispatch rates (records per second).
	Rates []int
	// Concurrency of make dev's system for the webhook-to-dispatch part;
	// zero takes make dev's defaults.
	IngestEnvironments, ProcessorEnvironments, ProcessorBatches int
	// StormRuns is how often the storm runs (1 when zero); Storm, when its
	// fields are set, replaces the storm's settings field by field.
	StormRuns int
	Storm     StormSettings
	// Progress gets a line per step.
	Progress io.Writer
	Log      *slog.Logger
}

// The parts of a run, for Options.Only.
const (
	PartGo     = "go"     // the go benchmarks of ingest, the processor and the reconciler
	PartCold   = "cold"   // the functions' cold starts
	PartIngest = "ingest" // ingest over HTTP beside its ceilings
	PartFlow   = "flow"   // webhook to dispatch through make dev's system
	PartStorm  = "storm"  // a storm of changes against a rate-limited instance, write-back on
)

// Parts are every part, in the order they run.
var Parts = []string{PartGo, PartCold, PartIngest, PartFlow, PartStorm}

func (o Options) runs(part string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, part)
}

// settings are the sizes of one kind of run.
type settings struct {
	handleTime, batchTime, reconcileTime string
	requests                             int
	clients                              []int
	rates                                []int
	flow, drain                          time.Duration
}

func (o Options) settings() settings {
	if o.Quick {
		return settings{"20000x", "3x", "3x", 500, []int{1, 8, 64}, []int{10, 100}, 5 * time.Second, 10 * time.Second}
	}
	return settings{"200000x", "10x", "10x", 3000, []int{1, 8, 64}, []int{10, 100}, 30 * time.Second, 20 * time.Second}
}

// Run measures everything and returns the report; a part that fails is
// noted in the report and the others still run.
func Run(ctx context.Context, o Options) *Report {
	o.Runs = max(o.Runs, 3)
	s := o.settings()
	if len(o.Rates) > 0 {
		s.rates = o.Rates
	}
	rep := &Report{Started: time.Now(), Quick: o.Quick, Runs: o.Runs, Machine: machine(), LoadBefore: loadAvg(),
		Requests: s.requests, Clients: s.clients, FlowDuration: s.flow, FlowDrain: s.drain, Only: o.Only}
	step := func(format string, args ...any) {
		fmt.Fprintf(o.Progress, "bench: %s (%s)\n", fmt.Sprintf(format, args...), time.Since(rep.Started).Round(time.Second))
	}
	defer func() { rep.Wall = time.Since(rep.Started); rep.LoadAfter = loadAvg() }()

	// The go benchmarks run first, each in a process of its own, before the
	// emulator and the functions compete with them for the cores.
	rep.Handle = GoBench{Pkg: "./internal/ingest/", Bench: "BenchmarkHandle", Benchtime: s.handleTime, Count: o.Runs, CPU: "1"}
	rep.Batch = GoBench{Pkg: "./internal/pipeline/", Bench: "BenchmarkBatch", Benchtime: s.batchTime, Count: o.Runs}
	rep.Reconcile = GoBench{Pkg: "./internal/reconcile/", Bench: "BenchmarkRun", Benchtime: s.reconcileTime, Count: o.Runs}
	for _, g := range []*GoBench{&rep.Handle, &rep.Batch, &rep.Reconcile} {
		if !o.runs(PartGo) {
			break
		}
		step("%s", g.Command())
		res, err := g.Run(ctx, o.Root)
		if err != nil {
			rep.note("%s failed: %v", g.Command(), err)
			continue
		}
		rep.GoResults = append(rep.GoResults, res)
	}

	rig, err := StartRig(ctx, o.Root, o.Dir, o.Log)
	if err != nil {
		rep.note("emulator: %v", err)
		return rep
	}
	defer rig.Close()
	step("building the functions (linux/arm64 packages, host builds)")
	if rep.Packages, err = rig.Build(ctx); err != nil {
		rep.note("build: %v", err)
		return rep
	}

	if o.runs(PartCold) {
		step("cold starts")
		rep.Cold = measureCold(ctx, rig, o, rep)
	}

	if o.runs(PartIngest) {
		step("ingest over HTTP: %d requests × clients %v × %d runs", s.requests, s.clients, o.Runs)
		if ir, err := rig.SetupIngest(ctx); err != nil {
			rep.note("ingest targets: %v", err)
		} else {
			rep.Targets, rep.Loads = measureIngest(ctx, ir, s, o.Runs, rep, step)
			ir.Close()
		}
	}
	if o.runs(PartFlow) {
		measureFlows(ctx, rig, o, s, rep, step)
	}
	if o.runs(PartStorm) {
		set := o.stormSettings()
		rep.StormSettings = set
		for run := range max(o.StormRuns, 1) {
			step("storm run %d: %d records × %d changes in %v, quota %d/min for the integration user, budget %d/h and %d at once, write-back on",
				run+1, set.Records, set.Updates+1, set.Duration, set.QuotaPerMin, set.RatePerHour, set.MaxConcurrency)
			st, err := rig.MeasureStorm(ctx, set, run, step)
			if err != nil {
				rep.note("storm run %d: %v", run+1, err)
				continue
			}
			fmt.Fprintln(o.Progress, st.Line())
			rep.Storms = append(rep.Storms, st)
		}
	}
	return rep
}

// measureFlows measures webhook to dispatch through make dev's system.
func measureFlows(ctx context.Context, rig *Rig, o Options, s settings, rep *Report, step func(string, ...any)) {
	sys, err := rig.StartSystem(ctx, o.IngestEnvironments, o.ProcessorEnvironments, o.ProcessorBatches)
	if err != nil {
		rep.note("make dev system: %v", err)
		return
	}
	defer sys.Close()
	rep.FlowSystem = fmt.Sprintf("ingest in %d execution environments, the processor in %d, up to %d batches in flight",
		sys.IngestEnvironments, sys.ProcessorEnvironments, sys.ProcessorBatches)
	step("webhook to dispatch through make dev's system (%s): %v/s for %v × %d runs", rep.FlowSystem, s.rates, s.flow, o.Runs)
	rep.Flows = map[int][]Flow{}
	for run := range o.Runs {
		for _, rate := range s.rates {
			f, err := sys.MeasureFlow(ctx, rate, s.flow, s.drain)
			if err != nil {
				rep.note("flow at %d/s: %v", rate, err)
				continue
			}
			if !f.Settled {
				rep.note("flow run %d at %d/s began while the system was still busy with the one before", run+1, rate)
			}
			step("flow run %d at %d/s: %d records, p50 %v, p99 %v, missing %d (accepted by ingest %d; recovered by the reconciler %d, still missing %d); "+
				"webhook calls %d, failed %d %v, answers %v; dead letters intake %d, dispatch %d; warnings and errors %v",
				run+1, rate, len(f.Created),
				Percentile(f.Latencies, 50).Round(time.Millisecond), Percentile(f.Latencies, 99).Round(time.Millisecond), f.Missing,
				f.MissingAccepted, f.Recovered, f.StillMissing, f.Webhooks.Sent, f.Webhooks.Failures(), f.Webhooks.Failed, f.Webhooks.Status,
				f.IntakeDLQ, f.DispatchDLQ, f.Errors)
			rep.Flows[rate] = append(rep.Flows[rate], f)
		}
	}
}

func measureIngest(ctx context.Context, ir *ingestRig, s settings, runs int, rep *Report, step func(string, ...any)) ([]Target, map[string][]Load) {
	loads := map[string][]Load{}
	warm := max(200, s.requests/10)
	for run := range runs {
		// Every target in every run, so a change in the machine's load
		// touches all of them alike and the ratios of one run hold.
		for _, t := range ir.Targets {
			_ = ClosedLoop(ctx, 8, warm, t.Do)
			for _, c := range s.clients {
				if err := ir.purge(ctx); err != nil {
					rep.note("purge intake queue: %v", err)
				}
				l := ClosedLoop(ctx, c, s.requests, t.Do)
				if l.Errors > 0 {
					rep.note("(%s) %d clients, run %d: %d of %d requests failed, first: %v", t.Key, c, run+1, l.Errors, s.requests, l.FirstErr)
				}
				loads[loadKey(t.Key, c)] = append(loads[loadKey(t.Key, c)], l)
			}
			step("run %d (%s) %s: %s", run+1, t.Key, t.Name, summariseLoads(loads, t.Key, s.clients, run))
		}
	}
	return ir.Targets, loads
}

func summariseLoads(loads map[string][]Load, key string, clients []int, run int) string {
	var parts []string
	for _, c := range clients {
		if ls := loads[loadKey(key, c)]; len(ls) > run {
			parts = append(parts, fmt.Sprintf("%d→%s", c, Rate(ls[run].Throughput())))
		}
	}
	return strings.Join(parts, " ")
}

func loadKey(target string, clients int) string { return fmt.Sprintf("%s/%d", target, clients) }

// Cold holds the start times of each function, per runtime API.
type Cold struct {
	Kumo, RIE map[string][]time.Duration
}

func measureCold(ctx context.Context, rig *Rig, o Options, rep *Report) Cold {
	cold := Cold{Kumo: map[string][]time.Duration{}, RIE: map[string][]time.Duration{}}
	cs, err := rig.coldStarter(ctx)
	if err != nil {
		rep.note("cold starts: %v", err)
		return cold
	}
	rie := o.RIE
	if rie != "" {
		if _, err := os.Stat(rie); err != nil {
			rep.note("cold starts under RIE skipped: %v (%v)", errNoRIE, err)
			rie = ""
		}
	} else {
		rep.note("cold starts under RIE skipped: %v", errNoRIE)
	}
	for range o.Runs {
		for _, fn := range Functions {
			if d, err := cs.Kumo(ctx, fn); err != nil {
				rep.note("cold start of %s on the emulator: %v", fn, err)
			} else {
				cold.Kumo[fn] = append(cold.Kumo[fn], d)
			}
			if rie == "" {
				continue
			}
			if d, err := cs.RIE(ctx, rie, fn, coldEvents[fn]); err != nil {
				rep.note("cold start of %s under RIE: %v", fn, err)
			} else {
				cold.RIE[fn] = append(cold.RIE[fn], d)
			}
		}
	}
	return cold
}

func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
