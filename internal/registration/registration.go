// Package registration owns every operation on gateways and webhooks:
// creating, updating, (de)activating and deleting a gateway; creating,
// updating, rotating the secret of and deleting a webhook.
//
// Each operation validates its input first (one table says which
// credentials each auth mode needs), mints what is new (ids gtw_<uuid> and
// whk_<uuid>, a webhook path of 24 hex characters from crypto/rand, static
// secrets and HMAC keys), then writes Secrets Manager and the registry table
// in the order that lets it undo the first write when the second fails:
//
//	create gateway    secret created, table write fails   → secret deleted
//	update gateway    secret replaced, table write fails  → previous secret put back
//	                  (a secret under an older prefix is moved instead: a new
//	                  secret under the current one, table write fails → new
//	                  secret discarded; else the old one deleted after it)
//	create webhook    HMAC key created, table write fails → key deleted
//	rotate secret     new HMAC key created, table write fails → new key deleted
//	delete gateway    table first (with force its webhooks and paths in the
//	                  same transaction), then the credentials secret and the
//	                  webhooks' HMAC keys
//	delete webhook    table first, then its HMAC keys
//
// A secret undone after a failed create is removed at once; a secret of a
// deleted gateway or webhook, or a key dropped after its grace, is deleted
// with a recovery window of secrets.RecoveryWindowDays days, so it can be
// restored. Names are never reused (they are made of fresh ids, see
// schema.GatewaySecretName), so a secret pending deletion never stands in
// the way of a new gateway or webhook.
//
// Secrets are deleted only after the table no longer points at them, so a
// failure never leaves a registered gateway or webhook without its secret;
// what cannot be deleted afterwards is reported, by ARN, in a
// *LeftoverSecretsError next to the result of the operation that succeeded.
//
// Gateway create and update resolve the assignment group filter and the
// escalation group to sys_user_group sys_ids on the instance (through a
// Directory, WithDirectory), because Business Rule conditions compare
// strings case-sensitively: a name is accepted only exactly as the instance
// spells it (a near miss is refused with the name to type), a sys_id only
// when such a group exists. An environment filter is refused when the
// instance lacks its field. SkipInstanceChecks registers offline: the
// filters are stored as typed and matched by name.
//
// A gateway also carries its ServiceNow budget settings (RateLimitPerHour,
// MaxConcurrency; zero is the budget's default), checked here with the
// rest. The budget they configure lives in the state table and belongs to
// package budget: pausing and resuming it are that package's operations, and
// deleting a gateway leaves its budget item, as it leaves the gateway's
// tickets and watermarks. A delete here could not remove it for good anyway:
// a function that still has the gateway cached takes tokens, or reports an
// answer's X-RateLimit-* headers, with an update that writes the item again.
//
// The command line (internal/cli), make dev's demo registration, the
// benchmarks and the tests all call this package; nothing else writes
// gateway or webhook items. Inputs are plain structs: the caller reads
// flags, environment and stdin, and passes secrets in as values.
package registration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
)

// Registry is what the operations need of the registry table.
type Registry interface {
	Gateway(ctx context.Context, id string) (registry.Gateway, error)
	Gateways(ctx context.Context) ([]registry.Gateway, error)
	Webhook(ctx context.Context, id string) (registry.Webhook, error)
	Webhooks(ctx context.Context, gatewayID string) ([]registry.Webhook, error)
	CreateGateway(ctx context.Context, g registry.Gateway) (registry.Gateway, error)
	UpdateGateway(ctx context.Context, id string, change func(*registry.Gateway) error) (registry.Gateway, error)
	DeleteGateway(ctx context.Context, id string, force bool) (registry.Gateway, []registry.Webhook, error)
	CreateWebhook(ctx context.Context, w registry.Webhook) (registry.Webhook, error)
	UpdateWebhook(ctx context.Context, id string, change func(*registry.Webhook) error) (registry.Webhook, []registry.SigningKeyRef, error)
	DeleteWebhook(ctx context.Context, id string) (registry.Webhook, error)
}

// Secrets is what the operations need of Secrets Manager.
type Secrets interface {
	Create(ctx context.Context, name, value, description string) (arn string, err error)
	Get(ctx context.Context, arn string) (string, error)
	Put(ctx context.Context, arn, value string) error
	// Delete schedules a secret's deletion with a recovery window;
	// Discard removes one at once (a secret an aborted create left).
	Delete(ctx context.Context, arn string) error
	Discard(ctx context.Context, arn string) error
}

var (
	_ Registry = (*registry.Store)(nil)
	_ Secrets  = (*secrets.Store)(nil)
)

// Outcomes callers tell apart with errors.Is. They are the registry's own
// sentinels, so errors from either package match.
var (
	// ErrNotFound: the gateway or webhook does not exist.
	ErrNotFound = registry.ErrNotFound
	// ErrGatewayInUse: a gateway with webhooks was deleted without force.
	// The error is a *GatewayInUseError naming them.
	ErrGatewayInUse = registry.ErrGatewayInUse
	// ErrGatewayInactive: a webhook was created under an inactive gateway.
	// When the gateway was inactive when chosen, the error is a
	// *GatewayInactiveError; when it was deactivated between being chosen
	// and the write, it is the registry's error.
	ErrGatewayInactive = registry.ErrGatewayInactive
	// ErrNoActiveGateway: a webhook was created without a gateway id and no
	// gateway is active.
	ErrNoActiveGateway = errors.New("no active gateway")
)

// GatewayInUseError is returned when deleting, without force, a gateway that
// webhooks point at. It is ErrGatewayInUse.
type GatewayInUseError struct {
	GatewayID  string
	WebhookIDs []string
}

func (e *GatewayInUseError) Error() string {
	return fmt.Sprintf("gateway %s is used by %d webhook(s) (%s): delete them first, or pass --force to delete them too",
		e.GatewayID, len(e.WebhookIDs), strings.Join(e.WebhookIDs, ", "))
}

// Is makes the error ErrGatewayInUse.
func (e *GatewayInUseError) Is(target error) bool { return target == ErrGatewayInUse }

// GatewayInactiveError is returned when a webhook is created under a gateway
// that is inactive. It is ErrGatewayInactive.
type GatewayInactiveError struct{ Gateway registry.Gateway }

func (e *GatewayInactiveError) Error() string {
	return fmt.Sprintf("gateway %s (%s) is inactive", e.Gateway.ID, e.Gateway.Name)
}

// Is makes the error ErrGatewayInactive.
func (e *GatewayInactiveError) Is(target error) bool { return target == ErrGatewayInactive }

// LeftoverSecretsError reports an operation that succeeded in the registry
// but could not delete secrets it no longer references. The result returned
// with it is valid; the secrets named here are to be deleted by hand.
type LeftoverSecretsError struct {
	Done string   // what succeeded, e.g. "gateway gtw_… deleted"
	ARNs []string // the secrets that are left
	Err  error
}

func (e *LeftoverSecretsError) Error() string {
	return fmt.Sprintf("%s, but the secrets it no longer uses could not be deleted (delete them by hand: %s): %v",
		e.Done, strings.Join(e.ARNs, ", "), e.Err)
}

func (e *LeftoverSecretsError) Unwrap() error { return e.Err }

// Service runs the operations over a registry table and Secrets Manager.
type Service struct {
	reg     Registry
	sec     Secrets
	prefix  string
	now     func() time.Time
	connect Connect
}

// Option adjusts a Service.
type Option func(*Service)

// WithSecretPrefix sets the prefix of the secrets' names (default
// schema.SecretPrefix(schema.DefaultStackName)): a gateway's credentials are
// <prefix>gateways/<id>, a webhook's HMAC keys <prefix>webhooks/<id>…
// (schema.GatewaySecretName, schema.WebhookKeyName). The stack grants each
// function one of the two kinds under its own prefix only.
func WithSecretPrefix(p string) Option { return func(s *Service) { s.prefix = p } }

// WithClock sets the clock that secret grace periods are counted from. Give
// the registry store the same one.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New returns a Service over the registry and the secrets store.
func New(reg Registry, sec Secrets, opts ...Option) *Service {
	s := &Service{reg: reg, sec: sec, prefix: schema.SecretPrefix(schema.DefaultStackName), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// deleteSecrets deletes secrets the registry no longer references, with
// Secrets Manager's recovery window (secrets.RecoveryWindowDays): a gateway
// or webhook deleted by mistake can have its secrets restored and its item
// written back. done says what succeeded, for the error.
func (s *Service) deleteSecrets(ctx context.Context, done string, arns []string) error {
	ctx = context.WithoutCancel(ctx)
	var left []string
	var errs []error
	for _, arn := range arns {
		if arn == "" {
			continue
		}
		if err := s.sec.Delete(ctx, arn); err != nil {
			left = append(left, arn)
			errs = append(errs, err)
		}
	}
	if len(left) == 0 {
		return nil
	}
	return &LeftoverSecretsError{Done: done, ARNs: left, Err: errors.Join(errs...)}
}

// undoCreate discards a secret created for a write that then failed (at
// once: nothing ever pointed at it, there is nothing to recover) and joins
// what went wrong to err.
func (s *Service) undoCreate(ctx context.Context, err error, arn string) error {
	if derr := s.sec.Discard(context.WithoutCancel(ctx), arn); derr != nil {
		return errors.Join(err, fmt.Errorf("also failed to delete the secret created for it, delete %s by hand: %w", arn, derr))
	}
	return err
}
