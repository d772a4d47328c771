package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/registry"
)

func at(base time.Time, secs ...float64) []time.Time {
	out := make([]time.Time, len(secs))
	for i, s := range secs {
		out[i] = base.Add(time.Duration(s * float64(time.Second)))
	}
	return out
}

func TestMaxInWindow(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		times []float64
		want  int
	}{
		{"none", nil, 0},
		{"one", []float64{5}, 1},
		{"all within a minute", []float64{0, 10, 59.9}, 3},
		{"exactly a minute apart is two windows", []float64{0, 60}, 1},
		{"the window slides past clock minutes", []float64{0, 50, 55, 59, 61, 65, 100}, 6},
		{"a burst at the end", []float64{0, 1, 2, 200, 200, 200, 200}, 4},
		{"equal times", []float64{3, 3, 3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxInWindow(at(base, tt.times...), time.Minute); got != tt.want {
				t.Errorf("MaxInWindow(%v) = %d, want %d", tt.times, got, tt.want)
			}
		})
	}
}

func TestPerWindow(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	got := PerWindow(at(base, 0.5, 1, 2.5, 3, 3.5), base, 5*time.Second, 2*time.Second)
	// Windows (s−2, s] for s = 1…5.
	want := []int{2, 2, 2, 3, 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PerWindow (-want +got):\n%s", diff)
	}
	if got := PerWindow(nil, base, 1500*time.Millisecond, time.Minute); !cmp.Equal(got, []int{0, 0}) {
		t.Errorf("PerWindow(none) = %v, want [0 0]", got)
	}
}

func TestStormLine(t *testing.T) {
	s := Storm{Settings: StormSettings{QuotaPerMin: 600}, Changes: 1500, Calls: 2100, MaxCallsPerMin: 587,
		HTTP429: 3, DeadLetters: 0, Lost: 1, Drained: true, Drain: 162400 * time.Millisecond}
	want := "storm: changes=1500 quota_per_min=600 max_calls_per_min=587 calls_per_change=1.40 http_429=3 dead_letters=0 lost=1 drain_s=162"
	if got := s.Line(); got != want {
		t.Errorf("Line() =\n%s\nwant\n%s", got, want)
	}
	if got := (Storm{}).Line(); !strings.Contains(got, "calls_per_change=0.00") {
		t.Errorf("Line() of no changes = %q, want calls_per_change=0.00", got)
	}
}

func TestStormMisses(t *testing.T) {
	ok := Storm{Settings: StormSettings{QuotaPerMin: 600}, Changes: 1200, Calls: 1200, MaxCallsPerMin: 600,
		Drained: true, Drain: 125 * time.Second}
	if m := ok.Misses(); len(m) != 0 {
		t.Errorf("Misses() = %q, want none (drain 125 s within 10 %% of 120 s)", m)
	}
	bad := ok
	bad.Lost, bad.DeadLetters, bad.MaxCallsPerMin, bad.Calls, bad.Drain = 2, 1, 601, 2400, 140*time.Second
	want := []string{"2 records lost", "1 dead letters", "601 calls in a minute, quota 600", "2.00 calls per change",
		"drain 140 s, changes ÷ quota 120 s"}
	if diff := cmp.Diff(want, bad.Misses()); diff != "" {
		t.Errorf("Misses() (-want +got):\n%s", diff)
	}
	undrained := ok
	undrained.Drained = false
	if m := undrained.Misses(); len(m) != 1 || !strings.HasPrefix(m[0], "not drained") {
		t.Errorf("Misses() of an undrained storm = %q, want not drained", m)
	}
}

func TestBudgetBelow(t *testing.T) {
	for _, q := range []int{10, 60, 120, 600, 1000} {
		rate := BudgetBelow(q)
		if perMin := rate/60 + registry.BurstFor(rate); perMin > q {
			t.Errorf("BudgetBelow(%d) = %d/h: %d a minute with its burst, over the quota", q, rate, perMin)
		}
		if rate <= 0 {
			t.Errorf("BudgetBelow(%d) = %d, want a rate", q, rate)
		}
	}
	if got := BudgetBelow(600); got/60 < 550 {
		t.Errorf("BudgetBelow(600) = %d/h, want most of the quota (at least 550 a minute)", got)
	}
}

func TestPlanStorm(t *testing.T) {
	set := StormSettings{Records: 20, Updates: 3, Duration: time.Minute}
	plan := planStorm(set, 7)
	if len(plan) != 80 {
		t.Fatalf("planStorm: %d changes, want 80", len(plan))
	}
	next := map[int]int{}
	var last time.Duration
	for _, p := range plan {
		if p.at < last {
			t.Fatalf("planStorm: change at %v after one at %v", p.at, last)
		}
		last = p.at
		if p.update != next[p.record] {
			t.Fatalf("planStorm: record %d gets change %d, want %d", p.record, p.update, next[p.record])
		}
		next[p.record]++
		if p.at > set.Duration {
			t.Errorf("planStorm: change at %v, after the storm's %v", p.at, set.Duration)
		}
	}
}

// svgDoc checks that the chart is well-formed XML and returns its
// polylines' point lists and its texts.
func svgDoc(t *testing.T, b []byte) (lines []string, texts []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	inText := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inText = e.Name.Local == "text"
			if e.Name.Local == "polyline" {
				for _, a := range e.Attr {
					if a.Name.Local == "points" {
						lines = append(lines, a.Value)
					}
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return lines, texts
}

func TestChartWriteSVG(t *testing.T) {
	c := Chart{Title: "A & B <test>", XLabel: "s", YLabel: "n", Width: 400, Height: 300, Series: []ChartSeries{
		{Name: "up", Color: "#f00", Points: []ChartPoint{{0, 0}, {10, 100}}},
		{Name: "flat", Color: "#0f0", Dashed: true, Points: []ChartPoint{{0, 50}, {10, 50}}},
		{Name: "empty", Color: "#00f"},
	}}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	lines, texts := svgDoc(t, b.Bytes())
	// Plot area: x 64…380, y 40…204 (300 − 96); axes end at 10 and 100.
	want := []string{"64.0,204.0 380.0,40.0", "64.0,122.0 380.0,122.0"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("polylines (-want +got):\n%s", diff)
	}
	for _, w := range []string{"A & B <test>", "up", "flat", "empty", "0", "100", "10"} {
		found := false
		for _, x := range texts {
			found = found || x == w
		}
		if !found {
			t.Errorf("no text %q in the chart; texts: %q", w, texts)
		}
	}
	if !strings.Contains(b.String(), `stroke-dasharray`) {
		t.Error("the dashed series is not dashed")
	}
}

func TestChartWriteSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := (Chart{Title: "nothing"}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if lines, _ := svgDoc(t, b.Bytes()); len(lines) != 0 {
		t.Errorf("an empty chart draws %d lines", len(lines))
	}
}

func TestNiceAxis(t *testing.T) {
	tests := []struct{ top, step, end float64 }{
		{0, 1, 1}, {7, 1, 7}, {100, 20, 100}, {587, 100, 600}, {1234, 200, 1400}, {0.3, 0.05, 0.3},
	}
	for _, tt := range tests {
		step, end := niceAxis(tt.top)
		if !approx(step, tt.step) || !approx(end, tt.end) {
			t.Errorf("niceAxis(%v) = %v, %v, want %v, %v", tt.top, step, end, tt.step, tt.end)
		}
	}
}

func approx(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

func TestStormChart(t *testing.T) {
	s := Storm{Settings: StormSettings{QuotaPerMin: 600}, Changes: 10, Started: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Series: StormSeries{Backlog: []StormSample{{At: time.Second, Backlog: 5}, {At: 3 * time.Second, Backlog: 0}}, CallsPerMin: []int{1, 2}}}
	c := StormChart(s)
	if len(c.Series) != 4 {
		t.Fatalf("StormChart: %d series, want backlog, calls, 429s and quota", len(c.Series))
	}
	if diff := cmp.Diff([]ChartPoint{{0, 600}, {3, 600}}, c.Series[3].Points); diff != "" {
		t.Errorf("quota line (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ChartPoint{{1, 1}, {2, 2}}, c.Series[1].Points); diff != "" {
		t.Errorf("calls per minute (-want +got):\n%s", diff)
	}
}

func TestSpliceStorm(t *testing.T) {
	doc := []byte("a\n" + BeginMarker + "\nold\n" + EndMarker + "\nb\n" + StormBeginMarker + "\nold storm\n" + StormEndMarker + "\nc\n")
	out, err := SpliceStorm(doc, []byte("new storm"))
	if err != nil {
		t.Fatal(err)
	}
	want := "a\n" + BeginMarker + "\nold\n" + EndMarker + "\nb\n" + StormBeginMarker + "\n\nnew storm\n\n" + StormEndMarker + "\nc\n"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("SpliceStorm (-want +got):\n%s", diff)
	}
	if _, err := SpliceStorm([]byte("no markers"), nil); err == nil {
		t.Error("SpliceStorm of a page without storm markers: no error")
	}
}

func TestStormMarkdown(t *testing.T) {
	s := Storm{Settings: StormSettings{QuotaPerMin: 600, Records: 2, Updates: 1, RatePerHour: 34020, MaxConcurrency: 4},
		Changes: 4, Calls: 6, MaxCallsPerMin: 6, Drained: true, Drain: 10 * time.Second, CallsByKind: map[string]int{"GET incident record → 200": 6}}
	for _, tt := range []struct {
		name  string
		rep   Report
		cmd   string
		noPlt bool
	}{
		{"full run", Report{Storms: []Storm{s}}, "Measured by `make bench` on", false},
		{"storm alone", Report{Only: []string{PartStorm}, Storms: []Storm{s}}, "Measured by `bin/snowgate-bench -only storm` (make bench's storm)", false},
		{"quick, no plot", Report{Quick: true, Storms: []Storm{s}}, "Measured by `make bench-quick` (the shortened storm)", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			svg := "storm.svg"
			if tt.noPlt {
				svg = ""
			}
			tt.rep.StormMarkdown(&b, svg)
			out := b.String()
			for _, want := range []string{"### 7. Storm", tt.cmd, s.Line(), "| 1 | 4 (0, 0) | 600 | 34020/h, 4 at once | 6 | 1.50 |"} {
				if !strings.Contains(out, want) {
					t.Errorf("StormMarkdown lacks %q:\n%s", want, out)
				}
			}
			if got := strings.Contains(out, "](storm.svg)"); got == tt.noPlt {
				t.Errorf("StormMarkdown with svg %q: plot linked = %v", svg, got)
			}
		})
	}
	var b bytes.Buffer
	(&Report{}).StormMarkdown(&b, "storm.svg")
	if !strings.Contains(b.String(), "Not measured") {
		t.Errorf("StormMarkdown without runs = %q, want Not measured", b.String())
	}
}

func TestCallLog(t *testing.T) {
	l := &callLog{window: time.Minute}
	h := l.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "600")
		if r.Method == http.MethodPatch {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	// The admin endpoints are neither logged nor rewritten.
	for _, r := range []struct{ method, path, limit string }{
		{http.MethodGet, "/api/now/table/incident/0123", "36000"},
		{http.MethodPatch, "/api/now/table/incident/0123", "36000"},
		{http.MethodGet, "/api/now/table/sys_journal_field?sysparm_query=x", "36000"},
		{http.MethodGet, "/sim/stats", "600"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(r.method, r.path, nil))
		if got := w.Header().Get("X-RateLimit-Limit"); got != r.limit {
			t.Errorf("%s %s: X-RateLimit-Limit %q, want %s", r.method, r.path, got, r.limit)
		}
	}
	var got []string
	for _, c := range l.snapshot() {
		got = append(got, fmt.Sprintf("%s %d", c.kind, c.status))
	}
	want := []string{"GET incident record 200", "PATCH incident record 429", "GET sys_journal_field 200"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("logged requests (-want +got):\n%s", diff)
	}
}
