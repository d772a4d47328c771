package stack_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestParseFront(t *testing.T) {
	tests := []struct {
		in      string
		want    stack.Front
		wantErr bool
	}{
		{"", stack.FrontHTTPAPI, false},
		{"http-api", stack.FrontHTTPAPI, false},
		{"function-url", stack.FrontFunctionURL, false},
		{"Function-URL", "", true},
		{"rest-api", "", true},
	}
	for _, tt := range tests {
		got, err := stack.ParseFront(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseFront(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// Each front brings exactly its own resources, and the rest of the service
// stack is the same.
func TestFrontResources(t *testing.T) {
	tests := []struct {
		typ           string
		httpAPI, furl int
	}{
		{"AWS::ApiGatewayV2::Api", 1, 0},
		{"AWS::ApiGatewayV2::Route", 1, 0},
		{"AWS::ApiGatewayV2::Integration", 1, 0},
		{"AWS::ApiGatewayV2::Stage", 1, 0},
		{"AWS::Lambda::Url", 0, 1},
		// API Gateway and EventBridge invoke; or EventBridge, and anyone
		// through the URL (InvokeFunctionUrl plus InvokeFunction via the URL).
		{"AWS::Lambda::Permission", 2, 3},
		// The HTTP API's access logs; a function URL has none (ingest logs
		// one line per request either way).
		{"AWS::Logs::LogGroup", len(stack.Functions) + 1, len(stack.Functions)},
		{"AWS::Lambda::Function", len(stack.Functions), len(stack.Functions)},
		{"AWS::IAM::Role", len(stack.Functions), len(stack.Functions)},
		// The processor's on the intake queue, the writer's on the results queue.
		{"AWS::Lambda::EventSourceMapping", 2, 2},
		{"AWS::Events::Rule", 1, 1},
		{"AWS::CloudWatch::Alarm", alarmCount, alarmCount},
		{"AWS::CloudWatch::Dashboard", 1, 1},
		{"AWS::SNS::Topic", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			if got := len(fx.svcDoc.resources(tt.typ)); got != tt.httpAPI {
				t.Errorf("%s front: %s resources = %d, want %d", stack.FrontHTTPAPI, tt.typ, got, tt.httpAPI)
			}
			if got := len(fx.urlSvcDoc.resources(tt.typ)); got != tt.furl {
				t.Errorf("%s front: %s resources = %d, want %d", stack.FrontFunctionURL, tt.typ, got, tt.furl)
			}
		})
	}
	check(t, "ResourceCountIs function URL", func() {
		fx.urlSvc.ResourceCountIs(jsii.String("AWS::Lambda::Url"), jsii.Number(1))
		fx.urlSvc.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Api"), jsii.Number(0))
	})
}

func TestFunctionURL(t *testing.T) {
	_, url := fx.urlSvcDoc.only(t, "AWS::Lambda::Url")
	p := props(url)
	got := map[string]any{"AuthType": p["AuthType"], "InvokeMode": p["InvokeMode"], "Cors": p["Cors"], "Qualifier": p["Qualifier"]}
	want := map[string]any{"AuthType": "NONE", "InvokeMode": "BUFFERED", "Cors": nil, "Qualifier": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("function URL (-want +got):\n%s", diff)
	}
	ingestID := functionIDIn(t, fx.urlSvcDoc, stack.Ingest)
	if target := fmt.Sprint(p["TargetFunctionArn"]); !strings.Contains(target, ingestID) {
		t.Errorf("function URL targets %s, want the ingest function %s", target, ingestID)
	}
	check(t, "function URL auth type", func() {
		fx.urlSvc.HasResourceProperties(jsii.String("AWS::Lambda::Url"), map[string]any{"AuthType": "NONE"})
	})

	// The public permissions are on ingest only, and only through the URL.
	var public []map[string]any
	for id, perm := range fx.urlSvcDoc.resources("AWS::Lambda::Permission") {
		pp := props(perm)
		if pp["Principal"] != "*" {
			continue
		}
		if fn := fmt.Sprint(pp["FunctionName"]); !strings.Contains(fn, ingestID) {
			t.Errorf("permission %s lets anyone invoke %s", id, fn)
		}
		public = append(public, map[string]any{
			"Action": pp["Action"], "FunctionUrlAuthType": pp["FunctionUrlAuthType"], "InvokedViaFunctionUrl": pp["InvokedViaFunctionUrl"],
		})
	}
	wantPublic := []map[string]any{
		{"Action": "lambda:InvokeFunction", "FunctionUrlAuthType": nil, "InvokedViaFunctionUrl": true},
		{"Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE", "InvokedViaFunctionUrl": nil},
	}
	if diff := cmp.Diff(wantPublic, public, cmp.Transformer("byAction", func(in []map[string]any) []map[string]any {
		out := append([]map[string]any(nil), in...)
		for i := 1; i < len(out); i++ {
			for j := i; j > 0 && fmt.Sprint(out[j-1]["Action"]) > fmt.Sprint(out[j]["Action"]); j-- {
				out[j-1], out[j] = out[j], out[j-1]
			}
		}
		return out
	})); diff != "" {
		t.Errorf("public permissions (-want +got):\n%s", diff)
	}
	// The HTTP API front grants nothing to the public.
	for id, perm := range fx.svcDoc.resources("AWS::Lambda::Permission") {
		if props(perm)["Principal"] == "*" {
			t.Errorf("%s front: permission %s is public", stack.FrontHTTPAPI, id)
		}
	}
}

// Both fronts answer the CLI's question the same way: the output it reads
// (schema.OutputAPIURL) is a base URL without a trailing slash.
func TestFrontOutputs(t *testing.T) {
	for _, f := range fronts() {
		t.Run(string(f.front), func(t *testing.T) {
			outputs, _ := f.d["Outputs"].(map[string]any)
			want := append(schemaOutputKeys(t), stack.OutputAlarmTopicARN, stack.OutputDispatchQueueARN, stack.OutputResultsQueueARN)
			for _, k := range want {
				if _, ok := outputs[k]; !ok {
					t.Errorf("service stack lacks output %s", k)
				}
			}
			if len(outputs) != len(want) {
				t.Errorf("service stack has %d outputs, want %d", len(outputs), len(want))
			}
			v := fmt.Sprint(outputs[schema.OutputAPIURL].(map[string]any)["Value"])
			t.Logf("%s = %s", schema.OutputAPIURL, v)
			switch f.front {
			case stack.FrontHTTPAPI:
				if !strings.Contains(v, "Api") || !strings.Contains(v, "ApiEndpoint") {
					t.Errorf("output %s = %s, want the HTTP API's endpoint", schema.OutputAPIURL, v)
				}
			case stack.FrontFunctionURL:
				_, urlID := onlyID(t, f.d, "AWS::Lambda::Url")
				// scheme + "//" + host of the URL, which ends with "/".
				for _, want := range []string{"Fn::Join", "Fn::Select", "Fn::Split", urlID, "FunctionUrl", "//"} {
					if !strings.Contains(v, want) {
						t.Errorf("output %s = %s, want it built from %s's FunctionUrl (lacks %q)", schema.OutputAPIURL, v, urlID, want)
					}
				}
			}
		})
	}
}

// The alarms and the dashboard watch the front that exists.
func TestFrontMonitoring(t *testing.T) {
	tests := []struct {
		front      stack.Front
		d          doc
		alarm      []string
		dashboard  []string
		notInAlarm []string
	}{
		{stack.FrontHTTPAPI, fx.svcDoc,
			[]string{"AWS/ApiGateway", "5xx", "Count"},
			[]string{"AWS/ApiGateway", "Latency", "IntegrationLatency"},
			[]string{"Url5xxCount"}},
		{stack.FrontFunctionURL, fx.urlSvcDoc,
			[]string{"AWS/Lambda", stack.MetricURL5xx, stack.MetricURLRequests, functionIDIn(t, fx.urlSvcDoc, stack.Ingest)},
			[]string{stack.MetricURLRequests, stack.MetricURL4xx, stack.MetricURL5xx, stack.MetricURLLatency},
			[]string{"AWS/ApiGateway"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.front), func(t *testing.T) {
			var rate map[string]any
			for id, a := range tt.d.resources("AWS::CloudWatch::Alarm") {
				if strings.HasPrefix(id, stack.AlarmIngest5xxRate) {
					rate = props(a)
				}
			}
			if rate == nil {
				t.Fatalf("no %s alarm", stack.AlarmIngest5xxRate)
			}
			metrics := fmt.Sprint(rate["Metrics"])
			for _, w := range tt.alarm {
				if !strings.Contains(metrics, w) {
					t.Errorf("%s alarm metrics %s lack %q", stack.AlarmIngest5xxRate, metrics, w)
				}
			}
			for _, w := range tt.notInAlarm {
				if strings.Contains(metrics, w) {
					t.Errorf("%s alarm metrics %s watch %q, a front that is not there", stack.AlarmIngest5xxRate, metrics, w)
				}
			}
			_, d := tt.d.only(t, "AWS::CloudWatch::Dashboard")
			body := fmt.Sprint(props(d)["DashboardBody"])
			for _, w := range tt.dashboard {
				if !strings.Contains(body, w) {
					t.Errorf("dashboard lacks %q", w)
				}
			}
		})
	}
}

func functionIDIn(t *testing.T, d doc, name string) string {
	t.Helper()
	for id := range d.resources("AWS::Lambda::Function") {
		if strings.HasPrefix(id, name) {
			return id
		}
	}
	t.Fatalf("function %s not in the template", name)
	return ""
}

func onlyID(t *testing.T, d doc, typ string) (map[string]any, string) {
	t.Helper()
	id, r := d.only(t, typ)
	return r, id
}
