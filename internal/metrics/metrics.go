// Package metrics writes CloudWatch Embedded Metric Format (EMF) lines. A
// Lambda function's stdout goes to CloudWatch Logs, which extracts the
// metrics from such lines asynchronously: no PutMetricData call on the
// request path, no extra latency, no extra IAM permission.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every snowgate metric.
const Namespace = "snowgate"

// Units used by snowgate metrics.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
)

// Metric is one named metric with its values; EMF accepts several values of
// one metric in a line (up to 100), which is how a batch reports each
// message's latency in one line.
type Metric struct {
	Name   string
	Unit   string
	Values []float64
}

// Emitter writes EMF lines to a writer (os.Stdout in a function).
type Emitter struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// New returns an Emitter writing to w.
func New(w io.Writer) *Emitter { return &Emitter{w: w, now: time.Now} }

// Put writes one EMF line with the given dimensions (name → value; every
// name becomes one dimension of a single dimension set), extra properties
// (searchable in Logs Insights, not metrics) and metrics. Metrics without
// values are left out; nothing is written when none remain.
func (e *Emitter) Put(dimensions, properties map[string]string, ms ...Metric) error {
	names := make([]string, 0, len(dimensions))
	for k := range dimensions {
		names = append(names, k)
	}
	sort.Strings(names)
	return e.PutSets(dimensions, [][]string{names}, properties, ms...)
}

// PutSets is Put with several dimension sets over the same dimension
// values: CloudWatch then keeps each metric once per set, so one line
// feeds a total (["function"]) and a breakdown (["function","webhook_id"])
// without counting anything twice in either. Every name in a set must have
// a value.
func (e *Emitter) PutSets(dimensions map[string]string, sets [][]string, properties map[string]string, ms ...Metric) error {
	doc := map[string]any{}
	for k, v := range properties {
		doc[k] = v
	}
	for k, v := range dimensions {
		doc[k] = v
	}
	for _, set := range sets {
		for _, name := range set {
			if _, ok := dimensions[name]; !ok {
				return fmt.Errorf("encode metrics: dimension %q has no value", name)
			}
		}
	}
	type def struct {
		Name string `json:"Name"`
		Unit string `json:"Unit,omitempty"`
	}
	defs := make([]def, 0, len(ms))
	for _, m := range ms {
		if len(m.Values) == 0 {
			continue
		}
		defs = append(defs, def{Name: m.Name, Unit: m.Unit})
		if len(m.Values) == 1 {
			doc[m.Name] = m.Values[0]
		} else {
			doc[m.Name] = m.Values
		}
	}
	if len(defs) == 0 {
		return nil
	}
	doc["_aws"] = map[string]any{
		"Timestamp": e.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": sets,
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode metrics: %w", err)
	}
	line = append(line, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(line); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}
