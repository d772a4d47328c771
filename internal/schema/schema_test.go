package schema_test

import (
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/schema"
)

func TestRetryReceives(t *testing.T) {
	tests := []struct {
		name                 string
		horizon, base, limit time.Duration
		want                 int
	}{
		{name: "defaults", horizon: 24 * time.Hour, base: time.Minute, limit: time.Hour, want: 53},
		{name: "shorter than the first wait", horizon: 10 * time.Second, base: time.Minute, limit: time.Hour, want: 1},
		{name: "exactly the first wait", horizon: 30 * time.Second, base: time.Minute, limit: time.Hour, want: 2},
		{name: "cap reached at once", horizon: 10 * time.Minute, base: 2 * time.Minute, limit: 2 * time.Minute, want: 11},
	}
	for _, tt := range tests {
		if got := schema.RetryReceives(tt.horizon, tt.base, tt.limit); got != tt.want {
			t.Errorf("%s: RetryReceives(%s, %s, %s) = %d, want %d", tt.name, tt.horizon, tt.base, tt.limit, got, tt.want)
		}
	}
}

// TestConsumedQueuesOutliveTheHorizon: a message retried until the horizon
// is dead-lettered, never dropped by the queue's retention first (the
// last wait may reach SQS's 12 h ceiling past the horizon), and the redrive
// count is the computed one on every queue snowgate consumes.
func TestConsumedQueuesOutliveTheHorizon(t *testing.T) {
	for _, q := range []schema.Queue{schema.Intake, schema.Results} {
		if q.MaxReceiveCount != schema.ConsumerMaxReceiveCount {
			t.Errorf("%s: MaxReceiveCount = %d, want %d", q.ID, q.MaxReceiveCount, schema.ConsumerMaxReceiveCount)
		}
		if limit := schema.RetryHorizon + 12*time.Hour; q.Retention <= limit {
			t.Errorf("%s: retention %s, want more than %s", q.ID, q.Retention, limit)
		}
		if q.MaxReceiveCount > 1000 {
			t.Errorf("%s: MaxReceiveCount %d beyond SQS's 1000", q.ID, q.MaxReceiveCount)
		}
	}
	if schema.ConsumerMaxReceiveCount != 63 {
		t.Errorf("ConsumerMaxReceiveCount = %d, want 63 (the documented figure)", schema.ConsumerMaxReceiveCount)
	}
}
