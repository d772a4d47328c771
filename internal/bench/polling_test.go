package bench

import (
	"testing"
	"time"
)

func TestPolling(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		created    []time.Time
		processing []time.Duration
		cycle      time.Duration
		phases     int
		wantMean   time.Duration
		wantWorst  time.Duration
	}{
		{"none", nil, nil, time.Minute, 4, 0, 0},
		{"one record, four phases: waits 0, 30, 60, 90 s", []time.Time{t0}, nil, 2 * time.Minute, 4, 45 * time.Second, 90 * time.Second},
		{"processing is added", []time.Time{t0}, []time.Duration{time.Second}, 2 * time.Minute, 4, 46 * time.Second, 91 * time.Second},
		{"a later record waits until the next tick", []time.Time{t0, t0.Add(10 * time.Second)}, nil, 2 * time.Minute, 1,
			55 * time.Second, 110 * time.Second},
		{"records a cycle apart wait alike", []time.Time{t0, t0.Add(2 * time.Minute)}, nil, 2 * time.Minute, 2, 30 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mean, worst := Polling(tt.created, tt.processing, tt.cycle, tt.phases)
			if mean != tt.wantMean || worst != tt.wantWorst {
				t.Errorf("Polling = mean %v, worst %v; want %v, %v", mean, worst, tt.wantMean, tt.wantWorst)
			}
		})
	}
}
