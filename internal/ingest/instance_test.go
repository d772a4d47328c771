package ingest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
)

// splitRegistry reads routes from one registry table and gateways from
// another, so a test can fail the gateway read alone.
type splitRegistry struct {
	routes, gateways *registry.Store
}

func (s splitRegistry) Route(ctx context.Context, path string) (registry.Route, error) {
	return s.routes.Route(ctx, path)
}

func (s splitRegistry) Gateway(ctx context.Context, id string) (registry.Gateway, error) {
	return s.gateways.Gateway(ctx, id)
}

// TestInstance: the instance a rule says it runs on must be its gateway's.
// Another instance (a clone posting with production's secret) gets the
// one 401; a rule that names no instance (printed before rules did) is
// accepted with a warning and a count; a gateway whose URL names no
// instance compares nothing; a path whose gateway is gone is refused; and
// a gateway that cannot be read does not lose an authenticated change.
func TestInstance(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	const (
		customGateway = "gtw_22222222-2222-4333-8444-555555555555"
		goneGateway   = "gtw_33333333-2222-4333-8444-555555555555"
		customPath    = "c00000000000000000000001"
		gonePath      = "c00000000000000000000002"
	)
	e.putGateway(t, registry.Gateway{ID: customGateway, Active: true, InstanceURL: "https://itsm.acme.example"})
	for path, gw := range map[string]string{customPath: customGateway, gonePath: goneGateway} {
		e.putRoute(t, registry.Route{Path: path, WebhookID: webhookID, GatewayID: gw, Table: registry.TableIncident,
			Active: true, Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(testSecret)}}})
	}
	tests := []struct {
		name       string
		reg        ingest.Registry // nil: the test's registry
		path, body string
		want       int
		wantLog    string // in the log line
		wantMetric string // counted for webhookID
	}{
		{"same instance", nil, secretPath, withInstance("acme"), 202, `"outcome":"accepted"`, ""},
		{"another instance", nil, secretPath, withInstance("acmedev"), 401, `"reason":"instance_mismatch"`, ingest.MetricUnauthorized},
		{"a rule that names no instance", nil, secretPath, minimalBody, 202, `"level":"WARN","msg":"ingest","request_id":"` + lambdaReqID + `","outcome":"accepted","status":202`, ingest.MetricNoInstanceName},
		{"an empty name", nil, secretPath, withInstance(""), 202, `"reason":"no_instance_name"`, ingest.MetricNoInstanceName},
		{"gateway on a custom domain", nil, customPath, withInstance("anything"), 202, `"outcome":"accepted"`, ""},
		{"gateway gone", nil, gonePath, withInstance("acme"), 401, `"reason":"unknown_gateway"`, ingest.MetricUnauthorized},
		{"gateway unreadable", splitRegistry{registry.New(e.ddb, e.res.RegistryTable), registry.New(e.ddb, e.res.RegistryTable+"-missing")},
			secretPath, withInstance("acmedev"), 202, `"reason":"instance_unchecked"`, ingest.MetricInstanceUnchecked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs, emf bytes.Buffer
			opts := ingest.Options{Now: (&clock{t: now}).Now, Logger: jsonLogger(&logs), Metrics: emitter(&emf)}
			var h *ingest.Handler
			if tt.reg != nil {
				h = ingest.New(tt.reg, e.secrets, e.sender(), opts)
			} else {
				h = e.handler(t, &clock{t: now}, opts)
			}
			got := responseOf(req{path: tt.path, secret: testSecret, body: tt.body}.do(t, h))
			if got.Status != tt.want {
				t.Errorf("status %d %s, want %d", got.Status, got.Body, tt.want)
			}
			if tt.want == 401 {
				if diff := cmp.Diff(unauthorized, got); diff != "" {
					t.Errorf("response differs from a wrong secret's (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %s lacks %s", logs.String(), tt.wantLog)
			}
			c := counts(t, &emf)
			if tt.wantMetric == "" && len(c) != 0 {
				t.Errorf("counted %v, want nothing", c)
			}
			if tt.wantMetric != "" && c[tt.wantMetric+"/"+webhookID] != 1 {
				t.Errorf("counted %v, want %s = 1 for the webhook", c, tt.wantMetric)
			}
			wantQueued := 0
			if tt.want == 202 {
				wantQueued = 1
			}
			if n := len(e.drain(t)); n != wantQueued {
				t.Errorf("intake queue holds %d messages, want %d", n, wantQueued)
			}
		})
	}
}
