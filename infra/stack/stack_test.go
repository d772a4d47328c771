package stack_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestResourceCounts(t *testing.T) {
	tests := []struct {
		name  string
		tmpl  doc
		typ   string
		count int
	}{
		{"data tables", fx.dataDoc, "AWS::DynamoDB::Table", len(schema.Tables)},
		{"data queues and DLQs", fx.dataDoc, "AWS::SQS::Queue", 2 * len(schema.Queues)},
		{"data has no functions", fx.dataDoc, "AWS::Lambda::Function", 0},
		{"functions", fx.svcDoc, "AWS::Lambda::Function", len(stack.Functions)},
		{"one role per function", fx.svcDoc, "AWS::IAM::Role", len(stack.Functions)},
		{"HTTP API", fx.svcDoc, "AWS::ApiGatewayV2::Api", 1},
		{"single route", fx.svcDoc, "AWS::ApiGatewayV2::Route", 1},
		{"single stage", fx.svcDoc, "AWS::ApiGatewayV2::Stage", 1},
		{"SQS event sources: processor and writer", fx.svcDoc, "AWS::Lambda::EventSourceMapping", 2},
		{"schedule", fx.svcDoc, "AWS::Events::Rule", 1},
		// Errors of processor, reconciler and writer; one per DLQ; ingest
		// 5xx rate; reconcile lag; intake age; processor and writer
		// retries; ingest 401s; reconciler not invoked; gateway paused.
		{"alarms", fx.svcDoc, "AWS::CloudWatch::Alarm", alarmCount},
		{"alarm topic", fx.svcDoc, "AWS::SNS::Topic", 1},
		{"dashboard", fx.svcDoc, "AWS::CloudWatch::Dashboard", 1},
		{"log groups: functions and access logs", fx.svcDoc, "AWS::Logs::LogGroup", len(stack.Functions) + 1},
		{"service stack holds no data", fx.svcDoc, "AWS::DynamoDB::Table", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(tt.tmpl.resources(tt.typ)); got != tt.count {
				t.Errorf("%s resources = %d, want %d", tt.typ, got, tt.count)
			}
		})
	}
	// The same through the assertions library, as the CDK docs show it.
	check(t, "ResourceCountIs functions", func() {
		fx.svc.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(len(stack.Functions)))
	})
}

// Renaming a construct must never change these: CloudFormation would
// replace the table (an empty one) or the queue (dropping its messages).
func TestStatefulLogicalIDsPinned(t *testing.T) {
	want := map[string]string{
		"RegistryTable": "AWS::DynamoDB::Table",
		"StateTable":    "AWS::DynamoDB::Table",
		"IntakeQueue":   "AWS::SQS::Queue",
		"IntakeDLQ":     "AWS::SQS::Queue",
		"DispatchQueue": "AWS::SQS::Queue",
		"DispatchDLQ":   "AWS::SQS::Queue",
		"ResultsQueue":  "AWS::SQS::Queue",
		"ResultsDLQ":    "AWS::SQS::Queue",
	}
	got := map[string]string{}
	for id, r := range fx.dataDoc.resources("") {
		if typ := r["Type"].(string); typ == "AWS::DynamoDB::Table" || typ == "AWS::SQS::Queue" {
			got[id] = typ
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stateful logical ids (-want +got):\n%s", diff)
	}
}

// tableProps is what the template must hold for a schema table; it is
// derived from the definition independently of the stack code.
func tableProps(def schema.Table) map[string]any {
	keySchema := func(pk schema.Key, sk *schema.Key) []any {
		ks := []any{map[string]any{"AttributeName": pk.Name, "KeyType": "HASH"}}
		if sk != nil {
			ks = append(ks, map[string]any{"AttributeName": sk.Name, "KeyType": "RANGE"})
		}
		return ks
	}
	attrs := map[string]string{}
	add := func(k *schema.Key) {
		if k != nil {
			attrs[k.Name] = string(k.Type)
		}
	}
	add(&def.PartitionKey)
	add(def.SortKey)
	var gsis []any
	for _, ix := range def.Indexes {
		add(&ix.PartitionKey)
		add(ix.SortKey)
		proj := map[string]any{"ProjectionType": "ALL"}
		if ix.Include != nil {
			var include []any
			for _, a := range ix.Include {
				include = append(include, a)
			}
			proj = map[string]any{"ProjectionType": "INCLUDE", "NonKeyAttributes": include}
		}
		gsis = append(gsis, map[string]any{
			"IndexName":  ix.Name,
			"KeySchema":  keySchema(ix.PartitionKey, ix.SortKey),
			"Projection": proj,
		})
	}
	var defs []any
	for _, name := range sortedKeys(attrs) {
		defs = append(defs, map[string]any{"AttributeName": name, "AttributeType": attrs[name]})
	}
	p := map[string]any{
		"KeySchema":                        keySchema(def.PartitionKey, def.SortKey),
		"AttributeDefinitions":             defs,
		"BillingMode":                      "PAY_PER_REQUEST",
		"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
		"DeletionProtectionEnabled":        true,
		"SSESpecification":                 map[string]any{"SSEEnabled": true},
	}
	if gsis != nil {
		p["GlobalSecondaryIndexes"] = gsis
	}
	if def.TTLAttribute != "" {
		p["TimeToLiveSpecification"] = map[string]any{"AttributeName": def.TTLAttribute, "Enabled": true}
	}
	return p
}

// sortedBy orders a list of objects by one field, so that comparisons do
// not depend on the order CDK emits them in.
func sortedBy(field string) cmp.Option {
	return cmp.Transformer("sortBy"+field, func(in []any) []any {
		out := append([]any(nil), in...)
		key := func(v any) string {
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Sprint(v)
			}
			return fmt.Sprint(m[field], m["AttributeName"], m["IndexName"])
		}
		for i := 1; i < len(out); i++ {
			for j := i; j > 0 && key(out[j-1]) > key(out[j]); j-- {
				out[j-1], out[j] = out[j], out[j-1]
			}
		}
		return out
	})
}

func withoutTags(p map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range p {
		if k != "Tags" {
			out[k] = v
		}
	}
	return out
}

// One definition, checked both ways: every schema table is in the template
// exactly as defined, and every table in the template is a schema table.
func TestTablesMatchSchema(t *testing.T) {
	inTemplate := fx.dataDoc.resources("AWS::DynamoDB::Table")
	for _, def := range schema.Tables {
		t.Run(def.ID, func(t *testing.T) {
			r, ok := inTemplate[def.ID+"Table"]
			if !ok {
				t.Fatalf("table %s not in the data template (have %v)", def.ID, sortedKeys(inTemplate))
			}
			if diff := cmp.Diff(tableProps(def), withoutTags(props(r)), sortedBy("KeyType")); diff != "" {
				t.Errorf("table %s properties (-schema +template):\n%s", def.ID, diff)
			}
			for _, policy := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
				if r[policy] != "Retain" {
					t.Errorf("table %s %s = %v, want Retain", def.ID, policy, r[policy])
				}
			}
		})
	}
	known := map[string]bool{}
	for _, def := range schema.Tables {
		known[def.ID+"Table"] = true
	}
	for id := range inTemplate {
		if !known[id] {
			t.Errorf("template table %s has no schema definition", id)
		}
	}
}

// TestRedriveCounts: the queues whose consumers retry by age give up by
// count only after the receives the backoff can spend within the retry
// horizon (63 with the defaults); the dispatch queue keeps the engine's 5.
func TestRedriveCounts(t *testing.T) {
	inTemplate := fx.dataDoc.resources("AWS::SQS::Queue")
	want := map[string]float64{"IntakeQueue": 63, "ResultsQueue": 63, "DispatchQueue": 5}
	got := map[string]float64{}
	for id := range want {
		redrive, _ := props(inTemplate[id])["RedrivePolicy"].(map[string]any)
		n, _ := redrive["maxReceiveCount"].(float64)
		got[id] = n
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("maxReceiveCount (-want +got):\n%s", diff)
	}
	if n := schema.RetryReceives(schema.RetryHorizon, schema.RetryBase, schema.RetryCap) + schema.UnpacedReceives; float64(n) != want["IntakeQueue"] {
		t.Errorf("the computed redrive count is %d, want %v", n, want["IntakeQueue"])
	}
}

func TestQueuesMatchSchema(t *testing.T) {
	inTemplate := fx.dataDoc.resources("AWS::SQS::Queue")
	known := map[string]bool{}
	for _, def := range schema.Queues {
		known[def.ID+"Queue"], known[def.DLQID()] = true, true
		t.Run(def.ID, func(t *testing.T) {
			q, ok := inTemplate[def.ID+"Queue"]
			if !ok {
				t.Fatalf("queue %s not in the data template", def.ID)
			}
			want := map[string]any{
				"VisibilityTimeout":      def.VisibilityTimeout.Seconds(),
				"MessageRetentionPeriod": def.Retention.Seconds(),
				"SqsManagedSseEnabled":   true,
				"RedrivePolicy": map[string]any{
					"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{def.DLQID(), "Arn"}},
					"maxReceiveCount":     float64(def.MaxReceiveCount),
				},
			}
			if diff := cmp.Diff(want, withoutTags(props(q))); diff != "" {
				t.Errorf("queue %s (-schema +template):\n%s", def.ID, diff)
			}
			dlq, ok := inTemplate[def.DLQID()]
			if !ok {
				t.Fatalf("dead-letter queue %s not in the data template", def.DLQID())
			}
			wantDLQ := map[string]any{
				"MessageRetentionPeriod": def.DLQRetention.Seconds(),
				"SqsManagedSseEnabled":   true,
			}
			if diff := cmp.Diff(wantDLQ, withoutTags(props(dlq))); diff != "" {
				t.Errorf("dead-letter queue %s (-schema +template):\n%s", def.DLQID(), diff)
			}
		})
	}
	for id := range inTemplate {
		if !known[id] {
			t.Errorf("template queue %s has no schema definition", id)
		}
	}
}

func TestQueuesDenyPlainHTTP(t *testing.T) {
	policies := fx.dataDoc.resources("AWS::SQS::QueuePolicy")
	if got, want := len(policies), 2*len(schema.Queues); got != want {
		t.Fatalf("queue policies = %d, want %d (one per queue, denying non-TLS access)", got, want)
	}
	for id, p := range policies {
		for _, st := range statements(props(p)["PolicyDocument"]) {
			if st["Effect"] != "Deny" {
				t.Errorf("queue policy %s has a non-Deny statement: %v", id, st)
			}
		}
	}
}

// A queue feeding a function must hide a message for six times the
// function's timeout, as AWS advises, or a batch still being handled is
// delivered a second time.
func TestVisibilityCoversConsumerTimeout(t *testing.T) {
	for _, tc := range []struct{ queue, fn string }{
		{"IntakeQueue", stack.Processor},
		{"ResultsQueue", stack.Writer},
	} {
		t.Run(tc.queue, func(t *testing.T) {
			timeout := props(function(t, tc.fn))["Timeout"].(float64)
			visibility := props(fx.dataDoc.resources("AWS::SQS::Queue")[tc.queue])["VisibilityTimeout"].(float64)
			if visibility < 6*timeout {
				t.Errorf("%s visibility timeout %vs < 6 × %s timeout %vs", tc.queue, visibility, tc.fn, timeout)
			}
		})
	}
}

// function returns the Lambda function resource built for a name.
func function(t *testing.T, name string) map[string]any {
	t.Helper()
	for id, r := range fx.svcDoc.resources("AWS::Lambda::Function") {
		if strings.HasPrefix(id, name) {
			return r
		}
	}
	t.Fatalf("function %s not in the service template", name)
	return nil
}

func functionID(t *testing.T, name string) string {
	t.Helper()
	for id := range fx.svcDoc.resources("AWS::Lambda::Function") {
		if strings.HasPrefix(id, name) {
			return id
		}
	}
	t.Fatalf("function %s not in the service template", name)
	return ""
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		name     string
		memory   float64
		timeout  float64
		reserved any
	}{
		{stack.Ingest, stack.IngestMemoryMB, stack.IngestTimeout.Seconds(), float64(stack.DefaultIngestConcurrency)},
		{stack.Processor, stack.ProcessorMemoryMB, schema.ProcessorTimeout.Seconds(), nil},
		{stack.Reconciler, stack.ReconcilerMemoryMB, stack.ReconcilerTimeout.Seconds(), 1.0},
		{stack.Writer, stack.WriterMemoryMB, schema.WriterTimeout.Seconds(), nil},
	}
	ingestSide := []string{
		schema.EnvRegistryTable, schema.EnvStateTable, schema.EnvIntakeQueueURL, schema.EnvIntakeDLQURL,
		schema.EnvDispatchQueueURL, schema.EnvDispatchDLQURL, schema.EnvSecretPrefix,
	}
	envOf := map[string][]string{
		stack.Ingest: ingestSide, stack.Processor: ingestSide, stack.Reconciler: ingestSide,
		// The writer knows no intake or dispatch queue.
		stack.Writer: {schema.EnvRegistryTable, schema.EnvStateTable, schema.EnvResultsQueueURL, schema.EnvSecretPrefix},
	}
	if len(tests) != len(stack.Functions) {
		t.Fatalf("%d functions tested, the stack has %d", len(tests), len(stack.Functions))
	}
	for _, tt := range tests {
		wantEnv := envOf[tt.name]
		t.Run(tt.name, func(t *testing.T) {
			p := props(function(t, tt.name))
			got := map[string]any{
				"Runtime": p["Runtime"], "Architectures": p["Architectures"], "Handler": p["Handler"],
				"MemorySize": p["MemorySize"], "Timeout": p["Timeout"],
				"ReservedConcurrentExecutions": p["ReservedConcurrentExecutions"],
			}
			want := map[string]any{
				"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
				"MemorySize": tt.memory, "Timeout": tt.timeout,
				"ReservedConcurrentExecutions": tt.reserved,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("function %s (-want +got):\n%s", tt.name, diff)
			}
			vars, _ := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			if diff := cmp.Diff(wantEnv, sortedKeys(vars), cmp.Transformer("sort", func(in []string) []string {
				out := append([]string(nil), in...)
				sortStrings(out)
				return out
			})); diff != "" {
				t.Errorf("function %s environment names (-want +got):\n%s", tt.name, diff)
			}
			if got, want := vars[schema.EnvSecretPrefix], schema.SecretPrefix(fx.svcName); got != want {
				t.Errorf("function %s %s = %v, want %q", tt.name, schema.EnvSecretPrefix, got, want)
			}
			if _, ok := p["LoggingConfig"].(map[string]any)["LogGroup"]; !ok {
				t.Errorf("function %s logs to the default log group (no retention)", tt.name)
			}
		})
	}
	check(t, "log retention", func() {
		fx.svc.AllResourcesProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 30})
	})
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j-1] > s[j]; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func TestIngestRoute(t *testing.T) {
	_, route := fx.svcDoc.only(t, "AWS::ApiGatewayV2::Route")
	if got, want := props(route)["RouteKey"], "POST "+stack.IngestRoute; got != want {
		t.Errorf("route key = %v, want %q", got, want)
	}
	if stack.IngestRoute != "/api/webhooks/ingest/{path}" {
		t.Errorf("IngestRoute = %q, the path ServiceNow Business Rules post to", stack.IngestRoute)
	}
	_, integration := fx.svcDoc.only(t, "AWS::ApiGatewayV2::Integration")
	ip := props(integration)
	if ip["IntegrationType"] != "AWS_PROXY" || ip["PayloadFormatVersion"] != "2.0" {
		t.Errorf("integration = %v, want AWS_PROXY with payload 2.0", ip)
	}
	if uri := fmt.Sprint(ip["IntegrationUri"]); !strings.Contains(uri, functionID(t, stack.Ingest)) {
		t.Errorf("integration targets %s, want the ingest function", uri)
	}
	_, stage := fx.svcDoc.only(t, "AWS::ApiGatewayV2::Stage")
	sp := props(stage)
	want := map[string]any{
		"StageName":  "$default",
		"AutoDeploy": true,
		"DefaultRouteSettings": map[string]any{
			"ThrottlingBurstLimit": float64(stack.ThrottleBurstLimit),
			"ThrottlingRateLimit":  float64(stack.ThrottleRateLimit),
		},
	}
	got := map[string]any{"StageName": sp["StageName"], "AutoDeploy": sp["AutoDeploy"], "DefaultRouteSettings": sp["DefaultRouteSettings"]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stage (-want +got):\n%s", diff)
	}
	logs, _ := sp["AccessLogSettings"].(map[string]any)
	if !strings.Contains(fmt.Sprint(logs["DestinationArn"]), "ApiAccessLogs") {
		t.Errorf("access logs go to %v, want the ApiAccessLogs group", logs["DestinationArn"])
	}
	if f := fmt.Sprint(logs["Format"]); !strings.Contains(f, "$context.requestId") || strings.Contains(f, "$context.path") {
		t.Errorf("access log format %s: want the request id and no path (it is the webhook's address)", f)
	}
}

// eventSource returns the event source mapping of a function.
func eventSource(t *testing.T, fn string) map[string]any {
	t.Helper()
	id := functionID(t, fn)
	var found []map[string]any
	for _, esm := range fx.svcDoc.resources("AWS::Lambda::EventSourceMapping") {
		if fmt.Sprint(props(esm)["FunctionName"]) == fmt.Sprint(map[string]any{"Ref": id}) {
			found = append(found, esm)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d event source mappings for %s, want 1", len(found), fn)
	}
	return found[0]
}

func TestProcessorEventSource(t *testing.T) {
	p := props(eventSource(t, stack.Processor))
	got := map[string]any{
		"BatchSize": p["BatchSize"], "MaximumBatchingWindowInSeconds": p["MaximumBatchingWindowInSeconds"],
		"FunctionResponseTypes": p["FunctionResponseTypes"], "ScalingConfig": p["ScalingConfig"],
		"FunctionName": p["FunctionName"],
	}
	want := map[string]any{
		"BatchSize":                      float64(stack.ProcessorBatchSize),
		"MaximumBatchingWindowInSeconds": stack.ProcessorBatchingWindow.Seconds(),
		"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
		"ScalingConfig":                  map[string]any{"MaximumConcurrency": float64(stack.ProcessorMaxConcurrency)},
		"FunctionName":                   map[string]any{"Ref": functionID(t, stack.Processor)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event source mapping (-want +got):\n%s", diff)
	}
	if src := fmt.Sprint(p["EventSourceArn"]); !strings.Contains(src, "IntakeQueueArn") {
		t.Errorf("event source %s, want the intake queue", src)
	}
	if stack.ProcessorBatchingWindow != 0 {
		t.Errorf("batching window %s, want none (SQS's default): a batch leaves as soon as a poll finds messages", stack.ProcessorBatchingWindow)
	}
}

func TestWriterEventSource(t *testing.T) {
	p := props(eventSource(t, stack.Writer))
	got := map[string]any{
		"BatchSize": p["BatchSize"], "MaximumBatchingWindowInSeconds": p["MaximumBatchingWindowInSeconds"],
		"FunctionResponseTypes": p["FunctionResponseTypes"], "ScalingConfig": p["ScalingConfig"],
		"FunctionName": p["FunctionName"], "EventSourceArn": p["EventSourceArn"],
	}
	want := map[string]any{
		"BatchSize":                      float64(stack.WriterBatchSize),
		"MaximumBatchingWindowInSeconds": nil,
		"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
		"ScalingConfig":                  map[string]any{"MaximumConcurrency": float64(stack.WriterMaxConcurrency)},
		"FunctionName":                   map[string]any{"Ref": functionID(t, stack.Writer)},
		"EventSourceArn":                 importOf(t, fx.svcDoc, "ResultsQueue", "Arn"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("writer event source mapping (-want +got):\n%s", diff)
	}
	if stack.WriterBatchSize != 10 {
		t.Errorf("writer batch size = %d, want 10 (an SQS batch)", stack.WriterBatchSize)
	}
}

// importOf returns the Fn::ImportValue by which the service stack refers
// to an attribute of a data-stack resource, failing when there is none.
func importOf(t *testing.T, d doc, logicalID, attr string) any {
	t.Helper()
	var found any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if imp, ok := v["Fn::ImportValue"]; ok {
				if s := fmt.Sprint(imp); strings.Contains(s, logicalID+attr) || strings.Contains(s, logicalID+"."+attr) {
					found = v
					return
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d["Resources"])
	if found == nil {
		t.Fatalf("no import of %s.%s in the service template", logicalID, attr)
	}
	return found
}

func TestReconcileSchedule(t *testing.T) {
	_, rule := fx.svcDoc.only(t, "AWS::Events::Rule")
	p := props(rule)
	if got := p["ScheduleExpression"]; got != "rate(2 minutes)" {
		t.Errorf("schedule = %v, want rate(2 minutes)", got)
	}
	targets, _ := p["Targets"].([]any)
	if len(targets) != 1 || !strings.Contains(fmt.Sprint(targets[0]), functionID(t, stack.Reconciler)) {
		t.Errorf("rule targets = %v, want the reconciler only", targets)
	}
	check(t, "reconciler reserved concurrency", func() {
		fx.svc.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Handler": "bootstrap", "ReservedConcurrentExecutions": 1,
		})
	})
}

func TestAlarms(t *testing.T) {
	alarms := fx.svcDoc.resources("AWS::CloudWatch::Alarm")
	topicID, _ := fx.svcDoc.only(t, "AWS::SNS::Topic")
	byPrefix := func(prefix string) map[string]any {
		t.Helper()
		for id, a := range alarms {
			if strings.HasPrefix(id, prefix) {
				return props(a)
			}
		}
		t.Fatalf("no alarm %s", prefix)
		return nil
	}
	for _, a := range alarms {
		p := props(a)
		if !strings.Contains(fmt.Sprint(p["AlarmActions"]), topicID) {
			t.Errorf("alarm %v does not notify the topic", p["AlarmDescription"])
		}
	}
	for _, q := range schema.Queues {
		p := byPrefix(stack.AlarmDLQ(q))
		if p["MetricName"] != "ApproximateNumberOfMessagesVisible" || p["Namespace"] != "AWS/SQS" ||
			p["Threshold"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
			t.Errorf("DLQ alarm %s = %v", q.DLQID(), p)
		}
		if dims := fmt.Sprint(p["Dimensions"]); !strings.Contains(dims, q.DLQID()+"QueueName") {
			t.Errorf("DLQ alarm %s watches %s", q.DLQID(), dims)
		}
	}
	for alarm, fn := range map[string]string{
		stack.AlarmProcessorErrors: stack.Processor, stack.AlarmReconcilerErrors: stack.Reconciler, stack.AlarmWriterErrors: stack.Writer,
	} {
		if p := byPrefix(alarm); p["MetricName"] != "Errors" || !strings.Contains(fmt.Sprint(p["Dimensions"]), functionID(t, fn)) {
			t.Errorf("%s errors alarm = %v", fn, p)
		}
	}
	lag := byPrefix(stack.AlarmReconcileLag)
	wantLag := map[string]any{
		"Namespace": "snowgate", "MetricName": "ReconcileLagSeconds", "Statistic": "Maximum",
		"Threshold": 600.0, "ComparisonOperator": "GreaterThanThreshold", "Dimensions": nil,
	}
	gotLag := map[string]any{}
	for k := range wantLag {
		gotLag[k] = lag[k]
	}
	if diff := cmp.Diff(wantLag, gotLag); diff != "" {
		t.Errorf("reconcile lag alarm (-want +got):\n%s", diff)
	}
	age := byPrefix(stack.AlarmIntakeAge)
	if age["MetricName"] != "ApproximateAgeOfOldestMessage" || age["Namespace"] != "AWS/SQS" ||
		age["Threshold"] != stack.IntakeAgeThreshold.Seconds() || age["ComparisonOperator"] != "GreaterThanThreshold" ||
		!strings.Contains(fmt.Sprint(age["Dimensions"]), "IntakeQueueQueueName") {
		t.Errorf("intake age alarm = %v", age)
	}
	rate := byPrefix(stack.AlarmIngest5xxRate)
	expr := fmt.Sprint(rate["Metrics"])
	for _, want := range []string{"5xx", "Count", "AWS/ApiGateway", "100 * errors / requests"} {
		if !strings.Contains(expr, want) {
			t.Errorf("ingest 5xx rate alarm metrics %s lack %q", expr, want)
		}
	}
}

func TestDashboard(t *testing.T) {
	_, d := fx.svcDoc.only(t, "AWS::CloudWatch::Dashboard")
	body := fmt.Sprint(props(d)["DashboardBody"])
	want := []string{"AWS/ApiGateway", "Latency", "ApproximateNumberOfMessagesVisible",
		"ApproximateAgeOfOldestMessage", "ReconcileLagSeconds", "GatewayPaused", "Unauthorized", "ResultsRetried"}
	for _, o := range stack.Outcomes {
		want = append(want, strconv.Quote(o)[1:len(o)+1])
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("dashboard lacks %q", w)
		}
	}
	if diff := cmp.Diff([]string{"accepted", "stale", "unchanged", "out_of_scope", "deduplicated", "deferred", "expired", "failed"}, stack.Outcomes); diff != "" {
		t.Errorf("outcome metric names (-want +got):\n%s", diff)
	}
}

// schemaOutputKeys reads every Output* constant of internal/schema, so a key
// added there fails this test until the stack exports it.
func schemaOutputKeys(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../../internal/schema/outputs.go", nil, 0)
	if err != nil {
		t.Fatalf("parse schema outputs: %v", err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if strings.HasPrefix(name.Name, "Output") && i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					v, _ := strconv.Unquote(lit.Value)
					keys = append(keys, v)
				}
			}
		}
		return true
	})
	if len(keys) == 0 {
		t.Fatal("no Output constants found in internal/schema/outputs.go")
	}
	return keys
}

func TestOutputs(t *testing.T) {
	outputs, _ := fx.svcDoc["Outputs"].(map[string]any)
	want := map[string]bool{stack.OutputAlarmTopicARN: true, stack.OutputDispatchQueueARN: true, stack.OutputResultsQueueARN: true}
	for _, k := range schemaOutputKeys(t) {
		want[k] = true
	}
	for k := range want {
		if _, ok := outputs[k]; !ok {
			t.Errorf("service stack lacks output %s", k)
		}
	}
	for k := range outputs {
		if !want[k] {
			t.Errorf("service stack has unexpected output %s", k)
		}
	}
	// Re-exported names must point at the right data-stack resources.
	refs := map[string]string{
		schema.OutputRegistryTable:    "RegistryTable",
		schema.OutputStateTable:       "StateTable",
		schema.OutputIntakeQueueURL:   "IntakeQueue",
		schema.OutputIntakeDLQURL:     "IntakeDLQ",
		schema.OutputDispatchQueueURL: "DispatchQueue",
		schema.OutputDispatchDLQURL:   "DispatchDLQ",
		schema.OutputResultsQueueURL:  "ResultsQueue",
		schema.OutputResultsDLQURL:    "ResultsDLQ",
		stack.OutputDispatchQueueARN:  "DispatchQueueArn",
		stack.OutputResultsQueueARN:   "ResultsQueueArn",
		schema.OutputAPIURL:           "Api",
	}
	for key, res := range refs {
		v := fmt.Sprint(outputs[key])
		if !strings.Contains(v, res) {
			t.Errorf("output %s = %s, want a reference to %s", key, v, res)
		}
	}
	if v, want := outputs[schema.OutputSecretPrefix].(map[string]any)["Value"], schema.SecretPrefix(fx.svcName); v != want {
		t.Errorf("output %s = %v, want %q", schema.OutputSecretPrefix, v, want)
	}
	altOutputs, _ := fx.altSvcDoc["Outputs"].(map[string]any)
	if v := altOutputs[schema.OutputSecretPrefix].(map[string]any)["Value"]; v != altSettings.SecretPrefix {
		t.Errorf("with secretPrefix %q: output %s = %v", altSettings.SecretPrefix, schema.OutputSecretPrefix, v)
	}
	if fx.svcName != schema.DefaultStackName || fx.dataName != schema.DefaultStackName+stack.DataSuffix {
		t.Errorf("stack names = %s, %s; want %s and %s-data", fx.svcName, fx.dataName, schema.DefaultStackName, schema.DefaultStackName)
	}
}

// Ingest reserves its concurrency (DefaultIngestConcurrency, or the
// setting): a flood of webhooks is throttled at that ceiling instead of
// taking the account's concurrency from the processor and the writer. The
// processor reserves none, so nothing below its event source's
// MaximumConcurrency throttles the batches it is handed; and what the stack
// reserves leaves Lambda's unreserved 100 of a default account's 1000.
func TestConcurrencyFits(t *testing.T) {
	reserved := func(fn string) any {
		return props(function(t, fn))["ReservedConcurrentExecutions"]
	}
	if got := reserved(stack.Ingest); got != float64(stack.DefaultIngestConcurrency) {
		t.Errorf("ingest reserved concurrency = %v, want %d", got, stack.DefaultIngestConcurrency)
	}
	if stack.DefaultIngestConcurrency != 50 {
		t.Errorf("DefaultIngestConcurrency = %d, want 50", stack.DefaultIngestConcurrency)
	}
	var altIngest any
	for id, r := range fx.altSvcDoc.resources("AWS::Lambda::Function") {
		if strings.HasPrefix(id, stack.Ingest) {
			altIngest = props(r)["ReservedConcurrentExecutions"]
		}
	}
	if altIngest != float64(altSettings.IngestConcurrency) {
		t.Errorf("with ingestConcurrency %d: ingest reserved concurrency = %v", altSettings.IngestConcurrency, altIngest)
	}
	if got := reserved(stack.Processor); got != nil {
		t.Errorf("processor reserved concurrency = %v, want none (it would throttle its event source)", got)
	}
	total := 0.0
	for _, fn := range stack.Functions {
		if n, ok := reserved(fn).(float64); ok {
			total += n
		}
	}
	// Lambda's own bounds of an SQS event source's MaximumConcurrency.
	if stack.ProcessorMaxConcurrency < 2 || stack.ProcessorMaxConcurrency > 1000 || stack.WriterMaxConcurrency < 2 {
		t.Errorf("event source MaximumConcurrency %d (processor), %d (writer): Lambda takes 2 to 1000",
			stack.ProcessorMaxConcurrency, stack.WriterMaxConcurrency)
	}
	if unreserved := 1000 - total; unreserved-stack.ProcessorMaxConcurrency-stack.WriterMaxConcurrency < 100 {
		t.Errorf("reserved %v: the processor's and the writer's pollers no longer fit beside Lambda's unreserved 100 of 1000", total)
	}
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {1, true}, {50, true}, {stack.MaxIngestConcurrency, true}, {stack.MaxIngestConcurrency + 1, false}} {
		if err := stack.CheckIngestConcurrency(tc.n); (err == nil) != tc.ok {
			t.Errorf("CheckIngestConcurrency(%d) = %v, want ok %v", tc.n, err, tc.ok)
		}
	}
}
