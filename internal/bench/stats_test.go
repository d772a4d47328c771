package bench

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99.9, 7},
		{"median of 100", hundred, 50, 50},
		{"p99 of 100", hundred, 99, 99},
		{"p99.9 of 100 is the maximum", hundred, 99.9, 100},
		{"p100", hundred, 100, 100},
		{"tiny p is the minimum", hundred, 0.001, 1},
		{"median of 4 is the lower middle", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p75 of 4", []time.Duration{1, 2, 3, 4}, 75, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want Spread
	}{
		{"none", nil, Spread{}},
		{"one", []float64{3}, Spread{Median: 3, Min: 3, Max: 3, N: 1}},
		{"odd count, unsorted", []float64{9, 1, 5}, Spread{Median: 5, Min: 1, Max: 9, N: 3}},
		{"even count averages the middle", []float64{4, 1, 3, 10}, Spread{Median: 3.5, Min: 1, Max: 10, N: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, SpreadOf(tt.xs)); diff != "" {
				t.Errorf("SpreadOf(%v) mismatch (-want +got):\n%s", tt.xs, diff)
			}
		})
	}
}

func TestSpreadFormat(t *testing.T) {
	tests := []struct {
		name string
		s    Spread
		want string
	}{
		{"no runs", Spread{}, "—"},
		{"one run", SpreadOf([]float64{1500}), "1 500/s"},
		{"equal runs", SpreadOf([]float64{2, 2, 2}), "2/s"},
		{"range", SpreadOf([]float64{19000.4, 18000, 21000}), "19 000/s (18 000–21 000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Format(Rate); got != tt.want {
				t.Errorf("Format = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"sub-millisecond", Millis(412_000), "0.41 ms"},
		{"milliseconds", Millis(12_340_000), "12.3 ms"},
		{"hundreds of ms", Millis(1_234_000_000), "1234 ms"},
		{"micros", Micros(9_250), "9.2 µs"},
		{"negative count", Count(-1234567), "-1 234 567"},
		{"fractional count", Count(2.5), "2.5"},
		{"megabytes", Bytes(10_400_000), "10.4 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestClosedLoop(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		clients     int
		total       int
		failEvery   int64
		wantOK      int
		wantErrors  int
		wantClients int
	}{
		{"one client", 1, 50, 0, 50, 0, 1},
		{"many clients share the total exactly", 8, 1001, 0, 1001, 0, 8},
		{"more clients than requests", 64, 10, 0, 10, 0, 10},
		{"failures are counted, not timed", 4, 100, 10, 90, 10, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls, inFlight, maxInFlight atomic.Int64
			l := ClosedLoop(t.Context(), tt.clients, tt.total, func(context.Context) error {
				n := calls.Add(1)
				cur := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					m := maxInFlight.Load()
					if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
						break
					}
				}
				if tt.failEvery > 0 && n%tt.failEvery == 0 {
					return errBoom
				}
				return nil
			})
			if got := int(calls.Load()); got != tt.total {
				t.Errorf("requests sent = %d, want %d", got, tt.total)
			}
			if len(l.Latencies) != tt.wantOK || l.Errors != tt.wantErrors {
				t.Errorf("ok, errors = %d, %d, want %d, %d", len(l.Latencies), l.Errors, tt.wantOK, tt.wantErrors)
			}
			if tt.wantErrors > 0 && !errors.Is(l.FirstErr, errBoom) {
				t.Errorf("FirstErr = %v, want %v", l.FirstErr, errBoom)
			}
			if l.Clients != tt.wantClients {
				t.Errorf("Clients = %d, want %d", l.Clients, tt.wantClients)
			}
			if got := maxInFlight.Load(); got > int64(tt.wantClients) {
				t.Errorf("requests in flight reached %d, more than %d clients", got, tt.wantClients)
			}
			for i := 1; i < len(l.Latencies); i++ {
				if l.Latencies[i] < l.Latencies[i-1] {
					t.Fatalf("latencies not sorted at %d", i)
				}
			}
		})
	}
}

func TestClosedLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var calls atomic.Int64
	l := ClosedLoop(ctx, 2, 1_000_000, func(context.Context) error {
		if calls.Add(1) == 100 {
			cancel()
		}
		return nil
	})
	if n := len(l.Latencies); n >= 1_000_000 || n < 100 {
		t.Errorf("completed %d requests after cancelling at the 100th, want between 100 and a few more", n)
	}
}
