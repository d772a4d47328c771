// Package registry stores gateways and webhook registrations in the registry
// table, and the path items that ingest reads in a single GetItem.
package registry

import (
	"regexp"
	"time"
)

// Item kinds, stored in the "kind" attribute and indexed by schema.IndexByKind.
const (
	KindGateway = "GATEWAY"
	KindWebhook = "WEBHOOK"
	KindPath    = "PATH"
)

// Key prefixes of the registry table's partition key.
const (
	gatewayPrefix = "GATEWAY#"
	webhookPrefix = "WEBHOOK#"
	pathPrefix    = "PATH#"
)

// GatewayKey, WebhookKey and PathKey build partition keys.
func GatewayKey(id string) string { return gatewayPrefix + id }
func WebhookKey(id string) string { return webhookPrefix + id }
func PathKey(path string) string  { return pathPrefix + path }

// Source and event types a webhook can have.
const (
	SourceServiceNow = "servicenow"

	TableIncident      = "incident"
	TableChangeRequest = "change_request"
)

// EventTypes are the ServiceNow tables snowgate handles.
var EventTypes = []string{TableIncident, TableChangeRequest}

// Auth modes of a gateway's ServiceNow credentials.
const (
	AuthBasic                  = "basic"
	AuthOAuthClientCredentials = "oauth-client-credentials"
	AuthOAuthPassword          = "oauth-password"
)

// Signing modes of a webhook.
const (
	// SigningSecret: a static shared secret in X-Webhook-Secret, stored as a hash.
	SigningSecret = "secret"
	// SigningHMAC: Standard Webhooks HMAC-SHA256 signatures; the key lives in
	// Secrets Manager.
	SigningHMAC = "hmac"
)

// DefaultDedupWindowMinutes applies when a gateway does not set one; -1 disables.
const DefaultDedupWindowMinutes = 30

var (
	gatewayIDPattern = regexp.MustCompile(`^gtw_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	webhookIDPattern = regexp.MustCompile(`^whk_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	pathPattern      = regexp.MustCompile(`^[0-9a-f]{24}$`)
)

// ValidGatewayID, ValidWebhookID and ValidPath check identifier shapes.
func ValidGatewayID(id string) bool { return gatewayIDPattern.MatchString(id) }
func ValidWebhookID(id string) bool { return webhookIDPattern.MatchString(id) }
func ValidPath(p string) bool       { return pathPattern.MatchString(p) }

// Gateway is a ServiceNow instance and how its records are handled.
type Gateway struct {
	ID          string `dynamodbav:"id" json:"id"`
	Name        string `dynamodbav:"name" json:"name"`
	Type        string `dynamodbav:"type" json:"type"` // always "servicenow" for now
	Description string `dynamodbav:"description,omitempty" json:"description,omitempty"`
	Active      bool   `dynamodbav:"active" json:"active"`
	InstanceURL string `dynamodbav:"instance_url" json:"instance_url"`
	Auth        string `dynamodbav:"auth" json:"auth"`
	Username    string `dynamodbav:"username,omitempty" json:"username,omitempty"`
	ClientID    string `dynamodbav:"client_id,omitempty" json:"client_id,omitempty"`
	// CredentialsSecretARN points at a Secrets Manager secret holding
	// Credentials as JSON; the password or client secret is never in the
	// table. It must be the secret named for the gateway
	// (schema.IsGatewaySecret), or no function reads it.
	CredentialsSecretARN string `dynamodbav:"credentials_secret_arn" json:"credentials_secret_arn"`
	// AllowCustomHost lets the gateway call an InstanceURL whose host is
	// neither a ServiceNow instance's nor loopback (a proxy, a custom
	// domain; see servicenow.CustomHost). It is set at registration
	// (--allow-custom-host), and every function checks it again before
	// it sends the gateway's credentials anywhere.
	AllowCustomHost bool `dynamodbav:"allow_custom_host,omitempty" json:"allow_custom_host,omitempty"`
	// AssignmentGroupFilter is the filter as typed (group names, or
	// sys_ids); AssignmentGroupIDs are the sys_user_group sys_ids it was
	// resolved to at registration, in the same order. A gateway registered
	// offline (or before groups were resolved) has names only, and its
	// scope compares names.
	AssignmentGroupFilter string   `dynamodbav:"assignment_group_filter,omitempty" json:"assignment_group_filter,omitempty"`
	AssignmentGroupIDs    []string `dynamodbav:"assignment_group_ids,omitempty" json:"assignment_group_ids,omitempty"`
	EnvironmentFilter     string   `dynamodbav:"environment_filter,omitempty" json:"environment_filter,omitempty"`
	DedupWindowMinutes    int      `dynamodbav:"dedup_window_minutes" json:"dedup_window_minutes"`
	// EscalationGroup is the escalation group as typed; EscalationGroupID
	// its sys_user_group sys_id, empty when registered offline.
	EscalationGroup   string `dynamodbav:"escalation_group,omitempty" json:"escalation_group,omitempty"`
	EscalationGroupID string `dynamodbav:"escalation_group_id,omitempty" json:"escalation_group_id,omitempty"`
	WriteBack         bool   `dynamodbav:"write_back" json:"write_back"`
	// Org is the automation platform organisation the gateway's jobs
	// belong to; every job event carries it.
	Org string `dynamodbav:"org,omitempty" json:"org,omitempty"`
	// Mode is ModeAutomatic or ModeSemiAutomatic; "" (a gateway stored
	// before modes existed) is automatic. Read it with JobMode.
	Mode string `dynamodbav:"mode,omitempty" json:"mode,omitempty"`
	// Mention is the token a comment or work note must contain to create a
	// job (semi-automatic) or to be a follow-up; "" is DefaultMention.
	Mention string `dynamodbav:"mention,omitempty" json:"mention,omitempty"`
	// OnSuccess, OnFailure and ResolveCloseCode are the outbound mapping:
	// what the writer does with a result. "" takes the default (see
	// SuccessAction, FailureAction, CloseCode).
	OnSuccess        string `dynamodbav:"on_success,omitempty" json:"on_success,omitempty"`
	OnFailure        string `dynamodbav:"on_failure,omitempty" json:"on_failure,omitempty"`
	ResolveCloseCode string `dynamodbav:"resolve_close_code,omitempty" json:"resolve_close_code,omitempty"`
	// DedupNoteOff turns off the work note on a deduplicated incident that
	// names its primary (on by default, so the zero value is "on").
	DedupNoteOff bool `dynamodbav:"dedup_note_off,omitempty" json:"dedup_note_off,omitempty"`
	// RateLimitPerHour and MaxConcurrency are the gateway's ServiceNow
	// budget (--rate-limit N/h, --max-concurrency N); 0 takes the budget
	// package's default. Read them with BudgetSettings.
	RateLimitPerHour int       `dynamodbav:"rate_limit_per_hour,omitempty" json:"rate_limit_per_hour,omitempty"`
	MaxConcurrency   int       `dynamodbav:"max_concurrency,omitempty" json:"max_concurrency,omitempty"`
	CreatedAt        time.Time `dynamodbav:"created_at" json:"created_at"`
	UpdatedAt        time.Time `dynamodbav:"updated_at" json:"updated_at"`
}

// Credentials is the JSON document stored in a gateway's secret.
type Credentials struct {
	Auth         string `json:"auth"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// InstanceURL is the instance the credentials are for, as the gateway
	// stores it: no function sends them to another, whatever the
	// gateway's item says. Empty in a secret written before it existed
	// (until an update of the gateway's credentials or instance writes it)
	// or by hand.
	InstanceURL string `json:"instance_url,omitempty"`
}

// SecretHash is a hash of a webhook's static secret, valid until Expires
// (zero: no expiry). During a rotation the previous hash stays valid until
// its grace period ends.
type SecretHash struct {
	// SHA256 is the hex SHA-256 of the secret. The secret is 32 random bytes,
	// so a fast hash is safe and keeps verification in microseconds.
	SHA256  string    `dynamodbav:"sha256" json:"-"`
	Expires time.Time `dynamodbav:"expires,omitempty" json:"expires,omitempty"`
}

// Webhook is one registration: a URL path ServiceNow posts to.
type Webhook struct {
	ID          string `dynamodbav:"id" json:"id"`
	Name        string `dynamodbav:"name" json:"name"`
	SourceType  string `dynamodbav:"source_type" json:"source_type"`
	EventType   string `dynamodbav:"event_type" json:"event_type"` // the ServiceNow table
	GatewayID   string `dynamodbav:"gateway_id" json:"gateway_id"`
	Description string `dynamodbav:"description,omitempty" json:"description,omitempty"`
	Path        string `dynamodbav:"path" json:"path"`
	Active      bool   `dynamodbav:"active" json:"active"`
	Signing     string `dynamodbav:"signing" json:"signing"`
	// SecretHashes are the accepted static secrets (signing "secret").
	SecretHashes []SecretHash `dynamodbav:"secret_hashes,omitempty" json:"-"`
	// SigningKeys point at the Secrets Manager secrets holding HMAC
	// keys (signing "hmac"); the first is current, the rest are in grace.
	SigningKeys []SigningKeyRef `dynamodbav:"signing_keys,omitempty" json:"-"`
	CreatedAt   time.Time       `dynamodbav:"created_at" json:"created_at"`
	UpdatedAt   time.Time       `dynamodbav:"updated_at" json:"updated_at"`
}

// SigningKeyRef names an HMAC key in Secrets Manager, valid until Expires
// (zero: no expiry).
type SigningKeyRef struct {
	SecretARN string    `dynamodbav:"secret_arn" json:"-"`
	Expires   time.Time `dynamodbav:"expires,omitempty" json:"expires,omitempty"`
}

// Route is the path item: what ingest needs to authenticate a request, in
// one GetItem. It is written in the same transaction as its webhook, and
// rewritten whenever the webhook or its gateway changes (activation,
// rotation). Ingest reads the gateway item only for the instance name a
// signed call is checked against, through a cache as long-lived as the
// routes'; carrying the name here would spare that read.
type Route struct {
	Path         string          `dynamodbav:"path"`
	WebhookID    string          `dynamodbav:"webhook_id"`
	GatewayID    string          `dynamodbav:"gateway_id"`
	Table        string          `dynamodbav:"table"`
	Active       bool            `dynamodbav:"active"` // webhook active AND gateway active
	Signing      string          `dynamodbav:"signing"`
	SecretHashes []SecretHash    `dynamodbav:"secret_hashes,omitempty"`
	SigningKeys  []SigningKeyRef `dynamodbav:"signing_keys,omitempty"`
	UpdatedAt    time.Time       `dynamodbav:"updated_at"`
}
