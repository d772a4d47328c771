package bench_test

import (
	"testing"

	"github.com/snowgate/snowgate/internal/bench"
)

func TestOutboundReason(t *testing.T) {
	tests := []struct {
		name, err, want string
	}{
		{
			name: "the rule's timeout",
			err:  `request to 127.0.0.1:40113 failed: Post "http://127.0.0.1:40113/api/webhooks/ingest/abc": context deadline exceeded`,
			want: "no answer within the Business Rule's 5 s timeout",
		},
		{
			name: "client timeout wording",
			err:  `request to 127.0.0.1:1 failed: Post "http://127.0.0.1:1/x": net/http: request canceled (Client.Timeout exceeded while awaiting headers)`,
			want: "no answer within the Business Rule's 5 s timeout",
		},
		{name: "outbound switched off", err: "request not sent to 127.0.0.1:1: connection refused: outbound HTTP is switched off", want: "connection refused"},
		{name: "dropped", err: "request to 127.0.0.1:1 failed: connection reset: outbound call dropped", want: "connection closed without an answer"},
		{name: "anything else keeps its text without the address", err: "request to 127.0.0.1:5/x failed: oops", want: "request to <api> failed: oops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bench.OutboundReason(tt.err); got != tt.want {
				t.Errorf("OutboundReason(%q) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestWebhookFailures(t *testing.T) {
	w := bench.Webhooks{
		Sent:   10,
		Status: map[int]int{202: 6, 502: 1, 401: 1},
		Failed: map[string]int{"connection refused": 2},
	}
	if got := w.Failures(); got != 4 {
		t.Errorf("Failures() = %d, want 4 (two without an answer, a 502 and a 401)", got)
	}
}
