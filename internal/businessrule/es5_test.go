package businessrule_test

import (
	"strings"
	"testing"

	"github.com/robertkrimen/otto/parser"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
)

// parseES5 parses a script as ECMAScript 5.1 and nothing later: otto's
// parser knows no let, const, arrow functions, template literals, classes,
// destructuring, spread or default parameters, so any of them is a syntax
// error. A Global-scope rule runs in ES5 Standards mode, where such a
// script fails on every run; goja, which runs the script in the tests,
// accepts them all.
func parseES5(src string) error {
	_, err := parser.ParseFile(nil, "business_rule.js", src, 0)
	return err
}

// TestScriptIsES5 parses every rendered variant, each table and each
// signing mode, with the ES5-only parser.
func TestScriptIsES5(t *testing.T) {
	for _, table := range registry.EventTypes {
		for _, signing := range []string{registry.SigningSecret, registry.SigningHMAC} {
			t.Run(table+"/"+signing, func(t *testing.T) {
				rule := renderVariant(t, table, signing)
				if err := parseES5(rule.Script); err != nil {
					t.Errorf("rendered script is not ES5: %v\n%s", err, rule.Script)
				}
			})
		}
	}
}

// TestParseES5RejectsLaterSyntax proves the check bites: the rendered
// script with one ES2015+ construct swapped in is refused.
func TestParseES5RejectsLaterSyntax(t *testing.T) {
	script := renderVariant(t, registry.TableIncident, registry.SigningHMAC).Script
	tests := []struct{ name, old, new string }{
		{"let", "var body =", "let body ="},
		{"const", "var request =", "const request ="},
		{"arrow function", "(function executeRule(current, previous /*null when async*/) {", "((current, previous) => {"},
		{"template literal", "'webhook-id'", "`webhook-id`"},
		{"shorthand property", "operation: String(current.operation())", "current"},
		{"default parameter", "previous /*null when async*/", "previous = null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(script, tc.old) {
				t.Fatalf("rendered script lacks %q", tc.old)
			}
			changed := strings.Replace(script, tc.old, tc.new, 1)
			if err := parseES5(changed); err == nil {
				t.Errorf("parseES5 accepted a script with a %s", tc.name)
			}
		})
	}
}

func renderVariant(t *testing.T, table, signing string) businessrule.Rule {
	t.Helper()
	secret := "s3cret-static-value"
	if signing == registry.SigningHMAC {
		secret = webhook.NewSigningKey()
	}
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_00000000-0000-4000-8000-000000000001", WebhookName: "es5", Table: table,
		URL: ingestURL, Signing: signing, Secret: secret, Instance: "acme",
		Condition: registry.Gateway{AssignmentGroupFilter: "Network", EnvironmentFilter: "production"}.ScopeQuery(),
	})
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", table, signing, err)
	}
	return rule
}
