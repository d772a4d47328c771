package ingest

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/snowgate/snowgate/internal/webhook"
)

// Caveats: what an accepted request was accepted without, logged as its
// reason and counted.
const (
	// caveatReplayUnchecked: the replay store failed, the message was
	// enqueued without knowing whether it came before.
	caveatReplayUnchecked = "replay_unchecked"
	// caveatInstanceUnchecked: the gateway could not be read, the message
	// was enqueued without comparing instances.
	caveatInstanceUnchecked = "instance_unchecked"
	// caveatNoInstanceName: a rule printed before rules sent their
	// instance's name (accepted; see checkInstance).
	caveatNoInstanceName = "no_instance_name"
)

// forgetTimeout bounds the clean-up after a failed enqueue, which runs
// even when the request's own context has ended.
const forgetTimeout = 2 * time.Second

// remember records a verified signed request by its webhook-id until its
// timestamp leaves the tolerance (after which CheckTimestamp refuses it
// anyway). It reports whether the request is a repeat, and whether a
// marker was written (which a failed enqueue must take back).
//
// A failure of the store does not refuse the request. Refusing would lose
// the change: ServiceNow does not send a failed call again, and the
// reconciler would find the change only on its next pass. Accepting costs
// at most a duplicate message while the store is down, and duplicates are
// cheap: the processor drops a version it has decided without calling
// ServiceNow. The signature has been verified, so a replay can only repeat
// a genuine change, never bring a new one. The request is logged as an
// error and counted (ReplayUnchecked) so the failure is seen.
func (h *Handler) remember(ctx context.Context, rt *route, signed webhook.SignedHeaders, now time.Time, res *result) (duplicate, remembered bool) {
	if h.replays == nil {
		return false, false
	}
	// CheckTimestamp has parsed it already.
	ts, _ := strconv.ParseInt(signed.Timestamp, 10, 64)
	expires := time.Unix(ts, 0).Add(h.tolerance + time.Second)
	first, err := h.replays.Remember(ctx, rt.webhookID, signed.ID, now, expires)
	if err != nil {
		res.caveats = append(res.caveats, caveatReplayUnchecked)
		res.err = errors.Join(res.err, err)
		return false, false
	}
	return !first, first
}

// forget takes back the marker of a request that was not enqueued, so that
// a resend of it (the ECC queue sends some calls twice) is not taken for a
// repeat of a message we never queued. If this fails too, the change is
// left to the reconciler.
func (h *Handler) forget(ctx context.Context, rt *route, signed webhook.SignedHeaders, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	return h.replays.Forget(ctx, rt.webhookID, signed.ID, now)
}
