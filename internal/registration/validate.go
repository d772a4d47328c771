package registration

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// ValidationError is input an operation refuses before writing anything. It
// names the field as the command line's help prints its flag
// ("--gateway-id"), so that a caller can show it as it is; the CLI exits 2
// on it.
type ValidationError struct {
	Flag    string // e.g. "--instance-url"; "" when no single field is at fault
	Message string // the whole message, naming the flag
}

func (e *ValidationError) Error() string { return e.Message }

func invalid(flag, format string, args ...any) error {
	return &ValidationError{Flag: flag, Message: fmt.Sprintf(format, args...)}
}

// credentialNeeds is which credentials an auth mode uses.
type credentialNeeds struct{ username, password, clientID, clientSecret bool }

// authNeeds is THE table of which credentials each auth mode needs.
var authNeeds = map[string]credentialNeeds{
	registry.AuthBasic:                  {username: true, password: true},
	registry.AuthOAuthClientCredentials: {clientID: true, clientSecret: true},
	registry.AuthOAuthPassword:          {username: true, password: true, clientID: true, clientSecret: true},
}

// authModes lists the modes for messages.
var authModes = fmt.Sprintf("%s, %s or %s", registry.AuthBasic, registry.AuthOAuthClientCredentials, registry.AuthOAuthPassword)

func checkAuth(auth string) error {
	if _, ok := authNeeds[auth]; !ok {
		return invalid("--auth", "--auth must be %s", authModes)
	}
	return nil
}

// credentialFields are the four credentials with the flag that gives each.
type credentialFields struct{ username, password, clientID, clientSecret string }

// checks pairs each credential's flag with whether the mode needs it and
// whether it is given, in the order the flags are typed (so the first
// message names the first flag to fix).
func (c credentialFields) checks(needs credentialNeeds) []struct {
	flag          string
	needed, given bool
} {
	return []struct {
		flag          string
		needed, given bool
	}{
		{"--username", needs.username, c.username != ""},
		{"--password-stdin", needs.password, c.password != ""},
		{"--client-id", needs.clientID, c.clientID != ""},
		{"--client-secret-stdin", needs.clientSecret, c.clientSecret != ""},
	}
}

// rejectUnused refuses credentials the auth mode does not use.
func rejectUnused(auth string, given credentialFields) error {
	for _, ch := range given.checks(authNeeds[auth]) {
		if ch.given && !ch.needed {
			return invalid(ch.flag, "%s is not used with --auth %s", ch.flag, auth)
		}
	}
	return nil
}

// requireCredentials checks that every credential the mode needs is there.
func requireCredentials(auth string, have credentialFields) error {
	for _, ch := range have.checks(authNeeds[auth]) {
		if ch.needed && !ch.given {
			return invalid(ch.flag, "--auth %s needs %s", auth, ch.flag)
		}
	}
	return nil
}

// CheckInstanceURL accepts https URLs, and http only on loopback (the local
// ServiceNow simulator): credentials must not cross a network in clear. It
// returns the URL without a trailing slash.
func CheckInstanceURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	bad := invalid("--instance-url", "--instance-url must be an https URL such as https://example.service-now.com")
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", bad
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", invalid("--instance-url", "--instance-url must use https (http is accepted only on loopback)")
		}
	default:
		return "", bad
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// checkHost refuses an instance URL on a custom host (servicenow.CustomHost)
// without the permission to call it: whoever answers there is sent the
// gateway's credentials.
func checkHost(instance string, allowCustom bool) error {
	if allowCustom || !servicenow.CustomHost(instance) {
		return nil
	}
	return invalid("--instance-url", "--instance-url %s is not a ServiceNow instance (https://<instance>.service-now.com or https://<instance>.servicenowservices.com): "+
		"to send the gateway's credentials to this host (a proxy, a custom domain), pass --allow-custom-host", instance)
}

func checkDedup(n int) error {
	if n < -1 {
		return invalid("--dedup-window-minutes", "--dedup-window-minutes must be -1 (off), 0 or more")
	}
	return nil
}

// Bounds of the free-text job settings: a mention token is typed in a
// comment, so it stays short; an org name is an identifier, not prose.
const (
	MaxMentionLength = 40
	MaxOrgLength     = 100
)

// jobSettings are a gateway's job lifecycle settings as given: nil is not
// given. One check serves create (where an empty value means the default
// and is not given) and update (where a given value must not be empty).
type jobSettings struct {
	org, mode, mention, onSuccess, onFailure, closeCode *string
}

func (s jobSettings) check() error {
	if s.org != nil {
		if n := utf8.RuneCountInString(*s.org); n > MaxOrgLength {
			return invalid("--org", "--org is %d characters long; at most %d", n, MaxOrgLength)
		}
		if strings.ContainsFunc(*s.org, unicode.IsControl) {
			return invalid("--org", "--org cannot contain control characters")
		}
	}
	if err := checkOneOf("--mode", s.mode, registry.Modes); err != nil {
		return err
	}
	if s.mention != nil {
		m := *s.mention
		switch n := utf8.RuneCountInString(m); {
		case m == "":
			return invalid("--mention", "--mention cannot be empty (the default is %s)", registry.DefaultMention)
		case strings.ContainsFunc(m, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			return invalid("--mention", "--mention %q cannot contain spaces: it is one token, such as %s", m, registry.DefaultMention)
		case n > MaxMentionLength:
			return invalid("--mention", "--mention is %d characters long; at most %d", n, MaxMentionLength)
		}
	}
	if err := checkOneOf("--on-success", s.onSuccess, registry.SuccessActions); err != nil {
		return err
	}
	if err := checkOneOf("--on-failure", s.onFailure, registry.FailureActions); err != nil {
		return err
	}
	if s.closeCode != nil && strings.TrimSpace(*s.closeCode) == "" {
		return invalid("--resolve-close-code", "--resolve-close-code cannot be empty (the default is %q)", registry.DefaultResolveCloseCode)
	}
	return nil
}

// RateLimitDefault is what --rate-limit takes to go back to the budget's
// default rate (as does 0).
const RateLimitDefault = "default"

// ParseRateLimit reads a --rate-limit value: requests per hour as N/h or
// N/hour (1 ≤ N ≤ budget.MaxRatePerHour), or "default" (or 0) for the
// budget's default, returned as 0. A bare number is refused: ServiceNow's
// rate limit rules count per hour, and a rate without its unit is too easy
// to read per second or per minute.
func ParseRateLimit(s string) (int, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == RateLimitDefault || v == "0" {
		return 0, nil
	}
	num, ok := strings.CutSuffix(v, "/hour")
	if !ok {
		num, ok = strings.CutSuffix(v, "/h")
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if !ok || err != nil {
		return 0, invalid("--rate-limit", "--rate-limit %q: give requests per hour, such as 1000/h (or %s, %d/h)", s, RateLimitDefault, budget.DefaultRatePerHour)
	}
	if n < 1 {
		return 0, invalid("--rate-limit", "--rate-limit must be at least 1/h (or %s, %d/h)", RateLimitDefault, budget.DefaultRatePerHour)
	}
	if err := checkRate(n); err != nil {
		return 0, err
	}
	return n, nil
}

// checkRate checks a rate limit in requests per hour; 0 is the default.
func checkRate(n int) error {
	switch {
	case n < 0:
		return invalid("--rate-limit", "--rate-limit must be at least 1/h (or %s, %d/h)", RateLimitDefault, budget.DefaultRatePerHour)
	case n > budget.MaxRatePerHour:
		return invalid("--rate-limit", "--rate-limit %d/h is more than the budget counts: at most %d/h", n, budget.MaxRatePerHour)
	}
	return nil
}

// checkConcurrency checks a concurrency ceiling; 0 is the default.
func checkConcurrency(n int) error {
	if n < 0 || n > budget.MaxMaxConcurrency {
		return invalid("--max-concurrency", "--max-concurrency must be 1 to %d requests at once (or 0, the default %d)", budget.MaxMaxConcurrency, budget.DefaultMaxConcurrency)
	}
	return nil
}

// checkBudget checks the budget settings given (nil: not given).
func checkBudget(rate, concurrency *int) error {
	if rate != nil {
		if err := checkRate(*rate); err != nil {
			return err
		}
	}
	if concurrency != nil {
		return checkConcurrency(*concurrency)
	}
	return nil
}

// checkOneOf checks that a given value is one of words.
func checkOneOf(flag string, v *string, words []string) error {
	if v != nil && !slices.Contains(words, *v) {
		return invalid(flag, "%s must be %s", flag, orList(words))
	}
	return nil
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// givenUnlessEmpty is a create's setting as jobSettings takes it: empty
// is the default, not a value to check.
func givenUnlessEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CheckGatewayID checks the shape of a gateway id given with flag ("--id",
// "--gateway-id").
func CheckGatewayID(flag, id string) error {
	if id == "" {
		return invalid(flag, "%s is required", flag)
	}
	if !registry.ValidGatewayID(id) {
		return invalid(flag, "%s %q is not a gateway id (gtw_<uuid>)", flag, id)
	}
	return nil
}

// CheckWebhookID checks the shape of a webhook id (given with --id).
func CheckWebhookID(id string) error {
	if id == "" {
		return invalid("--id", "--id is required")
	}
	if !registry.ValidWebhookID(id) {
		return invalid("--id", "--id %q is not a webhook id (whk_<uuid>)", id)
	}
	return nil
}

// Validate checks a gateway to be created, as CreateGateway does, without
// writing anything. A caller that reads the secrets later (from stdin) can
// check first with any non-empty stand-in for them.
func (in GatewayInput) Validate() error {
	_, err := in.validate()
	return err
}

// validate returns the instance URL as stored.
func (in GatewayInput) validate() (string, error) {
	if in.Name == "" {
		return "", invalid("--name", "--name is required")
	}
	if in.InstanceURL == "" {
		return "", invalid("--instance-url", "--instance-url is required")
	}
	instance, err := CheckInstanceURL(in.InstanceURL)
	if err != nil {
		return "", err
	}
	if err := checkHost(instance, in.AllowCustomHost); err != nil {
		return "", err
	}
	if in.Auth == "" {
		return "", invalid("--auth", "--auth is required (%s)", authModes)
	}
	if err := checkAuth(in.Auth); err != nil {
		return "", err
	}
	creds := in.credentials()
	if err := rejectUnused(in.Auth, creds); err != nil {
		return "", err
	}
	if err := requireCredentials(in.Auth, creds); err != nil {
		return "", err
	}
	if err := checkDedup(in.DedupWindowMinutes); err != nil {
		return "", err
	}
	if err := in.jobSettings().check(); err != nil {
		return "", err
	}
	if err := checkBudget(&in.RateLimitPerHour, &in.MaxConcurrency); err != nil {
		return "", err
	}
	return instance, nil
}

func (in GatewayInput) jobSettings() jobSettings {
	return jobSettings{
		org: givenUnlessEmpty(in.Org), mode: givenUnlessEmpty(in.Mode), mention: givenUnlessEmpty(in.Mention),
		onSuccess: givenUnlessEmpty(in.OnSuccess), onFailure: givenUnlessEmpty(in.OnFailure), closeCode: givenUnlessEmpty(in.ResolveCloseCode),
	}
}

// Empty reports whether the changes change nothing.
func (c GatewayChanges) Empty() bool {
	c.SkipInstanceChecks = false
	return c == GatewayChanges{}
}

// Validate checks what can be checked of the changes without the gateway
// they apply to; UpdateGateway also checks the credentials against the
// gateway's auth mode. As with GatewayInput.Validate, secrets not read yet
// may be given as any non-empty stand-in.
func (c GatewayChanges) Validate() error {
	if c.Empty() {
		return invalid("", "nothing to change")
	}
	if c.InstanceURL != nil {
		if _, err := CheckInstanceURL(*c.InstanceURL); err != nil {
			return err
		}
	}
	if c.Auth != nil {
		if err := checkAuth(*c.Auth); err != nil {
			return err
		}
	}
	if c.Name != nil && *c.Name == "" {
		return invalid("--name", "--name cannot be empty")
	}
	if c.DedupWindowMinutes != nil {
		if err := checkDedup(*c.DedupWindowMinutes); err != nil {
			return err
		}
	}
	settings := jobSettings{org: c.Org, mode: c.Mode, mention: c.Mention, onSuccess: c.OnSuccess, onFailure: c.OnFailure, closeCode: c.ResolveCloseCode}
	if err := settings.check(); err != nil {
		return err
	}
	return checkBudget(c.RateLimitPerHour, c.MaxConcurrency)
}

// checkHost checks the gateway's instance URL and custom-host permission as
// the changes leave them, when they change either: a gateway registered on
// a custom host before the permission existed can still be changed
// otherwise (deactivated, for one) without it.
func (c GatewayChanges) checkHost(cur registry.Gateway) error {
	if c.InstanceURL == nil && c.AllowCustomHost == nil {
		return nil
	}
	instance, allow := cur.InstanceURL, cur.AllowCustomHost
	if c.InstanceURL != nil {
		var err error
		if instance, err = CheckInstanceURL(*c.InstanceURL); err != nil {
			return err
		}
	}
	set(&allow, c.AllowCustomHost)
	if err := checkHost(instance, allow); err != nil {
		if c.InstanceURL == nil {
			return invalid("--allow-custom-host", "--allow-custom-host=false: the gateway's instance URL %s is not a ServiceNow instance; "+
				"give its --instance-url on ServiceNow with it", instance)
		}
		return err
	}
	return nil
}

// credentialsChange reports whether the changes touch the credentials.
func (c GatewayChanges) credentialsChange() bool {
	return c.Auth != nil || c.Username != nil || c.ClientID != nil || c.Password != nil || c.ClientSecret != nil
}

// Validate checks a webhook to be created, as CreateWebhook does, without
// reading or writing anything.
func (in WebhookInput) Validate() error {
	events := strings.Join(registry.EventTypes, " or ")
	switch {
	case in.Name == "":
		return invalid("--name", "--name is required")
	case in.SourceType == "":
		return invalid("--source-type", "--source-type is required (%s)", registry.SourceServiceNow)
	case in.SourceType != registry.SourceServiceNow:
		return invalid("--source-type", "--source-type must be %s", registry.SourceServiceNow)
	case in.EventType == "":
		return invalid("--event-type", "--event-type is required (%s)", events)
	case !slices.Contains(registry.EventTypes, in.EventType):
		return invalid("--event-type", "--event-type must be %s", events)
	case in.signing() != registry.SigningSecret && in.signing() != registry.SigningHMAC:
		return invalid("--signing", "--signing must be %s or %s", registry.SigningSecret, registry.SigningHMAC)
	}
	if in.GatewayID != "" {
		return CheckGatewayID("--gateway-id", in.GatewayID)
	}
	return nil
}

// Validate checks the changes to a webhook.
func (c WebhookChanges) Validate() error {
	if c == (WebhookChanges{}) {
		return invalid("", "nothing to change: give --name, --description or --active")
	}
	if c.Name != nil && *c.Name == "" {
		return invalid("--name", "--name cannot be empty")
	}
	return nil
}
