package registration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/webhook"
)

// WebhookInput is a webhook to create.
type WebhookInput struct {
	Name        string
	SourceType  string // registry.SourceServiceNow
	EventType   string // the ServiceNow table, one of registry.EventTypes
	GatewayID   string // "": the only active gateway
	Description string
	Signing     string // registry.SigningSecret (also ""), or registry.SigningHMAC
}

func (in WebhookInput) signing() string {
	if in.Signing == "" {
		return registry.SigningSecret
	}
	return in.Signing
}

// WebhookChanges are the changes to a webhook: only the fields that are not
// nil change.
type WebhookChanges struct {
	Name, Description *string
	Active            *bool
}

// IssuedSecret is a webhook with the secret just made for it, which is shown
// once: a static secret (stored only as a hash) or an HMAC signing key
// (stored in Secrets Manager).
type IssuedSecret struct {
	Webhook registry.Webhook
	Gateway registry.Gateway
	Secret  string
	// PreviousUntil is when the secrets the rotation replaced stop being
	// accepted (zero: at once, or nothing was replaced).
	PreviousUntil time.Time
}

// newPath returns a webhook path: 24 hex characters from crypto/rand.
func newPath() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// SelectGateway returns the gateway a new webhook belongs to: the one named,
// which must be active (else a *GatewayInactiveError), or with id "" the
// only active one (ErrNoActiveGateway when there is none, a
// *ValidationError naming --gateway-id when there are several).
func (s *Service) SelectGateway(ctx context.Context, id string) (registry.Gateway, error) {
	if id != "" {
		if err := CheckGatewayID("--gateway-id", id); err != nil {
			return registry.Gateway{}, err
		}
		g, err := s.reg.Gateway(ctx, id)
		if err != nil {
			return registry.Gateway{}, err
		}
		if !g.Active {
			return registry.Gateway{}, &GatewayInactiveError{Gateway: g}
		}
		return g, nil
	}
	all, err := s.reg.Gateways(ctx)
	if err != nil {
		return registry.Gateway{}, err
	}
	var active []registry.Gateway
	for _, g := range all {
		if g.Active {
			active = append(active, g)
		}
	}
	switch len(active) {
	case 0:
		return registry.Gateway{}, ErrNoActiveGateway
	case 1:
		return active[0], nil
	}
	var names []string
	for _, g := range active {
		names = append(names, fmt.Sprintf("%s (%s)", g.ID, g.Name))
	}
	return registry.Gateway{}, invalid("--gateway-id", "%d active gateways, choose one with --gateway-id: %s", len(active), strings.Join(names, ", "))
}

// CreateWebhook validates in, chooses its gateway (SelectGateway), mints its
// id, path and secret, and stores it with its path item in one transaction.
// An HMAC key is stored in Secrets Manager first and deleted again when the
// table write fails.
func (s *Service) CreateWebhook(ctx context.Context, in WebhookInput) (IssuedSecret, error) {
	if err := in.Validate(); err != nil {
		return IssuedSecret{}, err
	}
	g, err := s.SelectGateway(ctx, in.GatewayID)
	if err != nil {
		return IssuedSecret{}, err
	}
	w := registry.Webhook{
		ID: "whk_" + uuid.NewString(), Name: in.Name, SourceType: in.SourceType, EventType: in.EventType,
		GatewayID: g.ID, Description: in.Description, Path: newPath(), Active: true, Signing: in.signing(),
	}
	var secret, keyARN string
	if w.Signing == registry.SigningHMAC {
		secret = webhook.NewSigningKey()
		keyARN, err = s.sec.Create(ctx, schema.WebhookKeyName(s.prefix, w.ID), secret, "snowgate HMAC signing key of webhook "+w.ID)
		if err != nil {
			return IssuedSecret{}, err
		}
		w.SigningKeys = []registry.SigningKeyRef{{SecretARN: keyARN}}
	} else {
		var hash string
		secret, hash = webhook.NewSecret()
		w.SecretHashes = []registry.SecretHash{{SHA256: hash}}
	}
	stored, err := s.reg.CreateWebhook(ctx, w)
	if errors.Is(err, registry.ErrGatewayInactive) {
		err = fmt.Errorf("gateway %s was deactivated meanwhile; nothing was created: %w", g.ID, ErrGatewayInactive)
	}
	if err != nil {
		if keyARN != "" {
			err = s.undoCreate(ctx, err, keyARN)
		}
		return IssuedSecret{}, err
	}
	return IssuedSecret{Webhook: stored, Gateway: g, Secret: secret}, nil
}

// UpdateWebhook applies the changes to a webhook and its path item in one
// transaction; secrets whose grace period has ended are dropped, and the
// secrets of dropped HMAC keys deleted after it (a *LeftoverSecretsError,
// with the stored webhook, when that fails).
func (s *Service) UpdateWebhook(ctx context.Context, id string, c WebhookChanges) (registry.Webhook, error) {
	if err := CheckWebhookID(id); err != nil {
		return registry.Webhook{}, err
	}
	if err := c.Validate(); err != nil {
		return registry.Webhook{}, err
	}
	w, dropped, err := s.reg.UpdateWebhook(ctx, id, func(w *registry.Webhook) error {
		set(&w.Name, c.Name)
		set(&w.Description, c.Description)
		set(&w.Active, c.Active)
		return nil
	})
	if err != nil {
		return registry.Webhook{}, err
	}
	return w, s.deleteSecrets(ctx, "webhook "+id+" updated", keyARNs(dropped))
}

// RotateSecret issues a new secret for a webhook (a static secret or an
// HMAC key, as the webhook signs). The previous ones stay valid for grace (0:
// revoked at once). A new HMAC key is stored under a name of its own (keys
// in grace keep theirs) before the table write, and deleted again when that
// fails. Keys whose grace has ended are deleted after it.
func (s *Service) RotateSecret(ctx context.Context, id string, grace time.Duration) (IssuedSecret, error) {
	if err := CheckWebhookID(id); err != nil {
		return IssuedSecret{}, err
	}
	if grace < 0 {
		return IssuedSecret{}, invalid("--grace", "--grace must not be negative")
	}
	cur, err := s.reg.Webhook(ctx, id)
	if err != nil {
		return IssuedSecret{}, err
	}
	g, err := s.reg.Gateway(ctx, cur.GatewayID)
	if errors.Is(err, ErrNotFound) {
		// Not ErrNotFound itself: the webhook exists, its gateway does not.
		return IssuedSecret{}, fmt.Errorf("gateway %s of webhook %s not found", cur.GatewayID, id)
	}
	if err != nil {
		return IssuedSecret{}, err
	}
	var secret, hash, keyARN string
	if cur.Signing == registry.SigningHMAC {
		secret = webhook.NewSigningKey()
		name := schema.WebhookKeyName(s.prefix, cur.ID) + "/" + newPath()[:8]
		if keyARN, err = s.sec.Create(ctx, name, secret, "snowgate HMAC signing key of webhook "+cur.ID); err != nil {
			return IssuedSecret{}, err
		}
	} else {
		secret, hash = webhook.NewSecret()
	}
	now := s.now()
	w, dropped, err := s.reg.UpdateWebhook(ctx, id, func(w *registry.Webhook) error {
		if w.Signing != cur.Signing {
			return fmt.Errorf("webhook %s changed its signing mode meanwhile", w.ID)
		}
		if keyARN != "" {
			registry.RotateSigningKey(w, registry.SigningKeyRef{SecretARN: keyARN}, now, grace)
		} else {
			registry.RotateSecretHash(w, hash, now, grace)
		}
		return nil
	})
	if err != nil {
		if keyARN != "" {
			err = s.undoCreate(ctx, err, keyARN)
		}
		return IssuedSecret{}, err
	}
	out := IssuedSecret{Webhook: w, Gateway: g, Secret: secret}
	if grace > 0 {
		out.PreviousUntil = now.Add(grace).UTC()
	}
	return out, s.deleteSecrets(ctx, "secret of webhook "+id+" rotated", keyARNs(dropped))
}

// DeleteWebhook deletes a webhook and its path item in one transaction, then
// its HMAC keys (a *LeftoverSecretsError, with what was deleted, when that
// fails).
func (s *Service) DeleteWebhook(ctx context.Context, id string) (registry.Webhook, error) {
	if err := CheckWebhookID(id); err != nil {
		return registry.Webhook{}, err
	}
	w, err := s.reg.DeleteWebhook(ctx, id)
	if err != nil {
		return registry.Webhook{}, err
	}
	return w, s.deleteSecrets(ctx, "webhook "+id+" deleted", keyARNs(w.SigningKeys))
}

func keyARNs(keys []registry.SigningKeyRef) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.SecretARN)
	}
	return out
}

// IsLeftover reports whether err only says that secrets were left behind by
// an operation that otherwise succeeded (its result is valid).
func IsLeftover(err error) bool {
	var l *LeftoverSecretsError
	return errors.As(err, &l)
}
