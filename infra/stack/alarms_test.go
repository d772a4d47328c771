package stack_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/schema"
)

// alarmCount is every alarm of the service stack: the errors of the
// processor, the reconciler and the writer; one per dead-letter queue;
// ingest's 5xx rate; the reconcile lag; the intake age; the processor's and
// the writer's retries; ingest's 401s; the reconciler not invoked; a paused
// gateway; an untrusted gateway item.
var alarmCount = 3 + len(schema.Queues) + 3 + 6

// alarmProps returns the properties of the alarm built with a construct id.
func alarmProps(t *testing.T, d doc, id string) map[string]any {
	t.Helper()
	for logical, a := range d.resources("AWS::CloudWatch::Alarm") {
		if strings.HasPrefix(logical, id) {
			return props(a)
		}
	}
	t.Fatalf("no alarm %s", id)
	return nil
}

// pick returns the named keys of m.
func pick(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

func fnDim(fn string) []any {
	return []any{map[string]any{"Name": "function", "Value": fn}}
}

// The alarms on the functions' own metrics, each exactly: what it reads,
// how, and when it fires.
func TestMetricAlarms(t *testing.T) {
	keys := []string{"Namespace", "MetricName", "Dimensions", "Statistic", "Period", "Threshold",
		"ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData"}
	tests := []struct {
		alarm string
		want  map[string]any
	}{
		{stack.AlarmProcessorRetries, map[string]any{
			"Namespace": "snowgate", "MetricName": "failed", "Dimensions": fnDim(stack.Processor), "Statistic": "Sum",
			"Period": 300.0, "Threshold": float64(stack.ProcessorFailedThreshold), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"EvaluationPeriods": 3.0, "DatapointsToAlarm": 3.0, "TreatMissingData": "notBreaching",
		}},
		{stack.AlarmWriterRetries, map[string]any{
			"Namespace": "snowgate", "MetricName": "ResultsRetried", "Dimensions": fnDim(stack.Writer), "Statistic": "Sum",
			"Period": 300.0, "Threshold": float64(stack.WriterRetriedThreshold), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"EvaluationPeriods": 3.0, "DatapointsToAlarm": 3.0, "TreatMissingData": "notBreaching",
		}},
		{stack.AlarmIngestUnauthorized, map[string]any{
			"Namespace": "snowgate", "MetricName": "Unauthorized", "Dimensions": fnDim(stack.Ingest), "Statistic": "Sum",
			"Period": 300.0, "Threshold": float64(stack.IngestUnauthorizedThreshold), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"EvaluationPeriods": 2.0, "DatapointsToAlarm": 2.0, "TreatMissingData": "notBreaching",
		}},
		// Two schedule periods without an invocation; no data is the
		// symptom, so missing data breaches.
		{stack.AlarmReconcilerNotInvoked, map[string]any{
			"Namespace": "AWS/Lambda", "MetricName": "Invocations",
			"Dimensions": []any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": functionID(t, stack.Reconciler)}}},
			"Statistic":  "Sum", "Period": 2 * stack.ReconcileSchedule.Seconds(), "Threshold": 1.0, "ComparisonOperator": "LessThanThreshold",
			"EvaluationPeriods": 1.0, "DatapointsToAlarm": nil, "TreatMissingData": "breaching",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.alarm, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, pick(alarmProps(t, fx.svcDoc, tt.alarm), keys...)); diff != "" {
				t.Errorf("alarm %s (-want +got):\n%s", tt.alarm, diff)
			}
		})
	}
}

// GatewayPaused sums the three functions' GatewayPaused counts (a missing
// series counts 0) and fires when the sum stays above 0 for 15 minutes.
func TestGatewayPausedAlarm(t *testing.T) {
	p := alarmProps(t, fx.svcDoc, stack.AlarmGatewayPaused)
	if diff := cmp.Diff(map[string]any{
		"Threshold": 0.0, "ComparisonOperator": "GreaterThanThreshold",
		"EvaluationPeriods": 3.0, "DatapointsToAlarm": 3.0, "TreatMissingData": "notBreaching",
	}, pick(p, "Threshold", "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData")); diff != "" {
		t.Errorf("alarm (-want +got):\n%s", diff)
	}
	if got := 3 * 5.0; got != stack.GatewayPausedFor.Minutes() {
		t.Errorf("three 5-minute periods are %v minutes, the alarm is for %v", got, stack.GatewayPausedFor.Minutes())
	}
	var expr string
	series := map[string]any{}
	for _, m := range list(p["Metrics"]) {
		m := m.(map[string]any)
		if e, ok := m["Expression"].(string); ok {
			expr = e
			if m["ReturnData"] == false {
				t.Errorf("the expression does not return data")
			}
			continue
		}
		if m["ReturnData"] != false {
			t.Errorf("series %v returns data; only the sum may", m["Id"])
		}
		series[fmt.Sprint(m["Id"])] = m["MetricStat"]
	}
	want := map[string]any{}
	var terms []string
	for _, fn := range []string{stack.Processor, stack.Writer, stack.Reconciler} {
		want[fn] = map[string]any{
			"Metric": map[string]any{"Namespace": "snowgate", "MetricName": "GatewayPaused", "Dimensions": fnDim(fn)},
			"Period": 300.0, "Stat": "Sum",
		}
		terms = append(terms, "FILL("+fn+", 0)")
	}
	if diff := cmp.Diff(want, series); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	if w := strings.Join(terms, " + "); expr != w {
		t.Errorf("expression = %q, want %q", expr, w)
	}
}

// GatewayUntrusted fires on the first refused gateway item, over the same
// sum of the three functions' counts.
func TestGatewayUntrustedAlarm(t *testing.T) {
	p := alarmProps(t, fx.svcDoc, stack.AlarmGatewayUntrusted)
	if diff := cmp.Diff(map[string]any{
		"Threshold": 0.0, "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1.0, "TreatMissingData": "notBreaching",
	}, pick(p, "Threshold", "ComparisonOperator", "EvaluationPeriods", "TreatMissingData")); diff != "" {
		t.Errorf("alarm (-want +got):\n%s", diff)
	}
	names := map[string]bool{}
	for _, m := range list(p["Metrics"]) {
		if stat, ok := m.(map[string]any)["MetricStat"].(map[string]any); ok {
			names[fmt.Sprint(stat["Metric"].(map[string]any)["MetricName"])] = true
		}
	}
	if !names["GatewayUntrusted"] || len(names) != 1 {
		t.Errorf("the alarm reads %v, want GatewayUntrusted", names)
	}
	if got := constString(t, "../../internal/connect/connect.go", "MetricUntrusted"); got != stack.MetricGatewayUntrusted {
		t.Errorf("connect.MetricUntrusted = %q, the alarm reads %q", got, stack.MetricGatewayUntrusted)
	}
}

// The writer's failures and its dead-letter queue are watched by the
// alarms that were there before these (WriterErrors, ResultsDLQMessages),
// and the intake age alarm is on the intake queue: all still in place.
func TestExistingAlarmsKept(t *testing.T) {
	for _, id := range []string{stack.AlarmWriterErrors, stack.AlarmDLQ(schema.Results), stack.AlarmIntakeAge} {
		alarmProps(t, fx.svcDoc, id)
	}
}

// The metric names the alarms read are the ones the functions emit. The
// packages are read as source (the CDK module does not build them): the
// budget's constant, the processor's failed outcome in its per-batch
// statuses, the writer's name for retried results.
func TestAlarmMetricNamesMatchTheFunctions(t *testing.T) {
	if got := constString(t, "../../internal/budget/metrics.go", "MetricPaused"); got != stack.MetricGatewayPaused {
		t.Errorf("budget.MetricPaused = %q, the alarm reads %q", got, stack.MetricGatewayPaused)
	}
	if got := constString(t, "../../internal/state/ticket.go", "StatusFailed"); got != stack.MetricFailed {
		t.Errorf("state.StatusFailed = %q, the alarm reads %q", got, stack.MetricFailed)
	}
	handler := source(t, "../../internal/pipeline/handler.go")
	statuses := handler[strings.Index(handler, "var metricStatuses"):]
	statuses = statuses[:strings.Index(statuses, "}")]
	if !strings.Contains(statuses, "StatusFailed") {
		t.Errorf("the processor's metricStatuses no longer hold StatusFailed:\n%s", statuses)
	}
	if !strings.Contains(source(t, "../../internal/writer/writer.go"), strconv.Quote(stack.MetricResultsRetried)) {
		t.Errorf("the writer no longer emits %q", stack.MetricResultsRetried)
	}
}

func source(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// constString returns the value of a string constant declared in a file.
func constString(t *testing.T, path, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	val := ""
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, id := range vs.Names {
			if id.Name == name && i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					val, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	if val == "" {
		t.Fatalf("no string constant %s in %s", name, path)
	}
	return val
}
