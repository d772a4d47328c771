package cli_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/webhook"
)

// createdView is the JSON of webhook create and rotate-secret.
type createdView struct {
	registry.Webhook
	URL     string `json:"url"`
	Secret  string `json:"secret"`
	Secrets []struct {
		Current bool       `json:"current"`
		Expires *time.Time `json:"expires_at"`
	} `json:"secrets"`
	BusinessRule *businessrule.Rule `json:"business_rule"`
}

func (h *harness) route(path string) registry.Route {
	h.t.Helper()
	r, err := h.store().Route(context.Background(), path)
	if err != nil {
		h.t.Fatalf("Route(%s): %v", path, err)
	}
	return r
}

func TestWebhookLifecycle(t *testing.T) {
	h := newHarness(t)
	// Offline (the test's instance is not reachable): the filter is by name.
	g := h.gateway("prod", "--assignment-group-filter", "Network", "--skip-instance-checks")
	ctx := context.Background()

	out := h.ok("", "infra", "webhook", "create", "--name", "prod-incidents", "--source-type", "servicenow", "--event-type", "incident", "--description", "P1s")
	id, url, secret := field(t, out, "ID"), field(t, out, "URL"), field(t, out, "Secret")
	if !registry.ValidWebhookID(id) {
		t.Fatalf("id %q is not a webhook id", id)
	}
	path, ok := strings.CutPrefix(url, apiURL+"/api/webhooks/ingest/")
	if !ok || !registry.ValidPath(path) {
		t.Fatalf("URL %q is not %s/api/webhooks/ingest/<24 hex>", url, apiURL)
	}
	wantLines := []string{
		"Webhook created!\n  ID:         " + id + "\n  URL:        " + url + "\n  Secret:     " + secret + "\n  Event type: incident\n  Gateway:    " + g.ID,
		"\n\n--- ServiceNow Business Rule configuration ---\n",
		"  Table:            incident [incident]\n  Application:      Global\n",
		"(before creating the rule, switch to Global: the application picker in the banner,",
		"  Active:           true\n  Advanced:         true\n  When:             after\n",
		"  Insert:           true\n  Update:           true\n",
		"  Filter Conditions: " + g.RuleCondition() + "\n",
		"(Active is true AND Assignment group.Name is one of Network OR (Active changes to false",
		"--- Script (paste into Advanced tab) ---\n(function executeRule(current, previous",
		"request.setRequestHeader('X-Webhook-Secret', \"" + secret + "\");",
		// The gateway is acme.service-now.com: the rule is for acme only.
		"if (instance !== \"acme\") {",
		"})(current, previous);\n",
	}
	for _, want := range wantLines {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	script := out[strings.Index(out, "(function executeRule"):]
	if _, err := goja.Compile("rule.js", script, false); err != nil {
		t.Errorf("printed script does not compile: %v", err)
	}

	w, err := h.store().Webhook(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := registry.Webhook{
		ID: id, Name: "prod-incidents", SourceType: "servicenow", EventType: "incident", GatewayID: g.ID, Description: "P1s",
		Path: path, Active: true, Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(secret)}},
		CreatedAt: h.clock(), UpdatedAt: h.clock(),
	}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("stored webhook (-want +got):\n%s", diff)
	}
	wantRoute := registry.Route{Path: path, WebhookID: id, GatewayID: g.ID, Table: "incident", Active: true,
		Signing: registry.SigningSecret, SecretHashes: want.SecretHashes, UpdatedAt: h.clock()}
	if diff := cmp.Diff(wantRoute, h.route(path)); diff != "" {
		t.Errorf("route (-want +got):\n%s", diff)
	}
	if raw := rawItem(t, h, registry.WebhookKey(id)) + rawItem(t, h, registry.PathKey(path)); strings.Contains(raw, secret) {
		t.Error("the secret is stored in the table")
	}

	t.Run("list and show mask the secret", func(t *testing.T) {
		for _, args := range [][]string{
			{"infra", "webhook", "list"},
			{"infra", "webhook", "list", "--gateway-id", g.ID},
			{"infra", "webhook", "list", "--output", "json"},
			{"infra", "webhook", "show", "--id", id},
			{"infra", "webhook", "show", "--id", id, "--output", "json"},
		} {
			out := h.ok("", args...)
			// JSON leaves the secret out; text shows it masked.
			if !strings.Contains(out, id) || !slices.Contains(args, "json") && !strings.Contains(out, "********") {
				t.Errorf("2501 %v lacks the webhook or the masked secret:\n%s", args, out)
			}
			if strings.Contains(out, secret) || strings.Contains(out, webhook.HashSecret(secret)) {
				t.Errorf("2501 %v shows the secret or its hash:\n%s", args, out)
			}
		}
		var list []createdView
		h.json(&list, "", "infra", "webhook", "list", "--gateway-id", "gtw_00000000-0000-4000-8000-000000000000")
		if list == nil || len(list) != 0 {
			t.Errorf("list for another gateway = %+v, want []", list)
		}
	})

	t.Run("list needs no API URL", func(t *testing.T) {
		saved := h.env[schema.EnvAPIURL]
		h.env[schema.EnvAPIURL] = ""
		defer func() { h.env[schema.EnvAPIURL] = saved }()
		out := h.ok("", "infra", "webhook", "show", "--id", id)
		if !strings.Contains(out, "Path:        /api/webhooks/ingest/"+path) {
			t.Errorf("show without an API URL:\n%s", out)
		}
	})

	t.Run("deactivate and reactivate", func(t *testing.T) {
		h.ok("", "infra", "webhook", "update", "--id", id, "--active=false")
		if h.route(path).Active {
			t.Error("route active after the webhook was deactivated")
		}
		var v createdView
		h.json(&v, "", "infra", "webhook", "update", "--id", id, "--active=true", "--name", "renamed")
		if !h.route(path).Active || v.Name != "renamed" || v.Secret != "" {
			t.Errorf("after reactivation: route active %v, view %+v", h.route(path).Active, v)
		}
	})

	var rotated string
	t.Run("rotate with grace", func(t *testing.T) {
		h.advance(time.Minute)
		t0 := h.clock()
		out := h.ok("", "infra", "webhook", "rotate-secret", "--id", id, "--grace", "24h")
		rotated = field(t, out, "Secret")
		if rotated == secret || !strings.HasPrefix(out, "Secret rotated!\n") || !strings.Contains(out, "X-Webhook-Secret', \""+rotated+"\"") {
			t.Fatalf("rotate output does not carry a new secret and script:\n%s", out)
		}
		if !strings.Contains(out, "Old secret: valid until "+t0.Add(24*time.Hour).Format(time.RFC3339)) {
			t.Errorf("rotate output lacks the grace end:\n%s", out)
		}
		want := []registry.SecretHash{{SHA256: webhook.HashSecret(rotated)}, {SHA256: webhook.HashSecret(secret), Expires: t0.Add(24 * time.Hour)}}
		if diff := cmp.Diff(want, h.route(path).SecretHashes); diff != "" {
			t.Errorf("route hashes during grace (-want +got):\n%s", diff)
		}
	})

	t.Run("grace ends, next write prunes", func(t *testing.T) {
		h.advance(25 * time.Hour)
		var v createdView
		h.json(&v, "", "infra", "webhook", "rotate-secret", "--id", id, "--grace", "1h")
		if v.Secret == "" || v.Secret == rotated || v.BusinessRule == nil || !strings.Contains(v.BusinessRule.Script, v.Secret) {
			t.Fatalf("rotate --output json = %+v, want a new secret and its script", v)
		}
		want := []registry.SecretHash{{SHA256: webhook.HashSecret(v.Secret)}, {SHA256: webhook.HashSecret(rotated), Expires: h.clock().Add(time.Hour)}}
		if diff := cmp.Diff(want, h.route(path).SecretHashes); diff != "" {
			t.Errorf("route hashes: the first secret should be gone (-want +got):\n%s", diff)
		}
		if len(v.Secrets) != 2 || !v.Secrets[0].Current || v.Secrets[1].Expires == nil {
			t.Errorf("secrets in the output = %+v, want the current one and one in grace", v.Secrets)
		}
	})

	t.Run("delete", func(t *testing.T) {
		out := h.ok("", "infra", "webhook", "delete", "--id", id)
		if !strings.Contains(out, "Deactivate the Business Rule \"snowgate: renamed\" on the incident table") {
			t.Errorf("delete output lacks the reminder:\n%s", out)
		}
		if _, err := h.store().Webhook(ctx, id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("webhook after delete: %v", err)
		}
		if _, err := h.store().Route(ctx, path); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("route after delete: %v", err)
		}
		// Only the gateway is left, and it can go without --force.
		h.ok("", "infra", "gateway", "delete", "--id", g.ID)
	})
}

func TestWebhookHMAC(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("prod")
	var v createdView
	h.json(&v, "", "infra", "webhook", "create", "--name", "changes", "--source-type", "servicenow", "--event-type", "change_request", "--gateway-id", g.ID, "--signing", "hmac")

	if !strings.HasPrefix(v.Secret, webhook.SigningKeyPrefix) {
		t.Fatalf("hmac secret %q is not a whsec_ key", v.Secret)
	}
	if len(v.SigningKeys) != 0 || len(v.SecretHashes) != 0 {
		t.Error("JSON output exposes key references or hashes")
	}
	rule := v.BusinessRule
	if rule == nil || rule.Table != "change_request" || rule.Condition != g.RuleCondition() || rule.Application != "global" {
		t.Fatalf("business rule = %+v", rule)
	}
	b64, _ := webhook.SigningKeyBase64(v.Secret)
	for _, want := range []string{"new GlideCertificateEncryption();", "new CertificateEncryption();", "signer.generateMac(\"" + b64 + "\", 'HmacSHA256'", "'webhook-signature', 'v1,' + mac"} {
		if !strings.Contains(rule.Script, want) {
			t.Errorf("script lacks %q:\n%s", want, rule.Script)
		}
	}
	if strings.Contains(rule.Script, "X-Webhook-Secret") {
		t.Error("hmac script sends X-Webhook-Secret")
	}
	r := h.route(v.Path)
	if len(r.SigningKeys) != 1 || len(r.SecretHashes) != 0 || r.Signing != registry.SigningHMAC {
		t.Fatalf("route = %+v, want one signing key", r)
	}
	if key, ok := h.secret(r.SigningKeys[0].SecretARN); !ok || key != v.Secret {
		t.Errorf("key secret = %q, %v; want the printed key", key, ok)
	}
	if names := h.secretNames(); !contains(names, h.prefix+"webhooks/"+v.ID) {
		t.Errorf("secrets %q lack %swebhooks/%s", names, h.prefix, v.ID)
	}

	// Rotation without grace: the old key stops at once and its secret goes.
	first := r.SigningKeys[0].SecretARN
	var rot createdView
	h.json(&rot, "", "infra", "webhook", "rotate-secret", "--id", v.ID, "--grace", "0s")
	r = h.route(v.Path)
	if len(r.SigningKeys) != 1 || r.SigningKeys[0].SecretARN == first {
		t.Fatalf("route keys after a zero-grace rotation = %+v, want only the new key", r.SigningKeys)
	}
	if key, _ := h.secret(r.SigningKeys[0].SecretARN); key != rot.Secret {
		t.Error("the new key secret does not hold the printed key")
	}
	if _, ok := h.secret(first); ok {
		t.Error("the revoked key's secret still exists")
	}

	// Rotation with grace keeps both keys until the next write after it ends.
	h.json(&rot, "", "infra", "webhook", "rotate-secret", "--id", v.ID, "--grace", "1h")
	if n := len(h.route(v.Path).SigningKeys); n != 2 {
		t.Errorf("route has %d keys during grace, want 2", n)
	}

	h.ok("", "infra", "webhook", "delete", "--id", v.ID)
	if names := h.secretNames(); len(names) != 1 {
		t.Errorf("secrets after delete = %q, want only the gateway's", names)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestGatewayAutoSelection(t *testing.T) {
	h := newHarness(t)
	create := func() result {
		return h.run("", "infra", "webhook", "create", "--name", "inc", "--source-type", "servicenow", "--event-type", "incident")
	}

	r := create()
	if r.code != 1 || !strings.Contains(r.stderr, "no active gateway: create one with 2501 infra gateway create") {
		t.Errorf("zero gateways: exit %d, %q", r.code, r.stderr)
	}
	off := h.gateway("off", "--active=false")
	if r := create(); r.code != 1 || !strings.Contains(r.stderr, "no active gateway") {
		t.Errorf("only an inactive gateway: exit %d, %q", r.code, r.stderr)
	}

	one := h.gateway("one")
	r = create()
	if r.code != 0 || field(t, r.stdout, "Gateway") != one.ID+" (one)" {
		t.Errorf("one active gateway: exit %d, %q, gateway line %q; want %s selected", r.code, r.stderr, r.stdout, one.ID)
	}

	two := h.gateway("two")
	before := h.items()
	r = create()
	if r.code != 2 || !strings.Contains(r.stderr, "2 active gateways, choose one with --gateway-id: gtw_") ||
		!strings.Contains(r.stderr, one.ID+" (one)") || !strings.Contains(r.stderr, two.ID+" (two)") || strings.Contains(r.stderr, off.ID) {
		t.Errorf("two active gateways: exit %d, %q; want 2 listing both active ones", r.code, r.stderr)
	}
	if h.items() != before {
		t.Error("an ambiguous create wrote to the table")
	}
}

func TestGatewayActivationReachesRoutes(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("prod")
	var a, b createdView
	h.json(&a, "", "infra", "webhook", "create", "--name", "a", "--source-type", "servicenow", "--event-type", "incident")
	h.json(&b, "", "infra", "webhook", "create", "--name", "b", "--source-type", "servicenow", "--event-type", "change_request")

	out := h.ok("", "infra", "gateway", "update", "--id", g.ID, "--active=false")
	if !strings.Contains(out, "Ingest now rejects calls to its 2 webhook(s)") {
		t.Errorf("deactivation output:\n%s", out)
	}
	for _, p := range []string{a.Path, b.Path} {
		if h.route(p).Active {
			t.Errorf("route %s active under an inactive gateway", p)
		}
	}
	if out := h.ok("", "infra", "webhook", "show", "--id", a.ID); !strings.Contains(out, "but its gateway is inactive") {
		t.Errorf("show does not explain the inactive gateway:\n%s", out)
	}
	h.ok("", "infra", "gateway", "update", "--id", g.ID, "--active=true")
	for _, p := range []string{a.Path, b.Path} {
		if !h.route(p).Active {
			t.Errorf("route %s inactive after the gateway came back", p)
		}
	}
}

// TestStackOutputs resolves the table and API URL from a CloudFormation
// stack's outputs, as on a deployed system.
func TestStackOutputs(t *testing.T) {
	if awstest.Kind() == awstest.Kumo {
		t.Skip("kumo's CloudFormation keeps no stack outputs; this runs on moto")
	}
	h := newHarness(t)
	stack := awstest.UniqueName("snowgate-")
	template := fmt.Sprintf(`{"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
		"Outputs": {%q: {"Value": %q}, %q: {"Value": %q}, %q: {"Value": %q}}}`,
		schema.OutputRegistryTable, h.table, schema.OutputAPIURL, "https://stack.example.com/", schema.OutputSecretPrefix, h.prefix)
	cf := cloudformation.NewFromConfig(h.cfg)
	if _, err := cf.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String(stack), TemplateBody: aws.String(template)}); err != nil {
		t.Fatalf("create stack: %v", err)
	}
	t.Cleanup(func() {
		_, _ = cf.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String(stack)})
	})
	h.env = map[string]string{schema.EnvStack: stack}

	h.gateway("prod")
	var v createdView
	h.json(&v, "", "infra", "webhook", "create", "--name", "inc", "--source-type", "servicenow", "--event-type", "incident")
	if want := "https://stack.example.com/api/webhooks/ingest/" + v.Path; v.URL != want {
		t.Errorf("URL = %q, want %q (from the stack output)", v.URL, want)
	}
	if names := h.secretNames(); len(names) != 1 {
		t.Errorf("secrets under the stack's prefix = %q, want the gateway's", names)
	}
}
