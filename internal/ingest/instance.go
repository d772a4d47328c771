package ingest

import (
	"context"
	"errors"
	"strings"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
)

// checkInstance compares the instance a Business Rule says it runs on
// (instance_name in the body, signed in HMAC mode) with the gateway's, the
// instance named by its URL. It returns why to refuse the request, or ""
// to go on, adding a caveat to res where it goes on without comparing.
//
// A clone of production carries production's rules and secrets; a rule
// printed for production sends nothing there, and this check refuses what
// a modified one sends. A mismatch is an authentication failure like a
// wrong secret: same answer, counted per webhook.
//
// A rule printed before rules sent the name sends none. It is accepted, so
// that upgrading snowgate does not silence every webhook until each rule
// is pasted again, and counted (NoInstanceName) with a log line, so the
// rules left to replace can be found. A gateway whose URL names no
// instance (a custom domain, a simulator) has nothing to compare with.
func (h *Handler) checkInstance(ctx context.Context, rt *route, sent string, res *result) string {
	g, err := h.gateways.Gateway(ctx, rt.gatewayID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return "unknown_gateway" // a path left behind by its gateway
	case err != nil:
		// The caller is authenticated; as with the replay store, a read
		// failure must not lose the change (see remember).
		res.caveats = append(res.caveats, caveatInstanceUnchecked)
		res.err = errors.Join(res.err, err)
		return ""
	}
	want := businessrule.InstanceName(g.InstanceURL)
	switch {
	case want == "":
		return ""
	case sent == "":
		res.caveats = append(res.caveats, caveatNoInstanceName)
		return ""
	case !strings.EqualFold(sent, want):
		return "instance_mismatch"
	}
	return ""
}
