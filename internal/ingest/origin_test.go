package ingest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/schema"
)

// With an origin secret (the stack's CloudFront edge), a request must carry
// it in schema.OriginHeader: one without it, or with another value, gets
// the 401 of every authentication failure and nothing is enqueued, even
// with the webhook's right secret. Without the setting the header means
// nothing.
func TestOriginSecret(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	payload, err := os.ReadFile(filepath.Join("testdata", "apigw_secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	const edge = "edge-origin-value-0123456789abcdefghij"
	tests := []struct {
		name       string
		setting    string
		origin     string // "" sends no header
		wantStatus int
	}{
		{"through the edge", edge, edge, 202},
		{"around the edge", edge, "", 401},
		{"wrong value", edge, edge + "x", 401},
		{"no edge", "", "", 202},
		{"no edge, a header anyway", "", "anything", 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := e.handler(t, &clock{t: now}, ingest.Options{OriginSecret: tt.setting})
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatal(err)
			}
			if tt.origin != "" {
				ev.Headers["x-snowgate-origin"] = tt.origin
			}
			in, _ := json.Marshal(ev)
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: lambdaReqID})
			out, err := lambda.NewHandler(h.HandleAPIGateway).Invoke(ctx, in)
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			var got events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.StatusCode != tt.wantStatus || (tt.wantStatus == 401 && got.Body != unauthorized.Body) {
				t.Errorf("status %d %s, want %d", got.StatusCode, got.Body, tt.wantStatus)
			}
			if n, want := len(e.drain(t)), map[bool]int{true: 1, false: 0}[tt.wantStatus == 202]; n != want {
				t.Errorf("%d messages enqueued, want %d", n, want)
			}
		})
	}
	if schema.OriginHeader != "X-Snowgate-Origin" {
		t.Errorf("OriginHeader = %q: the stack's CloudFront sends X-Snowgate-Origin", schema.OriginHeader)
	}
}

func TestEnvOriginSecret(t *testing.T) {
	env, err := ingest.EnvFromGetenv(func(k string) string {
		return map[string]string{
			schema.EnvRegistryTable: "t", schema.EnvIntakeQueueURL: "q", schema.EnvStateTable: "s", schema.EnvOriginSecret: " v ",
		}[k]
	})
	if err != nil || env.OriginSecret != "v" {
		t.Errorf("EnvFromGetenv = %+v, %v; want OriginSecret v", env, err)
	}
}
