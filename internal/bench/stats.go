// Package bench measures snowgate on one machine next to the baselines that
// matter to its users: the HTTP and queue ceilings of the machine, a polling
// integration, the Lambda packages' cold starts. It drives the repository's
// own go benchmarks, a closed-loop HTTP load generator, the whole local
// system (make dev's route) and the AWS runtime interface emulator, repeats
// every measurement and renders one Markdown report.
//
// Nothing here asserts a time: figures are printed with how they were
// measured, and ratios are taken between measurements of the same run.
package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it. No interpolation: every reported latency is one that a
// request actually had. Zero for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Spread is a figure measured in several runs: the median run's value with
// the smallest and largest.
type Spread struct {
	Median, Min, Max float64
	// N is the number of runs.
	N int
}

// SpreadOf summarises repeated measurements. The median of an even count is
// the mean of the two middle values.
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	med := s[mid]
	if len(s)%2 == 0 {
		med = (s[mid-1] + s[mid]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Format renders the spread with format applied to each value:
// "median (min–max)", or just the median for a single run.
func (s Spread) Format(format func(float64) string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return format(s.Median)
	}
	med, lo, hi := format(s.Median), format(s.Min), format(s.Max)
	// The unit is said once: "19 000/s (18 000–21 000)".
	if u := unit(med); u != "" && unit(lo) == u && unit(hi) == u {
		lo, hi = strings.TrimSuffix(lo, u), strings.TrimSuffix(hi, u)
	}
	return fmt.Sprintf("%s (%s–%s)", med, lo, hi)
}

// unit is what follows the last digit of a formatted figure.
func unit(s string) string {
	i := strings.LastIndexAny(s, "0123456789")
	return s[i+1:]
}

// Millis formats nanoseconds as milliseconds, with a precision that suits
// the size.
func Millis(ns float64) string {
	ms := ns / 1e6
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// Micros formats nanoseconds as microseconds.
func Micros(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1e3) }

// Rate formats a per-second figure with a thin thousands separator.
func Rate(v float64) string { return thousands(int64(math.Round(v))) + "/s" }

// Count formats a plain number.
func Count(v float64) string {
	if v == math.Trunc(v) {
		return thousands(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// Bytes formats a size in MB (10^6 bytes, as docs/performance.md states sizes).
func Bytes(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }

// Ratio formats a ratio.
func Ratio(v float64) string { return fmt.Sprintf("%.2f", v) }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
