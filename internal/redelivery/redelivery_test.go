package redelivery_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
)

// low and high draw every jitter at one end of its range.
func low(int64) int64    { return 0 }
func high(n int64) int64 { return n - 1 }

func TestWait(t *testing.T) {
	p := redelivery.Policy{Base: time.Minute, Cap: time.Hour}
	tests := []struct {
		name       string
		jitter     func(int64) int64
		receive    int
		retryAfter time.Duration
		maxWait    time.Duration
		want       time.Duration
	}{
		{name: "first failure, short end", jitter: low, receive: 1, want: 30 * time.Second},
		{name: "first failure, long end", jitter: high, receive: 1, want: time.Minute},
		{name: "doubles", jitter: high, receive: 4, want: 8 * time.Minute},
		{name: "capped", jitter: high, receive: 9, want: time.Hour},
		{name: "capped, short end", jitter: low, receive: 30, want: 30 * time.Minute},
		{name: "no overflow far out", jitter: high, receive: 1 << 20, want: time.Hour},
		{name: "missing count is the first", jitter: high, receive: 0, want: time.Minute},
		{name: "Retry-After longer than the backoff", jitter: low, receive: 1, retryAfter: 3600 * time.Second, want: time.Hour},
		{name: "Retry-After with jitter", jitter: high, receive: 1, retryAfter: time.Hour, want: time.Hour + 30*time.Second},
		{name: "Retry-After shorter than the backoff", jitter: low, receive: 7, retryAfter: 5 * time.Second, want: 30 * time.Minute},
		{name: "Retry-After past SQS's ceiling", jitter: low, receive: 1, retryAfter: 20 * time.Hour, want: redelivery.MaxVisibility},
		{name: "Retry-After past MaxWait", jitter: low, receive: 1, retryAfter: time.Hour, maxWait: 10 * time.Minute, want: 10 * time.Minute},
	}
	for _, tt := range tests {
		q := p
		q.Jitter, q.MaxWait = tt.jitter, tt.maxWait
		if got := q.Wait(tt.receive, tt.retryAfter); got != tt.want {
			t.Errorf("%s: Wait(%d, %s) = %s, want %s", tt.name, tt.receive, tt.retryAfter, got, tt.want)
		}
	}
}

// TestWaitsFitTheRedriveCount: at the short end of every jitter, the
// receives a message spends by the horizon are the count schema computes,
// within the queues' MaxReceiveCount.
func TestWaitsFitTheRedriveCount(t *testing.T) {
	p := redelivery.Policy{Jitter: low}
	receives, elapsed := 1, time.Duration(0)
	for {
		w := p.Wait(receives, 0)
		if elapsed+w > schema.RetryHorizon {
			break
		}
		elapsed += w
		receives++
	}
	if want := schema.RetryReceives(schema.RetryHorizon, schema.RetryBase, schema.RetryCap); receives != want {
		t.Errorf("receives by the horizon = %d, want schema.RetryReceives = %d", receives, want)
	}
	if receives+schema.UnpacedReceives != schema.Intake.MaxReceiveCount {
		t.Errorf("intake MaxReceiveCount = %d, want %d + %d", schema.Intake.MaxReceiveCount, receives, schema.UnpacedReceives)
	}
}

func record(sent time.Time, receives int) events.SQSMessage {
	return events.SQSMessage{MessageId: "m", Attributes: map[string]string{
		"SentTimestamp":           strconv.FormatInt(sent.UnixMilli(), 10),
		"ApproximateReceiveCount": strconv.Itoa(receives),
	}}
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	q := &redelivery.Queue{Policy: redelivery.Policy{Horizon: 24 * time.Hour}, Now: func() time.Time { return now }}
	firstReceived := func(at time.Time) events.SQSMessage {
		return events.SQSMessage{Attributes: map[string]string{
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(at.UnixMilli(), 10), "ApproximateReceiveCount": "3"}}
	}
	tests := []struct {
		name string
		rec  events.SQSMessage
		want bool
	}{
		{name: "young", rec: record(now.Add(-time.Hour), 5)},
		{name: "old, first receive: tried once", rec: record(now.Add(-25*time.Hour), 1)},
		{name: "old, failed before", rec: record(now.Add(-25*time.Hour), 2), want: true},
		{name: "exactly the horizon", rec: record(now.Add(-24*time.Hour), 2), want: true},
		{name: "first receive time when not sent time", rec: firstReceived(now.Add(-25 * time.Hour)), want: true},
		{name: "no timestamps", rec: events.SQSMessage{Attributes: map[string]string{"ApproximateReceiveCount": "40"}}},
	}
	for _, tt := range tests {
		if got := q.Expired(tt.rec); got != tt.want {
			t.Errorf("%s: Expired = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestNoQueue: without a queue, nothing is set and a message past the
// horizon is still given up.
func TestNoQueue(t *testing.T) {
	now := time.Now()
	q := &redelivery.Queue{Now: func() time.Time { return now }}
	if n := q.Retry(t.Context(), record(now.Add(-time.Minute), 1), 0); n.Set || n.GiveUp || n.Wait <= 0 {
		t.Errorf("Retry young = %+v, want a wait, not set", n)
	}
	if n := q.Retry(t.Context(), record(now.Add(-25*time.Hour), 1), 0); !n.GiveUp || n.Set {
		t.Errorf("Retry old = %+v, want given up, not set", n)
	}
}

func TestPolicyFromEnv(t *testing.T) {
	defaults := redelivery.Policy{Horizon: schema.RetryHorizon, Base: schema.RetryBase, Cap: schema.RetryCap}
	tests := []struct {
		name    string
		env     map[string]string
		want    redelivery.Policy
		wantErr string
	}{
		{name: "defaults", want: defaults},
		{name: "shorter horizon", env: map[string]string{redelivery.EnvHorizon: " 6h "},
			want: redelivery.Policy{Horizon: 6 * time.Hour, Base: schema.RetryBase, Cap: schema.RetryCap}},
		{name: "the default horizon exactly", env: map[string]string{redelivery.EnvHorizon: "24h"}, want: defaults},
		{name: "longer horizon", env: map[string]string{redelivery.EnvHorizon: "24h30m"}, wantErr: "redrive count of 63"},
		{name: "compressed time", env: map[string]string{redelivery.EnvHorizon: "2m", redelivery.EnvBase: "1s", redelivery.EnvCap: "5s"},
			want: redelivery.Policy{Horizon: 2 * time.Minute, Base: time.Second, Cap: 5 * time.Second}},
		{name: "compressed too far", env: map[string]string{redelivery.EnvHorizon: "10m", redelivery.EnvBase: "1s", redelivery.EnvCap: "5s"}, wantErr: "redrive count"},
		{name: "cap below base", env: map[string]string{redelivery.EnvBase: "2m", redelivery.EnvCap: "1m"}, wantErr: redelivery.EnvCap},
		{name: "zero", env: map[string]string{redelivery.EnvHorizon: "0s"}, wantErr: redelivery.EnvHorizon},
		{name: "not a duration", env: map[string]string{redelivery.EnvBase: "a minute"}, wantErr: redelivery.EnvBase},
	}
	for _, tt := range tests {
		got, err := redelivery.PolicyFromEnv(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: PolicyFromEnv = %+v, %v; want an error mentioning %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Horizon != tt.want.Horizon || got.Base != tt.want.Base || got.Cap != tt.want.Cap {
			t.Errorf("%s: PolicyFromEnv = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}
