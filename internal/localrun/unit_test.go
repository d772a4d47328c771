package localrun_test

import (
	"bytes"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/localrun"
)

func TestBatchFailures(t *testing.T) {
	event := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "a"}, {MessageId: "b"}}}
	tests := []struct {
		name       string
		payload    string
		wantFailed map[string]bool
		wantAll    bool
	}{
		{name: "no payload", payload: "", wantFailed: map[string]bool{}},
		{name: "null", payload: "null", wantFailed: map[string]bool{}},
		{name: "empty object", payload: "{}", wantFailed: map[string]bool{}},
		{name: "empty list", payload: `{"batchItemFailures":[]}`, wantFailed: map[string]bool{}},
		{name: "one failure", payload: `{"batchItemFailures":[{"itemIdentifier":"b"}]}`, wantFailed: map[string]bool{"b": true}},
		{name: "empty identifier fails the batch", payload: `{"batchItemFailures":[{"itemIdentifier":""}]}`, wantAll: true},
		{name: "unknown identifier fails the batch", payload: `{"batchItemFailures":[{"itemIdentifier":"zz"}]}`, wantAll: true},
		{name: "not JSON fails the batch", payload: `oops`, wantAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed, all := localrun.BatchFailures(event, []byte(tt.payload))
			if all != tt.wantAll {
				t.Fatalf("BatchFailures(%s) all = %v, want %v", tt.payload, all, tt.wantAll)
			}
			if !tt.wantAll {
				if diff := cmp.Diff(tt.wantFailed, failed); diff != "" {
					t.Errorf("BatchFailures(%s) failed (-want +got):\n%s", tt.payload, diff)
				}
			}
		})
	}
}

func TestLogsJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "slog line gets the process name",
			in:   `{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"accepted"}` + "\n",
			want: `{"process":"ingest","time":"2026-01-01T00:00:00Z","level":"INFO","msg":"accepted"}` + "\n",
		},
		{
			name: "lines split across writes are joined",
			in:   `{"msg":"a"}` + "\n" + `{"msg":"b"}` + "\n",
			want: `{"process":"ingest","msg":"a"}` + "\n" + `{"process":"ingest","msg":"b"}` + "\n",
		},
		{name: "blank lines are dropped", in: "\n\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := localrun.NewLogs(&out, false).Writer("ingest")
			for i := range len(tt.in) { // byte by byte: the worst a pipe can do
				if _, err := w.Write([]byte{tt.in[i]}); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
