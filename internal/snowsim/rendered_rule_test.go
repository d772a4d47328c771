package snowsim_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/webhook"
)

// TestRenderedBusinessRule runs the exact script `2501 infra webhook create`
// prints, with the gateway's filter as its condition, on inserts through
// the Table API: as the Global rule it is meant to be (ES5 Standards mode,
// GlideCertificateEncryption), and as a rule created by mistake in a
// scoped application, where only CertificateEncryption exists. ServiceNow
// documents the Global class and its scoped equivalent:
// https://www.servicenow.com/docs/r/api-reference/server-api-reference/c_GlideCertificateEncryptionAPI.html
// https://www.servicenow.com/docs/r/api-reference/server-api-reference/c_CertificateEncryptionScopedAPI.html
// and that a rule belongs to the application scope it was created in:
// https://www.servicenow.com/docs/r/api-reference/business-rules-classic/c_BusinessRulesInScopedApps.html
func TestRenderedBusinessRule(t *testing.T) {
	// As registration stores it: the group resolved to its sys_id, which the
	// condition matches (a name would be compared case-sensitively).
	gw := registry.Gateway{AssignmentGroupFilter: "Network", AssignmentGroupIDs: []string{groupNetwork}, EnvironmentFilter: "production"}
	if want := "active=true^assignment_groupIN" + groupNetwork + "^u_environmentINproduction"; gw.ScopeQuery() != want {
		t.Fatalf("ScopeQuery() = %q, want %q", gw.ScopeQuery(), want)
	}
	key := webhook.NewSigningKey()
	tests := []struct {
		name    string
		signing string
		secret  string
		scope   string
	}{
		{"static secret", registry.SigningSecret, "s3cret-static-value", ""},
		{"hmac", registry.SigningHMAC, key, ""},
		{"static secret in a scoped application", registry.SigningSecret, "s3cret-static-value", "x_acme_app"},
		{"hmac in a scoped application", registry.SigningHMAC, key, "x_acme_app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			rule, err := businessrule.Render(businessrule.Params{
				WebhookID: "whk_00000000-0000-4000-8000-000000000001", WebhookName: "incidents",
				Table: "incident", URL: rc.URL + "/api/webhooks/ingest/0123456789abcdef01234567",
				Signing: tc.signing, Secret: tc.secret, Condition: gw.ScopeQuery(),
			})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if rule.Application != snowsim.GlobalScope {
				t.Fatalf("rendered rule's application = %q, want %q", rule.Application, snowsim.GlobalScope)
			}
			scope := rule.Application
			if tc.scope != "" {
				scope = tc.scope
			}
			sim, srv := start(t)
			err = sim.AddBusinessRule(snowsim.Rule{Name: rule.Name, Table: rule.Table, Condition: rule.Condition,
				Script: rule.Script, Insert: rule.Insert, Update: rule.Update, Scope: scope})
			if err != nil {
				t.Fatalf("AddBusinessRule(rendered): %v", err)
			}
			base := srv.URL + "/api/now/table/incident"

			// Outside the filter: another group, another environment.
			call(t, "POST", base, map[string]any{"short_description": "db", "assignment_group": groupDatabase, "u_environment": "production"})
			call(t, "POST", base, map[string]any{"short_description": "stg", "assignment_group": groupNetwork, "u_environment": "staging"})
			waitOutbound(t, sim)
			if n := len(rc.requests()); n != 0 {
				t.Fatalf("receiver got %d webhooks for records outside the filter, want 0", n)
			}

			created := call(t, "POST", base, map[string]any{"short_description": "in scope", "assignment_group": groupNetwork, "u_environment": "production"}).result(t)
			waitOutbound(t, sim)
			got := rc.requests()
			if len(got) != 1 {
				t.Fatalf("receiver got %d webhooks, want 1", len(got))
			}
			if st := sim.Stats(); st.RuleErrors != 0 {
				t.Errorf("rendered script threw %d times", st.RuleErrors)
			}
			h := got[0].Header
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			switch tc.signing {
			case registry.SigningSecret:
				if s := h.Get("X-Webhook-Secret"); s != tc.secret {
					t.Errorf("X-Webhook-Secret = %q, want the webhook's secret", s)
				}
			case registry.SigningHMAC:
				raw, _ := webhook.DecodeSigningKey(tc.secret)
				want := webhook.Sign(raw, h.Get("webhook-id"), h.Get("webhook-timestamp"), []byte(got[0].Body))
				if sig := h.Get("webhook-signature"); sig != want || h.Get("webhook-id") == "" {
					t.Errorf("webhook-signature = %q (id %q), want %q", sig, h.Get("webhook-id"), want)
				}
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(got[0].Body), &body); err != nil {
				t.Fatalf("body %q: %v", got[0].Body, err)
			}
			want := map[string]any{"sys_id": created["sys_id"], "table": "incident", "number": created["number"],
				"sys_mod_count": float64(0), "operation": "insert"}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("webhook body (-want +got):\n%s", diff)
			}
		})
	}
}
