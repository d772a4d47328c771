// Package businessrule renders the ServiceNow Business Rule that tells
// snowgate about record changes: the settings an administrator enters on
// the Business Rule form and the script for its Advanced tab.
//
// The script is ES5 (ServiceNow's global scope runs Rhino) and uses only
// documented server APIs: current, gs, sn_ws.RESTMessageV2, GlideDateTime and
// GlideCertificateEncryption. The ServiceNow simulator runs Rule.Script as is
// on every matching insert and update, so what users paste is what the tests
// execute.
package businessrule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/snowgate/snowgate/internal/registry"
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
	// ScopeQuery.
	Condition string
}

// Rule is a rendered Business Rule. It is plain data: the simulator loads
// Table, Condition and Script from it.
type Rule struct {
	Name     string `json:"name"`
	Table    string `json:"table"`
	Active   bool   `json:"active"`
	Advanced bool   `json:"advanced"`
	When     string `json:"when"`
	Order    int    `json:"order"`
	Insert   bool   `json:"insert"`
	Update   bool   `json:"update"`
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
	label := "snowgate webhook " + p.WebhookID
	script := fmt.Sprintf(scriptTemplate, label, jsString(p.URL), auth, HTTPTimeoutMillis, jsString(label+": "))
	name := "snowgate"
	if p.WebhookName != "" {
		name += ": " + p.WebhookName
	}
	return Rule{
		Name:          name,
		Table:         p.Table,
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
// carries what identifies the change; snowgate fetches the record itself
// and trusts nothing else from it. Errors are logged, never thrown: a
// failed notification must not block the user's save, and the reconciler
// catches the change later.
const scriptTemplate = `(function executeRule(current, previous /*null when async*/) {
	// %s: tells snowgate that this record changed.
	try {
		var body = JSON.stringify({
			sys_id: String(current.getUniqueValue()),
			table: String(current.getTableName()),
			number: String(current.getValue('number')),
			sys_mod_count: parseInt(String(current.getValue('sys_mod_count')), 10),
			operation: String(current.operation())
		});
		var request = new sn_ws.RESTMessageV2();
		request.setEndpoint(%s);
		request.setHttpMethod('POST');
		request.setRequestHeader('Content-Type', 'application/json');
%s		request.setRequestBody(body);
		request.setHttpTimeout(%d);
		request.executeAsync();
	} catch (ex) {
		gs.error(%s + (ex && ex.message ? ex.message : ex));
	}
})(current, previous);
`

const secretHeader = "\t\trequest.setRequestHeader('X-Webhook-Secret', %s);\n"

// Standard Webhooks: HMAC-SHA256 over "<id>.<timestamp>.<body>" with the
// base64 key, sent as "v1,<base64 mac>".
const hmacHeaders = `		var id = 'msg_' + gs.generateGUID();
		var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
		var mac = new GlideCertificateEncryption().generateMac(%s, 'HmacSHA256', id + '.' + timestamp + '.' + body);
		request.setRequestHeader('webhook-id', id);
		request.setRequestHeader('webhook-timestamp', timestamp);
		request.setRequestHeader('webhook-signature', 'v1,' + mac);
`

func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
