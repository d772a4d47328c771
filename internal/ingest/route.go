package ingest

import (
	"time"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
)

// route is a registration prepared for verification: hashes decoded once
// per lookup instead of once per request.
type route struct {
	webhookID string
	gatewayID string
	table     string
	active    bool
	signing   string
	digests   []expiringDigest
	keys      []registry.SigningKeyRef
	// broken names what makes the registration unusable, "" when nothing does.
	broken string
}

type expiringDigest struct {
	d       webhook.Digest
	expires time.Time
}

func compile(r registry.Route) *route {
	rt := &route{
		webhookID: r.WebhookID,
		gatewayID: r.GatewayID,
		table:     r.Table,
		active:    r.Active,
		signing:   r.Signing,
		keys:      r.SigningKeys,
	}
	for _, h := range r.SecretHashes {
		d, err := webhook.ParseDigest(h.SHA256)
		if err != nil {
			continue // a malformed hash matches nothing
		}
		rt.digests = append(rt.digests, expiringDigest{d: d, expires: h.Expires})
	}
	switch {
	case r.WebhookID == "" || r.GatewayID == "" || r.Table == "":
		rt.broken = "incomplete_registration"
	case r.Signing == registry.SigningSecret && len(rt.digests) == 0:
		rt.broken = "no_secret_hash"
	case r.Signing == registry.SigningHMAC && len(r.SigningKeys) == 0:
		rt.broken = "no_signing_key"
	}
	return rt
}

// usable returns why the route cannot accept anything, or "".
func (rt *route) usable() string {
	if !rt.active {
		return "inactive"
	}
	return rt.broken
}

// digestsAt appends the digests still valid at now to dst.
func (rt *route) digestsAt(now time.Time, dst []webhook.Digest) []webhook.Digest {
	for _, e := range rt.digests {
		if e.expires.IsZero() || now.Before(e.expires) {
			dst = append(dst, e.d)
		}
	}
	return dst
}
