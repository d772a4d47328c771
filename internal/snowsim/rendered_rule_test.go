package snowsim_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
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
				Signing: tc.signing, Secret: tc.secret, Condition: gw.ScopeQuery(), Instance: "acme",
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
			sim, srv := start(t, snowsim.WithProperty(snowsim.PropInstanceName, "acme"))
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
				"sys_mod_count": float64(0), "operation": "insert", "instance_name": "acme"}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("webhook body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderedRuleOnAClone: the rule printed for one instance, run on an
// instance of another name (the simulator's own, as a clone has its own),
// posts nothing and logs a warning instead of failing; printed without an
// instance name it posts the name it runs on.
func TestRenderedRuleOnAClone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		printed  string
		wantSent int
	}{
		{"printed for another instance", "acme", 0},
		{"printed without a name", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			rule, err := businessrule.Render(businessrule.Params{
				WebhookID: "whk_00000000-0000-4000-8000-000000000003", Table: "incident",
				URL:     rc.URL + "/api/webhooks/ingest/0123456789abcdef01234567",
				Signing: registry.SigningSecret, Secret: "s3cret-static-value", Instance: tc.printed,
			})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			var logs bytes.Buffer
			sim, srv := start(t, snowsim.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			if err := sim.AddBusinessRule(snowsim.Rule{Name: rule.Name, Table: rule.Table, Condition: rule.Condition,
				Script: rule.Script, Insert: rule.Insert, Update: rule.Update, Scope: rule.Application}); err != nil {
				t.Fatalf("AddBusinessRule(rendered): %v", err)
			}
			call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": "on the clone"})
			waitOutbound(t, sim)
			got := rc.requests()
			if len(got) != tc.wantSent || sim.Stats().RuleErrors != 0 {
				t.Fatalf("receiver got %d webhooks (%d rule errors), want %d and none", len(got), sim.Stats().RuleErrors, tc.wantSent)
			}
			if tc.wantSent == 0 {
				if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "this instance is "+snowsim.DefaultInstanceName) {
					t.Errorf("simulator log %q has no warning naming this instance", logs.String())
				}
				return
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(got[0].Body), &body); err != nil {
				t.Fatal(err)
			}
			if body["instance_name"] != snowsim.DefaultInstanceName {
				t.Errorf("instance_name = %v, want %q", body["instance_name"], snowsim.DefaultInstanceName)
			}
		})
	}
}

// ruleSteps loads the Business Rule rendered for gw on table into a new
// simulator and returns a function that writes to a ticket (inserting it
// the first time its name is used, updating it after) and reports whether
// the rule fired for that write, the simulator and its URL.
func ruleSteps(t *testing.T, gw registry.Gateway, table string) (func(record string, body map[string]any) bool, *snowsim.Sim, string) {
	t.Helper()
	rc := newReceiver(t, nil)
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_00000000-0000-4000-8000-000000000002", WebhookName: table,
		Table: table, URL: rc.URL + "/api/webhooks/ingest/0123456789abcdef01234567",
		Signing: registry.SigningSecret, Secret: "s3cret-static-value", Condition: gw.RuleCondition(),
	})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	sim, srv := start(t)
	if err := sim.AddBusinessRule(snowsim.Rule{Name: rule.Name, Table: rule.Table, Condition: rule.Condition,
		Script: rule.Script, Insert: rule.Insert, Update: rule.Update, Scope: rule.Application}); err != nil {
		t.Fatalf("AddBusinessRule(rendered): %v", err)
	}
	base := srv.URL + "/api/now/table/" + table
	ids := map[string]string{}
	sent := 0
	return func(record string, body map[string]any) bool {
		t.Helper()
		if id, ok := ids[record]; ok {
			call(t, "PATCH", base+"/"+id, body)
		} else {
			b := map[string]any{"short_description": "ticket " + record}
			maps.Copy(b, body)
			ids[record] = call(t, "POST", base, b).result(t)["sys_id"].(string)
		}
		waitOutbound(t, sim)
		n := len(rc.requests())
		fired := n > sent
		sent = n
		return fired
	}, sim, srv.URL
}

// TestRenderedRuleSeesTicketsLeaveScope runs the rule printed for a gateway
// (its RuleCondition) on a sequence of writes and checks, after each, that
// the rule fired or did not: a ticket entering or changing in scope fires
// it, and so does one leaving the scope (closed, cancelled, moved to
// another group or environment), so the processor hears of it at once; a
// ticket that was never in scope does not, however it changes.
func TestRenderedRuleSeesTicketsLeaveScope(t *testing.T) {
	const groupServiceDesk = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03"
	byID := registry.Gateway{AssignmentGroupFilter: "Network,Database", AssignmentGroupIDs: []string{groupNetwork, groupDatabase},
		EnvironmentFilter: "production,staging"}
	byName := registry.Gateway{AssignmentGroupFilter: "Network,Database", EnvironmentFilter: "production,staging"}
	inScope := map[string]any{"assignment_group": groupNetwork, "u_environment": "production"}
	outside := map[string]any{"assignment_group": groupServiceDesk, "u_environment": "production"}
	steps := []struct {
		name string
		// record names the ticket the step writes; a new name inserts it.
		record string
		body   map[string]any
		fires  bool
	}{
		{"insert in scope", "a", inScope, true},
		{"priority raised", "a", map[string]any{"priority": "1"}, true},
		{"resolved (still active)", "a", map[string]any{"state": "6"}, true},
		{"closed", "a", map[string]any{"state": "7"}, true},
		{"edited after closing", "a", map[string]any{"description": "late note"}, false},

		{"second ticket in scope", "b", inScope, true},
		{"cancelled", "b", map[string]any{"state": "8"}, true},

		{"third ticket in scope", "c", inScope, true},
		{"moved to another group in the filter", "c", map[string]any{"assignment_group": groupDatabase}, true},
		{"moved to a group outside the filter", "c", map[string]any{"assignment_group": groupServiceDesk}, true},
		{"edited outside the filter", "c", map[string]any{"priority": "2"}, false},

		{"fourth ticket in scope", "d", inScope, true},
		{"moved to another environment", "d", map[string]any{"u_environment": "development"}, true},
		{"edited in that environment", "d", map[string]any{"priority": "2"}, false},

		{"fifth ticket in scope", "e", inScope, true},
		{"moved out and closed at once", "e", map[string]any{"assignment_group": groupServiceDesk, "u_environment": "development", "state": "7"}, true},

		{"never in scope: insert", "x", outside, false},
		{"never in scope: edited", "x", map[string]any{"priority": "1"}, false},
		{"never in scope: other environment", "x", map[string]any{"u_environment": "development"}, false},
		{"never in scope: closed", "x", map[string]any{"state": "7"}, false},
		{"never in scope: inserted closed", "y", map[string]any{"assignment_group": groupServiceDesk, "u_environment": "staging", "state": "7"}, false},
		{"never in scope: inserted in another group", "z", map[string]any{"assignment_group": groupServiceDesk, "u_environment": "staging"}, false},
		{"enters the group", "z", map[string]any{"assignment_group": groupDatabase}, true},
	}
	for _, gc := range []struct {
		name string
		gw   registry.Gateway
		// namesOnly: with a group filter by name the rule can only say
		// "the group changes", so it fires for a move between two groups
		// outside the filter too.
		namesOnly bool
	}{{"groups by sys_id", byID, false}, {"groups by name", byName, true}} {
		t.Run(gc.name, func(t *testing.T) {
			write, sim, url := ruleSteps(t, gc.gw, "incident")
			for _, s := range steps {
				if fired := write(s.record, s.body); fired != s.fires {
					t.Errorf("%s: rule fired = %v, want %v", s.name, fired, s.fires)
				}
			}
			// A move between two groups outside the filter, in one of its
			// environments.
			other := call(t, "POST", url+"/api/now/table/sys_user_group", map[string]any{"name": "Facilities"}).result(t)["sys_id"].(string)
			if write("w", outside) {
				t.Error("never in scope: another insert: rule fired")
			}
			if fired := write("w", map[string]any{"assignment_group": other}); fired != gc.namesOnly {
				t.Errorf("never in scope: moved between groups outside the filter: rule fired = %v, want %v", fired, gc.namesOnly)
			}
			if st := sim.Stats(); st.RuleErrors != 0 {
				t.Errorf("rendered script threw %d times", st.RuleErrors)
			}
		})
	}
}

// TestRenderedRuleOnChangeRequests: a change request's moves through its
// states fire the rule while it is in scope, and closing or cancelling it
// (states 3 and 4, which clear active) fires it once more.
func TestRenderedRuleOnChangeRequests(t *testing.T) {
	gw := registry.Gateway{AssignmentGroupFilter: "Network", AssignmentGroupIDs: []string{groupNetwork}}
	write, _, _ := ruleSteps(t, gw, "change_request")
	inScope := map[string]any{"assignment_group": groupNetwork, "approval": "approved", "state": "-2"}
	for _, s := range []struct {
		name   string
		record string
		body   map[string]any
		fires  bool
	}{
		{"scheduled", "a", inScope, true},
		{"implement", "a", map[string]any{"state": "-1"}, true},
		{"review", "a", map[string]any{"state": "0"}, true},
		{"closed", "a", map[string]any{"state": "3"}, true},
		{"edited after closing", "a", map[string]any{"description": "late"}, false},
		{"another scheduled", "b", inScope, true},
		{"cancelled", "b", map[string]any{"state": "4"}, true},
		{"another group's change", "c", map[string]any{"assignment_group": groupDatabase, "state": "-2"}, false},
		{"another group's change closed", "c", map[string]any{"state": "3"}, false},
	} {
		if fired := write(s.record, s.body); fired != s.fires {
			t.Errorf("%s: rule fired = %v, want %v", s.name, fired, s.fires)
		}
	}
}
