package metrics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPut(t *testing.T) {
	tests := []struct {
		name    string
		dims    map[string]string
		props   map[string]string
		metrics []Metric
		want    string // JSON, or "" for no line
	}{
		{
			name:  "counts and latencies",
			dims:  map[string]string{"function": "processor"},
			props: map[string]string{"gateway_id": "gtw_1"},
			metrics: []Metric{
				{Name: "accepted", Unit: Count, Values: []float64{2}},
				{Name: "stale", Unit: Count},
				{Name: "FetchLatency", Unit: Milliseconds, Values: []float64{12, 40}},
			},
			want: `{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"snowgate",
				"Dimensions":[["function"]],"Metrics":[{"Name":"accepted","Unit":"Count"},{"Name":"FetchLatency","Unit":"Milliseconds"}]}]},
				"function":"processor","gateway_id":"gtw_1","accepted":2,"FetchLatency":[12,40]}`,
		},
		{
			name:    "nothing to report",
			dims:    map[string]string{"function": "processor"},
			metrics: []Metric{{Name: "stale", Unit: Count}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			e := New(&buf)
			e.now = func() time.Time { return time.UnixMilli(1700000000000) }
			if err := e.Put(tt.dims, tt.props, tt.metrics...); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if tt.want == "" {
				if buf.Len() != 0 {
					t.Fatalf("Put wrote %q, want nothing", buf.String())
				}
				return
			}
			var got, want any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("output is not one JSON document: %v: %q", err, buf.String())
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("EMF line mismatch (-want +got):\n%s", diff)
			}
			if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 {
				t.Errorf("Put wrote %d lines, want 1", n)
			}
		})
	}
}

// TestPutSets: one line, two dimension sets over the same values, so a
// count is kept once in total and once per webhook; a set naming a
// dimension without a value is refused rather than written half-valid.
func TestPutSets(t *testing.T) {
	var buf bytes.Buffer
	e := New(&buf)
	e.now = func() time.Time { return time.UnixMilli(1700000000000) }
	dims := map[string]string{"function": "ingest", "webhook_id": "whk_1"}
	err := e.PutSets(dims, [][]string{{"function"}, {"function", "webhook_id"}}, nil,
		Metric{Name: "Unauthorized", Unit: Count, Values: []float64{1}})
	if err != nil {
		t.Fatalf("PutSets: %v", err)
	}
	var got, want any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON document: %v: %q", err, buf.String())
	}
	if err := json.Unmarshal([]byte(`{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"snowgate",
		"Dimensions":[["function"],["function","webhook_id"]],"Metrics":[{"Name":"Unauthorized","Unit":"Count"}]}]},
		"function":"ingest","webhook_id":"whk_1","Unauthorized":1}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EMF line mismatch (-want +got):\n%s", diff)
	}
	buf.Reset()
	if err := e.PutSets(map[string]string{"function": "ingest"}, [][]string{{"function", "webhook_id"}}, nil,
		Metric{Name: "Unauthorized", Unit: Count, Values: []float64{1}}); err == nil || buf.Len() != 0 {
		t.Errorf("PutSets with a dimension lacking a value = %v, wrote %q; want an error and nothing", err, buf.String())
	}
}
