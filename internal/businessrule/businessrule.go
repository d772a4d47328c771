// Package businessrule renders the ServiceNow Business Rule that tells
// snowgate about record changes: the settings an administrator enters on
// the Business Rule form and the script for its Advanced tab.
//
// The rule belongs in the Global application (Application), where scripts
// run in ES5 Standards mode: the script is ES5, and a test parses it with an
// ES5-only parser. It uses only documented server APIs: current, gs,
// sn_ws.RESTMessageV2, GlideDateTime and, to sign (HMAC mode),
// GlideCertificateEncryption, which exists only in the Global scope, or
// else the scoped equivalent CertificateEncryption, so a rule created in a
// scoped application by mistake still signs. The ServiceNow simulator runs
// Rule.Script as is on every matching insert and update, so what users
// paste is what the tests execute.
//
// The rule sends the instance's instance_name and sends nothing on an
// instance of another name than the one it was printed for: a clone of
// production, which carries production's rules and their secrets, stays
// silent instead of posting its changes as production's.
package businessrule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/webhook"
)

// Fixed settings of the rule.
const (
	// When is "after": the record is committed when snowgate fetches it.
	When = "after"
	// Order is ServiceNow's default; the rule has no ordering needs.
	Order = 100
	// HTTPTimeoutMillis bounds the POST, so a slow endpoint cannot hold up
	// ServiceNow's outbound queue.
	HTTPTimeoutMillis = 5000
	// Application is the application scope the rule is created in: Global
	// (its sys_scope is "global" on every instance). A rule takes the
	// scope of the application the administrator's session is in when the
	// rule is created, so Text says how to switch to Global first.
	Application = "global"
	// ApplicationLabel is how the Business Rule form shows Application.
	ApplicationLabel = "Global"
)

// Params are what a rule depends on.
type Params struct {
	WebhookID   string
	WebhookName string
	// Table is the ServiceNow table, the webhook's event type.
	Table string
	// URL is the webhook's full ingest URL.
	URL string
	// Signing is registry.SigningSecret or registry.SigningHMAC.
	Signing string
	// Secret is the static secret (signing "secret") or the whsec_ signing
	// key (signing "hmac").
	Secret string
	// Condition is the encoded query selecting the records, the gateway's
	// RuleCondition: its scope, and the records that just left it.
	Condition string
	// Instance is the instance_name of the ServiceNow instance the rule is
	// for, InstanceName of the gateway's URL. The rule sends nothing on an
	// instance of another name (a clone); "" renders a rule without that
	// check, for a gateway whose URL does not name its instance.
	Instance string
}

// Rule is a rendered Business Rule. It is plain data: the simulator loads
// Table, Condition and Script from it.
type Rule struct {
	Name  string `json:"name"`
	Table string `json:"table"`
	// Application is the rule's application scope, always Application.
	Application string `json:"application"`
	Active      bool   `json:"active"`
	Advanced    bool   `json:"advanced"`
	When        string `json:"when"`
	Order       int    `json:"order"`
	Insert      bool   `json:"insert"`
	Update      bool   `json:"update"`
	// Condition is the filter condition as an encoded query.
	Condition string `json:"condition"`
	// ConditionText is Condition in words, as the condition builder shows it.
	ConditionText string `json:"condition_text"`
	Script        string `json:"script"`
}

// ErrInvalid is returned for params a rule cannot be rendered from.
var ErrInvalid = errors.New("invalid business rule parameters")

// Render builds the rule for a webhook.
func Render(p Params) (Rule, error) {
	if !slices.Contains(registry.EventTypes, p.Table) {
		return Rule{}, fmt.Errorf("%w: table %q is not one of %s", ErrInvalid, p.Table, strings.Join(registry.EventTypes, ", "))
	}
	if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Rule{}, fmt.Errorf("%w: URL %q is not an http(s) URL", ErrInvalid, p.URL)
	}
	if p.Secret == "" {
		return Rule{}, fmt.Errorf("%w: no secret", ErrInvalid)
	}
	// The id also stands in a // comment, which a line break would end.
	if strings.ContainsAny(p.WebhookID, "\r\n\u2028\u2029") {
		return Rule{}, fmt.Errorf("%w: webhook id %q holds a line break", ErrInvalid, p.WebhookID)
	}
	if p.Instance != "" && !servicenow.ValidInstanceName(p.Instance) {
		return Rule{}, fmt.Errorf("%w: instance name %q is not a ServiceNow instance name", ErrInvalid, p.Instance)
	}
	var auth string
	switch p.Signing {
	case registry.SigningSecret:
		auth = fmt.Sprintf(secretHeader, jsString(p.Secret))
	case registry.SigningHMAC:
		key, err := webhook.SigningKeyBase64(p.Secret)
		if err != nil {
			return Rule{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		auth = fmt.Sprintf(hmacHeaders, jsString(key))
	default:
		return Rule{}, fmt.Errorf("%w: signing %q is not %s or %s", ErrInvalid, p.Signing, registry.SigningSecret, registry.SigningHMAC)
	}
	name := "snowgate"
	if p.WebhookName != "" {
		name += ": " + p.WebhookName
	}
	// What gs.error messages start with: the webhook and the rule, so the
	// system log says which rule failed.
	label := fmt.Sprintf("snowgate webhook %s (Business Rule %q): ", p.WebhookID, name)
	var instanceCheck string
	if p.Instance != "" {
		instanceCheck = fmt.Sprintf(instanceCheckTemplate, jsString(p.Instance), jsString("not sent: this rule was created for the instance "+p.Instance+" (on a clone of it, deactivate the rule), and this instance is "))
	}
	script := fmt.Sprintf(scriptTemplate, p.WebhookID, jsString(label), instanceCheck, jsString(p.URL), auth, HTTPTimeoutMillis)
	return Rule{
		Name:          name,
		Table:         p.Table,
		Application:   Application,
		Active:        true,
		Advanced:      true,
		When:          When,
		Order:         Order,
		Insert:        true,
		Update:        true,
		Condition:     p.Condition,
		ConditionText: Describe(p.Condition),
		Script:        script,
	}, nil
}

// The script. Values are inserted as JSON string literals, which are valid
// JavaScript literals, so no value can break out of its quotes. The body
// carries what identifies the change, and the instance's name, which
// ingest compares with the gateway's (in HMAC mode the name is signed with
// the rest of the body); snowgate fetches the record itself and trusts
// nothing else from it. Errors are logged with gs.error, never
// thrown: a failed notification must not block the user's save, and the
// reconciler catches the change later. ES5 only (var, function, no
// template literals): Global-scope scripts run in ES5 Standards mode.
const scriptTemplate = `(function executeRule(current, previous /*null when async*/) {
	// snowgate webhook %s: tells snowgate that this record changed.
	var label = %s;
	try {
		var instance = String(gs.getProperty('instance_name', '')).toLowerCase();
%s		var body = JSON.stringify({
			sys_id: String(current.getUniqueValue()),
			table: String(current.getTableName()),
			number: String(current.getValue('number')),
			sys_mod_count: parseInt(String(current.getValue('sys_mod_count')), 10),
			operation: String(current.operation()),
			instance_name: instance
		});
		var request = new sn_ws.RESTMessageV2();
		request.setEndpoint(%s);
		request.setHttpMethod('POST');
		request.setRequestHeader('Content-Type', 'application/json');
%s		request.setRequestBody(body);
		request.setHttpTimeout(%d);
		request.executeAsync();
	} catch (ex) {
		gs.error(label + 'not sent: ' + (ex && ex.message ? ex.message : ex));
	}
})(current, previous);
`

// A clone of production carries production's rules, secrets and keys; its
// instance_name is its own. The rule then sends nothing and says why in
// the system log, once per change, so a forgotten post-clone step (and a
// gateway URL that names another instance) shows where an administrator
// looks first.
const instanceCheckTemplate = `		if (instance !== %s) {
			gs.warn(label + %s + instance);
			return;
		}
`

const secretHeader = "\t\trequest.setRequestHeader('X-Webhook-Secret', %s);\n"

// Standard Webhooks: HMAC-SHA256 over "<id>.<timestamp>.<body>" with the
// base64 key, sent as "v1,<base64 mac>". GlideCertificateEncryption is the
// Global scope's class; a scoped application has CertificateEncryption,
// with the same generateMac(key, algorithm, data). Without either, or
// without a MAC, nothing is sent and the system log says why.
const hmacHeaders = `		var id = 'msg_' + gs.generateGUID();
		var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
		var signer = null;
		if (typeof GlideCertificateEncryption !== 'undefined') {
			signer = new GlideCertificateEncryption();
		} else if (typeof CertificateEncryption !== 'undefined') {
			signer = new CertificateEncryption();
		}
		if (!signer) {
			gs.error(label + 'not sent: neither GlideCertificateEncryption (Global scope) nor CertificateEncryption (scoped applications) exists to sign it; create the rule with Application: Global');
			return;
		}
		var mac = signer.generateMac(%s, 'HmacSHA256', id + '.' + timestamp + '.' + body);
		if (!mac) {
			gs.error(label + 'not sent: generateMac returned no signature');
			return;
		}
		request.setRequestHeader('webhook-id', id);
		request.setRequestHeader('webhook-timestamp', timestamp);
		request.setRequestHeader('webhook-signature', 'v1,' + mac);
`

// InstanceName is the instance_name of the ServiceNow instance at
// instanceURL (servicenow.InstanceName): "acme" for
// https://acme.service-now.com. Any other address (a custom domain, an IP
// address, a local simulator) does not say which instance answers there,
// and yields "": neither the rule nor ingest then compares names, rather
// than reject every change of a correctly set up gateway.
func InstanceName(instanceURL string) string { return servicenow.InstanceName(instanceURL) }

func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
