package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The markers around the tables in docs/performance.md. Everything between
// them is replaced by each run; everything outside them is left as it is.
const (
	BeginMarker = "<!-- bench:begin -->"
	EndMarker   = "<!-- bench:end -->"
)

// The markers around the storm's section of docs/performance.md, which a
// run of the storm replaces (see SpliceStorm).
const (
	StormBeginMarker = "<!-- storm:begin -->"
	StormEndMarker   = "<!-- storm:end -->"
)

// ErrMarkers reports a page without exactly one pair of bench markers.
var ErrMarkers = errors.New("bench markers")

// Splice returns doc with what lies between its BeginMarker and EndMarker
// replaced by tables. The bytes before the begin marker and from the end
// marker on are kept exactly. A page without exactly one begin marker
// followed by one end marker is an error wrapping ErrMarkers, and nothing is
// replaced.
func Splice(doc, tables []byte) ([]byte, error) {
	return spliceBetween(doc, tables, BeginMarker, EndMarker)
}

// SpliceStorm is Splice for the storm's section, between StormBeginMarker
// and StormEndMarker.
func SpliceStorm(doc, section []byte) ([]byte, error) {
	return spliceBetween(doc, section, StormBeginMarker, StormEndMarker)
}

func spliceBetween(doc, tables []byte, beginMarker, endMarker string) ([]byte, error) {
	begin, end := []byte(beginMarker), []byte(endMarker)
	nb, ne := bytes.Count(doc, begin), bytes.Count(doc, end)
	switch {
	case nb == 0 && ne == 0:
		return nil, fmt.Errorf("%w: neither %s nor %s found", ErrMarkers, beginMarker, endMarker)
	case nb == 0:
		return nil, fmt.Errorf("%w: %s not found", ErrMarkers, beginMarker)
	case ne == 0:
		return nil, fmt.Errorf("%w: %s not found", ErrMarkers, endMarker)
	case nb > 1 || ne > 1:
		return nil, fmt.Errorf("%w: want one %s and one %s, found %d and %d", ErrMarkers, beginMarker, endMarker, nb, ne)
	}
	b, e := bytes.Index(doc, begin)+len(begin), bytes.Index(doc, end)
	if e < b {
		return nil, fmt.Errorf("%w: %s comes before %s", ErrMarkers, endMarker, beginMarker)
	}
	out := make([]byte, 0, len(doc)+len(tables))
	out = append(out, doc[:b]...)
	out = append(out, "\n\n"...)
	out = append(out, bytes.TrimSpace(tables)...)
	out = append(out, "\n\n"...)
	return append(out, doc[e:]...), nil
}

// SpliceFile replaces the tables between the bench markers of the page at
// path (docs/performance.md). The page is rewritten through a temporary
// file in its directory, so a failed run never leaves half a page.
func SpliceFile(path string, tables []byte) error {
	return spliceFile(path, tables, Splice)
}

// SpliceStormFile replaces the storm's section of the page at path, as
// SpliceFile does the tables.
func SpliceStormFile(path string, section []byte) error {
	return spliceFile(path, section, SpliceStorm)
}

func spliceFile(path string, tables []byte, splice func(doc, tables []byte) ([]byte, error)) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := splice(doc, tables)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-*.md")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Report is everything one run of the benchmark program measured.
type Report struct {
	Started time.Time
	Wall    time.Duration
	Quick   bool
	// Only are the parts that ran (Options.Only); empty: all of them.
	Only                  []string
	Runs                  int
	Machine               string
	LoadBefore, LoadAfter string

	Handle, Batch, Reconcile GoBench
	// GoResults are the results of Handle, Batch and Reconcile, merged
	// (benchmark names do not overlap).
	GoResults []BenchResults

	Packages []Package
	Cold     Cold

	Requests int
	Clients  []int
	Targets  []Target
	Loads    map[string][]Load

	FlowDuration time.Duration
	// FlowSystem says how make dev's system ran for the flows; FlowDrain
	// is how long a flow waits for the last jobs.
	FlowSystem string
	FlowDrain  time.Duration
	Flows      map[int][]Flow

	// StormSettings are the storm's sizes; Storms its runs.
	StormSettings StormSettings
	Storms        []Storm

	Notes []string
}

// ran reports whether the part was measured.
func (r *Report) ran(part string) bool {
	return len(r.Only) == 0 || slices.Contains(r.Only, part)
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) spread(name, unit string) Spread {
	for _, res := range r.GoResults {
		if _, ok := res[name]; ok {
			return res.Spread(name, unit)
		}
	}
	return Spread{}
}

// Markdown writes the report as the tables of docs/performance.md.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	kind := "make bench"
	if r.Quick {
		kind = "make bench-quick (shortened runs)"
	}
	p("Measured by `%s` on %s, %s; wall time %s. Load average %s before, %s after "+
		"(1, 5, 15 min; other builds were running when it is above 1). Each figure is the median of %d runs "+
		"with the smallest and largest in brackets.\n\n",
		kind, r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine, r.Wall.Round(time.Second), r.LoadBefore, r.LoadAfter, r.Runs)
	if len(r.Only) > 0 {
		p("Only these parts ran: %s.\n\n", strings.Join(r.Only, ", "))
	}

	if r.ran(PartGo) {
		r.handleTable(p)
	}
	if r.ran(PartIngest) {
		r.ingestTable(p)
	}
	if r.ran(PartFlow) {
		r.flowTable(p)
	}
	if r.ran(PartGo) {
		r.goTables(p)
	}
	r.lambdaTable(p)

	if len(r.Notes) > 0 {
		p("\nNotes from this run:\n\n")
		for _, n := range r.Notes {
			p("- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
}

func (r *Report) handleTable(p func(string, ...any)) {
	p("### 1. Ingest handler, in process\n\n`%s` (cached route, secret or signature check, body read and validation, "+
		"message encoding, the JSON log line; the queue send is an in-memory sink; one core).\n\n", r.Handle.Command())
	p("| mode | wall time / request | CPU time / request | allocations | bytes |\n|---|---|---|---|---|\n")
	for _, m := range []struct{ name, bench string }{{"static secret", "BenchmarkHandle/secret"}, {"HMAC signature", "BenchmarkHandle/hmac"}} {
		p("| %s | %s | %s | %s | %s |\n", m.name, r.spread(m.bench, "ns/op").Format(Micros), r.spread(m.bench, "cpu-ns/op").Format(Micros),
			r.spread(m.bench, "allocs/op").Format(Count), r.spread(m.bench, "B/op").Format(Count))
	}
}

func (r *Report) goTables(p func(string, ...any)) {
	p("\n### 4. Processor batch latency\n\n`%s`: one SQS batch of 10 new incidents, ServiceNow (the simulator) answering every call after 50 ms, "+
		"DynamoDB and SQS on the embedded emulator.\n\n", r.Batch.Command())
	p("| fetch concurrency | write-back | time / batch of 10 | DynamoDB calls / message |\n|---|---|---|---|\n")
	for _, b := range []struct{ conc, wb string }{{"5", "false"}, {"10", "false"}, {"10", "true"}} {
		name := fmt.Sprintf("BenchmarkBatch/concurrency=%s/write-back=%s", b.conc, b.wb)
		p("| %s | %s | %s | %s |\n", b.conc, map[string]string{"true": "on", "false": "off"}[b.wb],
			r.spread(name, "ns/op").Format(Millis), r.spread(name, "ddb-calls/msg").Format(Count))
	}

	p("\n### 5. Reconciler cost per run\n\n`%s`: one scheduled run of one gateway × table, page size 100, "+
		"behind an indexed Table API endpoint; DynamoDB and SQS on the embedded emulator.\n\n", r.Reconcile.Command())
	p("| records in table | changed since watermark | ServiceNow calls | pages | enqueued | time / run |\n|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		size, changed, pct string
	}{{"10 000", "10", "0.1"}, {"10 000", "100", "1.0"}, {"100 000", "100", "0.1"}, {"100 000", "1 000", "1.0"}} {
		name := fmt.Sprintf("BenchmarkRun/records=%s/changed=%s%%", strings.ReplaceAll(c.size, " ", ""), c.pct)
		p("| %s | %s (%s %%) | %s | %s | %s | %s |\n", c.size, c.changed, strings.TrimSuffix(c.pct, ".0"),
			r.spread(name, "calls/run").Format(Count), r.spread(name, "pages/run").Format(Count),
			r.spread(name, "enqueued/run").Format(Count), r.spread(name, "ns/op").Format(Millis))
	}
}

func (r *Report) loadSpread(key string, clients int, f func(Load) float64) Spread {
	var xs []float64
	for _, l := range r.Loads[loadKey(key, clients)] {
		xs = append(xs, f(l))
	}
	return SpreadOf(xs)
}

func pct(p float64) func(Load) float64 {
	return func(l Load) float64 { return float64(Percentile(l.Latencies, p)) }
}

func (r *Report) ingestTable(p func(string, ...any)) {
	p("\n### 2. Ingest over HTTP, closed loop\n\n%d requests per run and concurrency, each client sending its next "+
		"request when the previous one is answered (Go load generator in this process, keep-alive connections, "+
		"one static-secret webhook; messages go to an intake queue nobody consumes, purged between runs). "+
		"Rows in the order they ran; every run measures all of them.\n\n", r.Requests)
	if len(r.Targets) == 0 {
		p("Not measured (see notes).\n")
		return
	}
	for _, t := range r.Targets {
		p("- (%s) **%s**: %s\n", t.Key, t.Name, t.How)
	}
	p("\n| | clients | requests/s | p50 | p99 | p99.9 |\n|---|---|---|---|---|---|\n")
	for _, t := range r.Targets {
		for _, c := range r.Clients {
			p("| (%s) %s | %d | %s | %s | %s | %s |\n", t.Key, t.Name, c,
				r.loadSpread(t.Key, c, Load.Throughput).Format(Rate),
				r.loadSpread(t.Key, c, pct(50)).Format(Millis), r.loadSpread(t.Key, c, pct(99)).Format(Millis),
				r.loadSpread(t.Key, c, pct(99.9)).Format(Millis))
		}
	}
	p("\nRatios of the same run (median, min–max):\n\n| ratio | ")
	for _, c := range r.Clients {
		p("%d client(s) | ", c)
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(r.Clients)))
	for _, rt := range []struct{ num, den, what string }{
		{"c", "b", "handler path (c) / SendMessage ceiling (b) — goal ≥ 0.8 at 8 clients"},
		{"b", "a", "SendMessage ceiling (b) / HTTP ceiling (a)"},
		{"d", "c", "make dev route (d) / handler in process (c)"},
		{"d", "e", "make dev route (d) / direct Invoke (e)"},
	} {
		p("| %s | ", rt.what)
		for _, c := range r.Clients {
			p("%s | ", r.ratio(rt.num, rt.den, c).Format(Ratio))
		}
		p("\n")
	}
	p("\nWhere the make dev route's time goes, from medians at 1 client (one request in flight): ")
	lat := func(k string) float64 { return r.loadSpread(k, 1, pct(50)).Median }
	a, b, bp, c, e, d := lat("a"), lat("b"), lat("b′"), lat("c"), lat("e"), lat("d")
	p("the HTTP request itself %s, the queue send %s (%s through make dev's proxy), "+
		"the handler's own work and its route cache about %s, the emulator's Invoke and Runtime API hop to the bootstrap process "+
		"and back about %s, the front and the emulator's HTTP API about %s. ",
		Millis(a), Millis(b), Millis(bp), Millis(max(c-a-b, 0)), Millis(max(e-c+a, 0)), Millis(max(d-e, 0)))
	p("With more clients the route is bounded by one bootstrap process serving one event at a time, " +
		"as one Lambda execution environment does; AWS would add environments.\n")
}

func (r *Report) ratio(num, den string, clients int) Spread {
	n, d := r.Loads[loadKey(num, clients)], r.Loads[loadKey(den, clients)]
	var xs []float64
	for i := range min(len(n), len(d)) {
		if dt := d[i].Throughput(); dt > 0 {
			xs = append(xs, n[i].Throughput()/dt)
		}
	}
	return SpreadOf(xs)
}

func (r *Report) flowTable(p func(string, ...any)) {
	p("\n### 3. Webhook to dispatch\n\nThe ServiceNow simulator creates incidents at a fixed rate for %s (open loop), "+
		"each matching the demo gateway, in make dev's whole system: its Business Rule script (goja) calls the webhook, "+
		"front → HTTP API → ingest bootstrap → intake queue → event source (batches of up to 10, no batching window, as deployed) → "+
		"processor bootstrap (fetch, claim, dispatch, write-back work note, whose echo comes back as `unchanged`). "+
		"Latency: from sending the create request to the job's SentTimestamp on the dispatch queue. "+
		"Missing: records without a job %s after the last one was created; webhook calls that failed are lost by design "+
		"(ServiceNow does not retry them), so after that wait the reconciler runs once and the records whose job then arrives "+
		"are counted as recovered (not in the latencies). "+
		"Polling: the same records with a poll every 2 minutes at every phase (1 s steps) plus the record's own processing time.\n\n", r.FlowDuration, r.FlowDrain)
	if len(r.Flows) == 0 {
		p("Not measured (see notes).\n")
		return
	}
	if r.FlowSystem != "" {
		p("make dev's system: %s.\n\n", r.FlowSystem)
	}
	p("| rate | records | p50 | p99 | max | missing | webhook calls failed | recovered by the reconciler | polling: mean | polling: worst |\n" +
		"|---|---|---|---|---|---|---|---|---|---|\n")
	rates := make([]int, 0, len(r.Flows))
	for rate := range r.Flows {
		rates = append(rates, rate)
	}
	slices.Sort(rates)
	for _, rate := range rates {
		var n, p50, p99, mx, missing, failed, recovered, pmean, pworst []float64
		for _, f := range r.Flows[rate] {
			failed = append(failed, float64(f.Webhooks.Failures()))
			recovered = append(recovered, float64(f.Recovered))
			n = append(n, float64(len(f.Created)))
			p50 = append(p50, float64(Percentile(f.Latencies, 50)))
			p99 = append(p99, float64(Percentile(f.Latencies, 99)))
			mx = append(mx, float64(Percentile(f.Latencies, 100)))
			missing = append(missing, float64(f.Missing))
			created, proc := f.pairs()
			m, w := Polling(created, proc, 2*time.Minute, 120)
			pmean, pworst = append(pmean, float64(m)), append(pworst, float64(w))
		}
		p("| %d/s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rate, SpreadOf(n).Format(Count), SpreadOf(p50).Format(Millis),
			SpreadOf(p99).Format(Millis), SpreadOf(mx).Format(Millis), SpreadOf(missing).Format(Count),
			SpreadOf(failed).Format(Count), SpreadOf(recovered).Format(Count),
			SpreadOf(pmean).Format(Seconds), SpreadOf(pworst).Format(Seconds))
	}
	p("\nGoal: p99 under %d ms at 10 and 100 records/s, no record missing. %s\n", FlowP99Target.Milliseconds(), r.flowVerdict(rates))
	r.flowFindings(p, rates)
}

// FlowP99Target is the goal of the webhook-to-dispatch latency at 99 %.
const FlowP99Target = 250 * time.Millisecond

// flowVerdict says whether every run met the goal, and which did not.
func (r *Report) flowVerdict(rates []int) string {
	var misses []string
	for _, rate := range rates {
		for i, f := range r.Flows[rate] {
			p99 := Percentile(f.Latencies, 99)
			if p99 >= FlowP99Target || f.Missing > 0 {
				misses = append(misses, fmt.Sprintf("%d/s run %d: p99 %s, %d missing", rate, i+1, Millis(float64(p99)), f.Missing))
			}
		}
	}
	if len(misses) == 0 {
		return "Met in every run."
	}
	return "Not met: " + strings.Join(misses, "; ") + "."
}

// flowFindings sums up, over every run, what became of the webhook calls
// and the records that were missing.
func (r *Report) flowFindings(p func(string, ...any), rates []int) {
	for _, rate := range rates {
		var sent, accepted, still, intakeDLQ, dispatchDLQ int
		reasons, statuses, errs := map[string]int{}, map[int]int{}, map[string]int{}
		for _, f := range r.Flows[rate] {
			sent += f.Webhooks.Sent
			accepted += f.MissingAccepted
			still += f.StillMissing
			intakeDLQ, dispatchDLQ = intakeDLQ+max(f.IntakeDLQ, 0), dispatchDLQ+max(f.DispatchDLQ, 0)
			for k, v := range f.Webhooks.Failed {
				reasons[k] += v
			}
			for k, v := range f.Webhooks.Status {
				statuses[k] += v
			}
			for k, v := range f.Errors {
				errs[k] += v
			}
		}
		p("\nAt %d/s, all %d runs: %d webhook calls (records and write-back echoes)", rate, len(r.Flows[rate]), sent)
		var parts []string
		for _, k := range sortedKeys(reasons) {
			parts = append(parts, fmt.Sprintf("%d %s", reasons[k], k))
		}
		codes := make([]int, 0, len(statuses))
		for c := range statuses {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			if c/100 != 2 {
				parts = append(parts, fmt.Sprintf("%d answered %d", statuses[c], c))
			}
		}
		if len(parts) == 0 {
			p(", none failed")
		} else {
			p(", failed: %s", strings.Join(parts, "; "))
		}
		p("; missing records whose webhook ingest had accepted: %d; never dispatched even after the reconciler: %d; "+
			"dead letters: intake %d, dispatch %d", accepted, still, intakeDLQ, dispatchDLQ)
		if len(errs) > 0 {
			var es []string
			for _, k := range sortedKeys(errs) {
				es = append(es, fmt.Sprintf("%s (%d)", k, errs[k]))
			}
			p("; warnings and errors logged: %s", strings.Join(es, ", "))
		}
		p(".\n")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pairs are the creation times of the dispatched records, in order, with
// each one's latency.
func (f Flow) pairs() ([]time.Time, []time.Duration) {
	type rec struct {
		t time.Time
		d time.Duration
	}
	var recs []rec
	for id, t := range f.Created {
		if d, ok := f.latency[id]; ok {
			recs = append(recs, rec{t, d})
		}
	}
	slices.SortFunc(recs, func(a, b rec) int { return a.t.Compare(b.t) })
	ts, ds := make([]time.Time, len(recs)), make([]time.Duration, len(recs))
	for i, x := range recs {
		ts[i], ds[i] = x.t, x.d
	}
	return ts, ds
}

// Seconds formats nanoseconds as seconds.
func Seconds(ns float64) string { return fmt.Sprintf("%.1f s", ns/1e9) }

func (r *Report) lambdaTable(p func(string, ...any)) {
	p("\n### 6. Lambda packages and cold start\n\nPackages: `linux/arm64`, `CGO_ENABLED=0`, `-trimpath -tags lambda.norpc -ldflags='-s -w'`, " +
		"the bootstrap deflated into a zip as `make build` does. Cold start: the same flags built for this machine, " +
		"from starting the process until it asks the Runtime API for its first event (configuration read, AWS clients built), " +
		"on the embedded emulator's Runtime API (make dev) and under the AWS Lambda runtime interface emulator " +
		"(the duration of its INIT REPORT log line).\n\n")
	if len(r.Packages) == 0 {
		p("Not measured (see notes).\n")
		return
	}
	p("| function | zipped | unzipped | cold start, emulator | cold start, RIE |\n|---|---|---|---|---|\n")
	ds := func(d []time.Duration) Spread {
		xs := make([]float64, len(d))
		for i, x := range d {
			xs[i] = float64(x)
		}
		return SpreadOf(xs)
	}
	for _, pk := range r.Packages {
		p("| %s | %s | %s | %s | %s |\n", pk.Function, Bytes(float64(pk.Zipped)), Bytes(float64(pk.Unzipped)),
			ds(r.Cold.Kumo[pk.Function]).Format(Millis), ds(r.Cold.RIE[pk.Function]).Format(Millis))
	}
}
