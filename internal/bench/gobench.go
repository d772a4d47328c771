package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// GoBench is one `go test -bench` invocation of a package's benchmark.
type GoBench struct {
	Pkg   string // "./internal/ingest/"
	Bench string // a -bench pattern
	// Benchtime and Count are passed as -benchtime and -count.
	Benchtime string
	Count     int
	// CPU, when set, is passed as -cpu.
	CPU string
}

// Command is the shell command a reader can run to repeat the measurement.
func (g GoBench) Command() string {
	return "go test " + strings.Join(g.args(), " ")
}

func (g GoBench) args() []string {
	a := []string{"-run='^$'", "-bench='" + g.Bench + "'", "-benchmem",
		"-benchtime=" + g.Benchtime, "-count=" + strconv.Itoa(g.Count)}
	if g.CPU != "" {
		a = append(a, "-cpu="+g.CPU)
	}
	return append(a, g.Pkg)
}

// Run runs the benchmark in dir (the module root) and parses its results.
func (g GoBench) Run(ctx context.Context, dir string) (BenchResults, error) {
	args := g.args()
	for i, a := range args {
		// The shell quotes of Command are not wanted on a direct exec.
		args[i] = strings.ReplaceAll(a, "'", "")
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	// Separate streams: SDK warnings on stderr would split result lines.
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s%s", g.Command(), err, tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
	res := ParseBench(&stdout)
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results in its output", g.Command())
	}
	return res, nil
}

// BenchResults holds, per benchmark name (without the -GOMAXPROCS suffix),
// one map of unit → value per run (-count).
type BenchResults map[string][]map[string]float64

// Spread is the spread of one unit of one benchmark over its runs.
func (r BenchResults) Spread(name, unit string) Spread {
	var xs []float64
	for _, run := range r[name] {
		if v, ok := run[unit]; ok {
			xs = append(xs, v)
		}
	}
	return SpreadOf(xs)
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseBench reads the result lines of `go test -bench` output:
// "BenchmarkX/sub-2   100   8249 ns/op   1216 B/op ...". Other lines are
// ignored.
func ParseBench(r io.Reader) BenchResults {
	res := BenchResults{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		run := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				run = nil
				break
			}
			run[f[i+1]] = v
		}
		if run == nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(f[0], "")
		res[name] = append(res[name], run)
	}
	return res
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
