package businessrule_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
)

// shim is the smallest ServiceNow server-side environment the script needs.
// Requests are recorded in `sent` instead of being sent; GlideDateTime is
// frozen at `nowMillis`; generateMac is the real HMAC, from Go. Both
// signing classes are properties of the global object, so a test can take
// one away (execute's drop) the way an application scope does.
const shim = `
var sent = [];
var errors = [];
var guids = 0;
var warnings = [];
var gs = {
	generateGUID: function () { guids++; return 'a1b2c3d4e5f60718293a4b5c6d7e8f9' + guids; },
	error: function (msg) { errors.push(String(msg)); },
	warn: function (msg) { warnings.push(String(msg)); },
	getProperty: function (name, alt) { return properties.hasOwnProperty(name) ? properties[name] : alt; }
};
var sn_ws = {
	RESTMessageV2: function () {
		var m = { headers: {} };
		this.setEndpoint = function (u) { m.url = u; };
		this.setHttpMethod = function (v) { m.method = v; };
		this.setRequestHeader = function (k, v) { m.headers[k] = String(v); };
		this.setRequestBody = function (b) { m.body = b; };
		this.setHttpTimeout = function (ms) { m.timeout = ms; };
		this.execute = function () { throw new Error('execute() blocks the transaction; use executeAsync()'); };
		this.executeAsync = function () {
			if (failSend) { throw new Error('connection refused'); }
			sent.push(m);
		};
	}
};
function GlideDateTime() { this.getNumericValue = function () { return nowMillis; }; }
this.GlideCertificateEncryption = function () {
	this.generateMac = function (key, alg, data) { return goMac(key, alg, data); };
};
this.CertificateEncryption = function () {
	this.generateMac = function (key, alg, data) { return goMac(key, alg, data); };
};
function record(fields, op) {
	return {
		getUniqueValue: function () { return fields.sys_id; },
		getTableName: function () { return fields.sys_class_name; },
		getValue: function (f) { return fields[f] === undefined ? null : fields[f]; },
		operation: function () { return op; }
	};
}
`

type request struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Timeout int               `json:"timeout"`
}

type run struct {
	sent     []request
	errors   []string
	warnings []string
}

// instanceName is the instance_name property execute's instance has
// unless a test sets another.
const instanceName = "acme"

// execute runs a rule's script for one record the way ServiceNow does:
// `current` and `previous` in scope, the script evaluated as is. The
// globals named in drop do not exist for the run. The instance's
// instance_name is instanceName.
func execute(t *testing.T, r businessrule.Rule, fields map[string]string, op string, failSend bool, drop ...string) run {
	t.Helper()
	return executeOn(t, map[string]string{"instance_name": instanceName}, r, fields, op, failSend, drop...)
}

// executeOn is execute on an instance with the given system properties.
func executeOn(t *testing.T, properties map[string]string, r businessrule.Rule, fields map[string]string, op string, failSend bool, drop ...string) run {
	t.Helper()
	vm := goja.New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(vm.Set("nowMillis", int64(1767225600123)))
	must(vm.Set("failSend", failSend))
	must(vm.Set("properties", properties))
	must(vm.Set("goMac", func(key, alg, data string) (string, error) {
		if alg != "HmacSHA256" {
			return "", errors.New("unsupported algorithm " + alg)
		}
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			return "", err
		}
		m := hmac.New(sha256.New, raw)
		m.Write([]byte(data))
		return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
	}))
	_, err := vm.RunString(shim)
	must(err)
	for _, name := range drop {
		if err := vm.GlobalObject().Delete(name); err != nil {
			t.Fatalf("remove %s from the shim: %v", name, err)
		}
		if v, _ := vm.RunString("typeof " + name); v.String() != "undefined" {
			t.Fatalf("%s is still defined", name)
		}
	}
	must(vm.Set("fields", fields))
	_, err = vm.RunString("var current = record(fields, " + quote(op) + "); var previous = null;")
	must(err)
	if _, err := vm.RunScript("business_rule.js", r.Script); err != nil {
		t.Fatalf("script failed: %v\n%s", err, r.Script)
	}
	out, err := vm.RunString("JSON.stringify({sent: sent, errors: errors, warnings: warnings})")
	must(err)
	var res struct {
		Sent     []request `json:"sent"`
		Errors   []string  `json:"errors"`
		Warnings []string  `json:"warnings"`
	}
	must(json.Unmarshal([]byte(out.String()), &res))
	return run{sent: res.Sent, errors: res.Errors, warnings: res.Warnings}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

var incident = map[string]string{
	"sys_id":         "9d385017c611228701d22104cc95c371",
	"sys_class_name": "incident",
	"number":         "INC0010001",
	"sys_mod_count":  "4",
}

const ingestURL = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/webhooks/ingest/0123456789abcdef01234567"

func TestScriptPostsWithStaticSecret(t *testing.T) {
	secret, _ := webhook.NewSecret()
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_1", WebhookName: "incidents", Table: registry.TableIncident,
		URL: ingestURL, Signing: registry.SigningSecret, Secret: secret, Condition: "active=true",
		Instance: instanceName,
	})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	got := execute(t, rule, incident, "update", false)
	if len(got.sent) != 1 || len(got.errors) != 0 {
		t.Fatalf("sent %d requests, errors %q; want 1 request, no errors", len(got.sent), got.errors)
	}
	want := request{
		URL: ingestURL, Method: "POST", Timeout: businessrule.HTTPTimeoutMillis,
		Headers: map[string]string{"Content-Type": "application/json", "X-Webhook-Secret": secret},
		Body:    `{"sys_id":"9d385017c611228701d22104cc95c371","table":"incident","number":"INC0010001","sys_mod_count":4,"operation":"update","instance_name":"acme"}`,
	}
	if diff := cmp.Diff(want, got.sent[0]); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

// TestScriptSignsWithHMAC signs in either scope. ServiceNow documents
// GlideCertificateEncryption as a Global-scope class whose scoped
// equivalent is CertificateEncryption, both with generateMac(key,
// algorithm, data) taking a base64 key and answering a base64 MAC:
// https://www.servicenow.com/docs/r/api-reference/server-api-reference/c_GlideCertificateEncryptionAPI.html
// https://www.servicenow.com/docs/r/api-reference/server-api-reference/c_CertificateEncryptionScopedAPI.html
func TestScriptSignsWithHMAC(t *testing.T) {
	key := webhook.NewSigningKey()
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_2", Table: registry.TableChangeRequest, URL: ingestURL,
		Signing: registry.SigningHMAC, Secret: key, Condition: "active=true", Instance: instanceName,
	})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	change := map[string]string{"sys_id": "c0ffee", "sys_class_name": "change_request", "number": "CHG0030001", "sys_mod_count": "0"}
	for _, tc := range []struct {
		name string
		drop []string
	}{
		{"global scope", nil},
		{"scoped application", []string{"GlideCertificateEncryption"}},
		{"global class only", []string{"CertificateEncryption"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := execute(t, rule, change, "insert", false, tc.drop...)
			if len(got.sent) != 1 || len(got.errors) != 0 {
				t.Fatalf("sent %d requests (errors %q), want 1 and no errors", len(got.sent), got.errors)
			}
			req := got.sent[0]
			if _, ok := req.Headers["X-Webhook-Secret"]; ok {
				t.Error("hmac request carries X-Webhook-Secret")
			}
			if ts := req.Headers["webhook-timestamp"]; ts != "1767225600" {
				t.Errorf("webhook-timestamp = %q, want 1767225600 (unix seconds)", ts)
			}
			if id := req.Headers["webhook-id"]; !strings.HasPrefix(id, "msg_") || len(id) < 20 {
				t.Errorf("webhook-id = %q, want msg_<guid>", id)
			}
			raw, err := webhook.DecodeSigningKey(key)
			if err != nil {
				t.Fatal(err)
			}
			wantSig := webhook.Sign(raw, req.Headers["webhook-id"], req.Headers["webhook-timestamp"], []byte(req.Body))
			if req.Headers["webhook-signature"] != wantSig {
				t.Errorf("webhook-signature = %q, want %q", req.Headers["webhook-signature"], wantSig)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
				t.Fatalf("body %q: %v", req.Body, err)
			}
			// The instance's name is inside the signed body.
			wantBody := map[string]any{"sys_id": "c0ffee", "table": "change_request", "number": "CHG0030001", "sys_mod_count": float64(0),
				"operation": "insert", "instance_name": instanceName}
			if diff := cmp.Diff(wantBody, body); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScriptLogsWhenItCannotSign: with neither signing class (or a MAC
// that comes back empty) nothing is sent unsigned, and gs.error names the
// webhook, the rule and the reason instead of the failure passing unseen.
func TestScriptLogsWhenItCannotSign(t *testing.T) {
	key := webhook.NewSigningKey()
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_4", WebhookName: "changes", Table: registry.TableChangeRequest, URL: ingestURL,
		Signing: registry.SigningHMAC, Secret: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	b64, err := webhook.SigningKeyBase64(key)
	if err != nil {
		t.Fatal(err)
	}
	change := map[string]string{"sys_id": "c0ffee", "sys_class_name": "change_request", "number": "CHG0030001", "sys_mod_count": "0"}
	for _, tc := range []struct {
		name   string
		script string
		drop   []string
		why    string
	}{
		{"no signing class", rule.Script, []string{"GlideCertificateEncryption", "CertificateEncryption"}, "neither GlideCertificateEncryption"},
		{"empty MAC", "this.GlideCertificateEncryption = function () { this.generateMac = function () { return ''; }; };\n" + rule.Script, nil, "generateMac returned no signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rule
			r.Script = tc.script
			got := execute(t, r, change, "insert", false, tc.drop...)
			if len(got.sent) != 0 {
				t.Errorf("sent %d requests, want none", len(got.sent))
			}
			if len(got.errors) != 1 {
				t.Fatalf("errors = %q, want one", got.errors)
			}
			msg := got.errors[0]
			for _, want := range []string{"whk_4", `Business Rule "snowgate: changes"`, "not sent", tc.why} {
				if !strings.Contains(msg, want) {
					t.Errorf("gs.error(%q) lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, b64) || strings.Contains(msg, key) {
				t.Error("the logged error contains the signing key")
			}
		})
	}
}

// TestScriptOnAClone: a rule printed for one instance sends nothing on an
// instance of another name (a clone of production carries production's
// rules and secrets, but its own instance_name), in either signing mode,
// and says so in the system log without the secret. A rule printed
// without an instance name sends from anywhere, with the name it finds.
func TestScriptOnAClone(t *testing.T) {
	secret, _ := webhook.NewSecret()
	key := webhook.NewSigningKey()
	for _, tc := range []struct {
		name     string
		signing  string
		secret   string
		printed  string // the instance the rule was printed for
		property map[string]string
		wantSent bool
		wantName string // instance_name in the body
	}{
		{"secret, same instance", registry.SigningSecret, secret, "acme", map[string]string{"instance_name": "acme"}, true, "acme"},
		{"secret, property in upper case", registry.SigningSecret, secret, "acme", map[string]string{"instance_name": "ACME"}, true, "acme"},
		{"secret, clone", registry.SigningSecret, secret, "acme", map[string]string{"instance_name": "acmedev"}, false, ""},
		{"hmac, clone", registry.SigningHMAC, key, "acme", map[string]string{"instance_name": "acmedev"}, false, ""},
		{"no instance_name property", registry.SigningHMAC, key, "acme", map[string]string{}, false, ""},
		{"printed without a name", registry.SigningSecret, secret, "", map[string]string{"instance_name": "acmedev"}, true, "acmedev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule, err := businessrule.Render(businessrule.Params{
				WebhookID: "whk_5", Table: registry.TableIncident, URL: ingestURL,
				Signing: tc.signing, Secret: tc.secret, Instance: tc.printed,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := executeOn(t, tc.property, rule, incident, "update", false)
			if len(got.errors) != 0 {
				t.Errorf("errors = %q, want none", got.errors)
			}
			if !tc.wantSent {
				if len(got.sent) != 0 {
					t.Fatalf("sent %d requests on another instance, want none", len(got.sent))
				}
				if len(got.warnings) != 1 || !strings.Contains(got.warnings[0], "whk_5") ||
					!strings.Contains(got.warnings[0], "created for the instance acme") || !strings.Contains(got.warnings[0], "deactivate") {
					t.Errorf("warnings = %q, want one naming the webhook, the instance it is for and what to do", got.warnings)
				}
				if strings.Contains(strings.Join(got.warnings, ""), tc.secret) {
					t.Error("the warning contains the secret")
				}
				return
			}
			if len(got.sent) != 1 || len(got.warnings) != 0 {
				t.Fatalf("sent %d requests, warnings %q; want 1 and none", len(got.sent), got.warnings)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(got.sent[0].Body), &body); err != nil {
				t.Fatal(err)
			}
			if body["instance_name"] != tc.wantName {
				t.Errorf("body instance_name = %v, want %q", body["instance_name"], tc.wantName)
			}
		})
	}
}

func TestInstanceName(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://acme.service-now.com", "acme"},
		{"https://acme.service-now.com/", "acme"},
		{"https://ACME.Service-Now.com:443/now/nav", "acme"},
		{"https://dev12345.service-now.com", "dev12345"},
		{"https://acme-dev.service-now.com", "acme-dev"},
		{"https://agency.servicenowservices.com", "agency"},
		{" https://acme.service-now.com ", "acme"},
		// Addresses that do not say which instance answers there.
		{"https://itsm.acme.com", ""},
		{"http://127.0.0.1:8080", ""},
		{"http://localhost:8080", ""},
		{"http://host.docker.internal:8080", ""},
		{"https://service-now.com", ""},
		{"https://a.b.service-now.com", ""},
		{"https://acme.service-now.com.evil.example", ""},
		{"not a url\x7f", ""},
		{"", ""},
	} {
		if got := businessrule.InstanceName(tc.url); got != tc.want {
			t.Errorf("InstanceName(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestScriptLogsSendFailure(t *testing.T) {
	secret, _ := webhook.NewSecret()
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_3", Table: registry.TableIncident, URL: ingestURL, Signing: registry.SigningSecret, Secret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := execute(t, rule, incident, "insert", true)
	if len(got.errors) != 1 || !strings.Contains(got.errors[0], "whk_3") || !strings.Contains(got.errors[0], "connection refused") {
		t.Errorf("errors = %q, want one naming the webhook and the cause", got.errors)
	}
	if strings.Contains(strings.Join(got.errors, ""), secret) {
		t.Error("the logged error contains the secret")
	}
}

func TestRenderRejects(t *testing.T) {
	secret, _ := webhook.NewSecret()
	ok := businessrule.Params{Table: registry.TableIncident, URL: ingestURL, Signing: registry.SigningSecret, Secret: secret}
	tests := []struct {
		name   string
		change func(*businessrule.Params)
	}{
		{"unknown table", func(p *businessrule.Params) { p.Table = "problem" }},
		{"relative URL", func(p *businessrule.Params) { p.URL = "/api/webhooks/ingest/x" }},
		{"no secret", func(p *businessrule.Params) { p.Secret = "" }},
		{"unknown signing", func(p *businessrule.Params) { p.Signing = "jwt" }},
		{"hmac with a plain secret", func(p *businessrule.Params) { p.Signing = registry.SigningHMAC }},
		{"line break in the webhook id", func(p *businessrule.Params) { p.WebhookID = "whk_1\nalert(1)" }},
		{"instance name with a quote", func(p *businessrule.Params) { p.Instance = "acme'" }},
		{"instance name in upper case", func(p *businessrule.Params) { p.Instance = "ACME" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.change(&p)
			if _, err := businessrule.Render(p); !errors.Is(err, businessrule.ErrInvalid) {
				t.Errorf("Render() = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestSecretCannotBreakOut checks that values are embedded as literals: a
// secret full of quotes and script still arrives byte for byte.
func TestSecretCannotBreakOut(t *testing.T) {
	secret := `a'b"c\d</script>` + "\u2028e"
	rule, err := businessrule.Render(businessrule.Params{Table: registry.TableIncident, URL: ingestURL, Signing: registry.SigningSecret, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	got := execute(t, rule, incident, "insert", false)
	if len(got.sent) != 1 || got.sent[0].Headers["X-Webhook-Secret"] != secret {
		t.Fatalf("sent %+v, want the secret unchanged", got.sent)
	}
}

func TestText(t *testing.T) {
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: "whk_1", WebhookName: "changes", Table: registry.TableChangeRequest, URL: ingestURL,
		Signing: registry.SigningSecret, Secret: "s3cret",
		Condition: registry.Gateway{AssignmentGroupFilter: "Network,DB", EnvironmentFilter: "prod"}.RuleCondition(),
	})
	if err != nil {
		t.Fatal(err)
	}
	text := rule.Text()
	for _, want := range []string{
		"--- ServiceNow Business Rule configuration ---\n",
		"  Table:            change_request [change_request]\n" +
			"  Application:      Global\n" +
			"                    (before creating the rule, switch to Global: the application picker in the banner,\n" +
			"                     or Settings > Developer > Application; the form's Application must read Global)\n",
		"  When:             after\n",
		"  Insert:           true\n",
		"  Update:           true\n",
		"  Filter Conditions: active=true^assignment_group.nameINNetwork,DB^u_environmentINprod^NQactiveCHANGESTOfalse^sys_mod_count>0^",
		"(Active is true AND Assignment group.Name is one of Network, DB AND Environment is one of prod" +
			" OR (Active changes to false AND Updates is more than 0 AND (Assignment group.Name is one of Network, DB OR Assignment group changes)" +
			" AND (Environment is one of prod OR Environment changes from prod))" +
			" OR (Assignment group changes AND Updates is more than 0 AND (Active is true OR Active changes to false)" +
			" AND (Environment is one of prod OR Environment changes from prod))" +
			" OR (Environment changes from prod AND Updates is more than 0 AND (Active is true OR Active changes to false)" +
			" AND (Assignment group.Name is one of Network, DB OR Assignment group changes)))\n",
		"--- Script (paste into Advanced tab) ---\n(function executeRule(current, previous",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Text() lacks %q; got:\n%s", want, text)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct{ query, want string }{
		{"", "all records"},
		{"active=true", "Active is true"},
		{"priority=1^ORpriority=2", "Priority is 1 OR Priority is 2"},
		{"u_environmentNOT INdev,test", "Environment is not one of dev, test"},
		{"short_descriptionLIKEdisk^state!=7", "Short description contains disk AND State is not 7"},
		{"active=true^NQpriority<=2", "Active is true OR (Priority is at most 2)"},
		{"weird", "weird"},
		{"active=true^assignment_groupIN287ebd7da9fe198100f92cc8d1d2154e", "Active is true AND Assignment group is one of 287ebd7da9fe198100f92cc8d1d2154e"},
		{"stateVALCHANGES", "State changes"},
		{"activeCHANGESTOfalse", "Active changes to false"},
		{"u_environmentCHANGESFROMprod", "Environment changes from prod"},
		{"active=true^ORactiveCHANGESTOfalse^u_environmentINprod^ORu_environmentCHANGESFROMprod^sys_mod_count>0",
			"(Active is true OR Active changes to false) AND (Environment is one of prod OR Environment changes from prod) AND Updates is more than 0"},
		{"active=true^NQactiveCHANGESTOfalse^sys_mod_count>0", "Active is true OR (Active changes to false AND Updates is more than 0)"},
	}
	for _, tc := range tests {
		if got := businessrule.Describe(tc.query); got != tc.want {
			t.Errorf("Describe(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}
