package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const benchOutput = `goos: linux
goarch: amd64
pkg: github.com/snowgate/snowgate/internal/ingest
cpu: AMD EPYC
BenchmarkHandle/secret         	  100000	      8249 ns/op	      8285 cpu-ns/op	    1216 B/op	      17 allocs/op
BenchmarkHandle/secret         	  100000	      9482 ns/op	      8524 cpu-ns/op	    1216 B/op	      17 allocs/op
BenchmarkRun/records=10000/changed=0.1%-2         	      10	   5913699 ns/op	         2.000 calls/run
BenchmarkRun/records=10000/changed=0.1%-2         	SDK 2026/11/27 04:24:55 WARN failed to discard
      10	   4996054 ns/op	         2.000 calls/run
BenchmarkBroken 	 12	 notanumber ns/op
PASS
ok  	github.com/snowgate/snowgate/internal/ingest	5.744s
`

func TestParseBench(t *testing.T) {
	got := ParseBench(strings.NewReader(benchOutput))
	want := BenchResults{
		"BenchmarkHandle/secret": {
			{"ns/op": 8249, "cpu-ns/op": 8285, "B/op": 1216, "allocs/op": 17},
			{"ns/op": 9482, "cpu-ns/op": 8524, "B/op": 1216, "allocs/op": 17},
		},
		"BenchmarkRun/records=10000/changed=0.1%": {
			{"ns/op": 5913699, "calls/run": 2},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseBench mismatch (-want +got):\n%s", diff)
	}
	if s := got.Spread("BenchmarkHandle/secret", "ns/op"); s.Min != 8249 || s.Max != 9482 || s.N != 2 {
		t.Errorf("Spread(ns/op) = %+v, want min 8249, max 9482 over 2 runs", s)
	}
	if s := got.Spread("BenchmarkMissing", "ns/op"); s.N != 0 {
		t.Errorf("Spread of a missing benchmark = %+v, want no runs", s)
	}
}

func TestGoBenchCommand(t *testing.T) {
	g := GoBench{Pkg: "./internal/ingest/", Bench: "BenchmarkHandle", Benchtime: "1000x", Count: 3, CPU: "1"}
	want := "go test -run='^$' -bench='BenchmarkHandle' -benchmem -benchtime=1000x -count=3 -cpu=1 ./internal/ingest/"
	if got := g.Command(); got != want {
		t.Errorf("Command() = %q, want %q", got, want)
	}
}
