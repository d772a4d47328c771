package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Take takes n tokens (1 ≤ n ≤ the burst) from the gateway's request rate
// at once, for n requests made under a slot the caller already holds (a
// batch fetched one after the other) or that need none. It returns a
// *DeniedError (ErrPaused or ErrNoTokens) when they must wait, and
// ErrTooMany when n can never fit. The Grant holds no slot.
//
// While the gateway waits for a probe (401/403), the first caller after the
// probe time gets a Grant with Probe set and no tokens taken.
func (b *Budget) Take(ctx context.Context, gatewayID string, s Settings, n int) (Grant, error) {
	if n < 1 {
		return Grant{}, fmt.Errorf("budget %s: take %d tokens: want at least 1", gatewayID, n)
	}
	return b.grant(ctx, gatewayID, s, n, true, false)
}

// Acquire takes a slot under the gateway's concurrency ceiling and n tokens
// (0 ≤ n ≤ the burst) in one write: what a caller needs for one request
// (n = 1) or for a batch it sends one after the other. Release the Grant
// (or pass it to Done) when done; if the holder vanishes, the slot comes
// back when its lease (Options.SlotLease) ends. It returns a *DeniedError
// (ErrPaused, ErrNoTokens or ErrNoSlot) when the request must wait.
func (b *Budget) Acquire(ctx context.Context, gatewayID string, s Settings, n int) (Grant, error) {
	if n < 0 {
		return Grant{}, fmt.Errorf("budget %s: acquire with %d tokens", gatewayID, n)
	}
	return b.grant(ctx, gatewayID, s, n, n > 0, true)
}

// AcquireWait is Acquire that waits, in process, for a denial that ends
// within the given time (a token due in a second, a slot released soon);
// a longer wait, such as a pause, is returned as the *DeniedError at once,
// for the caller to defer the work instead. A take that lost every race
// to other takers (ErrContended) tries again after a short, jittered
// pause, within the same time.
func (b *Budget) AcquireWait(ctx context.Context, gatewayID string, s Settings, n int, within time.Duration) (Grant, error) {
	deadline := b.now().Add(within)
	for {
		g, err := b.Acquire(ctx, gatewayID, s, n)
		until, denied := RetryAt(err)
		if errors.Is(err, ErrContended) {
			until = b.now().Add(contendedPause/2 + time.Duration(b.rand()*float64(contendedPause)))
			denied = !until.After(deadline)
		}
		if !denied || until.After(deadline) {
			return g, err
		}
		if err := b.opts.Sleep(ctx, max(until.Sub(b.now()), time.Millisecond)); err != nil {
			return Grant{}, fmt.Errorf("budget %s: wait: %w", gatewayID, err)
		}
	}
}

// contendedPause is about how long a taker that lost every race waits
// before it tries again: a few of the item's writes.
const contendedPause = 20 * time.Millisecond

// Release gives the Grant's slot back. A Grant without a slot, or whose
// lease already ended and went to another caller, releases nothing.
func (b *Budget) Release(ctx context.Context, g Grant) error {
	if g.Slot < 0 || g.lease == "" {
		return nil
	}
	u := b.newUpdate(g.GatewayID)
	slot, lease := u.n(slotPrefix+strconv.Itoa(g.Slot)), u.n(leasePrefix+strconv.Itoa(g.Slot))
	u.remove = append(u.remove, slot, lease)
	u.cond = append(u.cond, lease+" = "+u.v("lease", sv(g.lease)))
	if _, _, err := b.write(ctx, g.GatewayID, u); err != nil {
		return fmt.Errorf("release slot %d: %w", g.Slot, err)
	}
	return nil
}

// Done releases the Grant and reports the request's outcome (see Report).
func (b *Budget) Done(ctx context.Context, g Grant, o Outcome) error {
	return errors.Join(b.Release(ctx, g), b.Report(ctx, g.GatewayID, g.settings, o))
}

func (b *Budget) grant(ctx context.Context, gatewayID string, s Settings, n int, tokens, slot bool) (Grant, error) {
	if gatewayID == "" {
		return Grant{}, errors.New("budget: empty gateway id")
	}
	s = s.WithDefaults()
	rec := b.cached(gatewayID)
	// fresh: rec is what the item holds now (just read, or returned by a
	// write whose condition failed), so a denial can be told from it.
	fresh := false
	for range maxAttempts {
		now := b.now().UnixMilli()
		lim := effective(s, rec.learned)
		if n > lim.burst {
			return Grant{}, fmt.Errorf("budget %s: %d tokens, burst %d: %w", gatewayID, n, lim.burst, ErrTooMany)
		}
		if fresh && rec.probe && rec.pausedUntil <= now {
			g, r, ok, err := b.probe(ctx, gatewayID, s, now)
			if err != nil || ok {
				return g, err
			}
			rec = r
			continue
		}
		if fresh && rec.owes(now) && !rec.sameBucket(lim) {
			// The bucket is counted in another rate or burst (learned or
			// configured differently since): convert what is owed first.
			r, _, err := b.rescale(ctx, gatewayID, rec, lim, now)
			if err != nil {
				return Grant{}, err
			}
			rec = r
			continue
		}
		if fresh {
			if d := b.deny(gatewayID, rec, lim, n, slot, now); d != nil {
				return Grant{}, d
			}
		}

		u := b.newUpdate(gatewayID)
		pu, probe, nowV := u.n(attrPausedUntil), u.n(attrProbe), u.v("now", nv(now))
		u.cond = append(u.cond, "attribute_not_exists("+pu+") OR "+pu+" <= "+nowV, "attribute_not_exists("+probe+")")
		if tokens && n > 0 {
			full, inc := u.n(attrFullAt), int64(n)*lim.interval
			ivV, burstV := u.v("iv", nv(lim.interval)), u.v("burst", nv(int64(lim.burst)))
			if rec.owes(now) {
				// Busy bucket: DynamoDB adds atomically, so concurrent
				// takers do not race as long as there is room. The
				// bucket must be counted as this taker counts it.
				u.set = append(u.set, full+" = "+full+" + "+u.v("inc", nv(inc)))
				u.cond = append(u.cond, full+" BETWEEN "+nowV+" AND "+u.v("room", nv(now+int64(lim.burst-n)*lim.interval)),
					u.n(attrInterval)+" = "+ivV, u.n(attrBurst)+" = "+burstV)
			} else {
				// Idle bucket (full by now): it starts again from now, in
				// this taker's rate and burst.
				u.set = append(u.set, full+" = "+u.v("full", nv(now+inc)), u.n(attrInterval)+" = "+ivV, u.n(attrBurst)+" = "+burstV)
				u.cond = append(u.cond, "attribute_not_exists("+full+") OR "+full+" <= "+nowV)
			}
		}
		idx, expires := -1, time.Time{}
		var lease string
		if slot {
			free := rec.freeSlots(now, lim.ceiling)
			if len(free) == 0 {
				// What we saw is full; see what is there now before saying so.
				r, err := b.read(ctx, gatewayID)
				if err != nil {
					return Grant{}, err
				}
				rec, fresh = r, true
				continue
			}
			idx = free[int(b.rand()*float64(len(free)))%len(free)]
			expires = msTime(now).Add(b.opts.SlotLease)
			lease = newLease()
			sa, la := u.n(slotPrefix+strconv.Itoa(idx)), u.n(leasePrefix+strconv.Itoa(idx))
			u.set = append(u.set, sa+" = "+u.v("exp", nv(expires.UnixMilli())), la+" = "+u.v("lease", sv(lease)))
			u.cond = append(u.cond, "attribute_not_exists("+sa+") OR "+sa+" <= "+nowV)
		}
		r, ok, err := b.write(ctx, gatewayID, u)
		if err != nil {
			return Grant{}, err
		}
		if ok {
			taken := 0
			if tokens {
				taken = n
			}
			return Grant{GatewayID: gatewayID, Tokens: taken, Slot: idx, Expires: expires, lease: lease, settings: s}, nil
		}
		rec, fresh = r, true
	}
	return Grant{}, fmt.Errorf("budget %s: %d attempts: %w", gatewayID, maxAttempts, ErrContended)
}

// deny tells from the item as it is why a request must wait, or nil.
func (b *Budget) deny(gatewayID string, rec record, lim limits, n int, slot bool, now int64) *DeniedError {
	if rec.paused(now) {
		return &DeniedError{GatewayID: gatewayID, Err: ErrPaused, Until: msTime(rec.pausedUntil), Cause: rec.cause, Reason: rec.reason}
	}
	if n > 0 {
		if room := int64(lim.burst-n) * lim.interval; max(rec.fullAt, now) > now+room {
			return &DeniedError{GatewayID: gatewayID, Err: ErrNoTokens, Until: msTime(rec.fullAt - room)}
		}
	}
	if slot && len(rec.freeSlots(now, lim.ceiling)) == 0 {
		until := now + b.opts.SlotWait.Milliseconds()
		if end := rec.earliestSlotEnd(now); end > 0 && end < until {
			until = end
		}
		return &DeniedError{GatewayID: gatewayID, Err: ErrNoSlot, Until: msTime(until)}
	}
	return nil
}

// probe lets one caller through a pause that waits for a probe: the first
// to move the probe time forward by a probe lease wins; if it vanishes
// without reporting, the next caller after that lease probes.
func (b *Budget) probe(ctx context.Context, gatewayID string, s Settings, now int64) (Grant, record, bool, error) {
	u := b.newUpdate(gatewayID)
	pu, probe := u.n(attrPausedUntil), u.n(attrProbe)
	u.set = append(u.set, pu+" = "+u.v("until", nv(now+b.opts.ProbeLease.Milliseconds())))
	u.cond = append(u.cond, "attribute_exists("+probe+")", pu+" <= "+u.v("now", nv(now)))
	r, ok, err := b.write(ctx, gatewayID, u)
	if err != nil || !ok {
		return Grant{}, r, false, err
	}
	return Grant{GatewayID: gatewayID, Slot: -1, Probe: true, settings: s}, r, true, nil
}

// rescale converts the bucket to lim's interval and burst keeping the
// tokens owed: full_at − now is the debt in time, debt/interval in tokens.
// It returns the item as it is after, whether or not it won the race.
func (b *Budget) rescale(ctx context.Context, gatewayID string, rec record, lim limits, now int64) (record, bool, error) {
	u := b.newUpdate(gatewayID)
	full, iv, burst := u.n(attrFullAt), u.n(attrInterval), u.n(attrBurst)
	scaled := rec.fullAt
	if rec.interval > 0 && rec.fullAt > now {
		scaled = now + ((rec.fullAt-now)*lim.interval+rec.interval-1)/rec.interval
	}
	u.set = append(u.set, full+" = "+u.v("full", nv(scaled)), iv+" = "+u.v("iv", nv(lim.interval)), burst+" = "+u.v("burst", nv(int64(lim.burst))))
	u.cond = append(u.cond, full+" = "+u.v("was", nv(rec.fullAt)))
	if rec.interval > 0 {
		u.cond = append(u.cond, iv+" = "+u.v("wasiv", nv(rec.interval)), burst+" = "+u.v("wasburst", nv(int64(rec.burst))))
	} else {
		u.cond = append(u.cond, "attribute_not_exists("+iv+")")
	}
	r, ok, err := b.write(ctx, gatewayID, u)
	if err != nil {
		return record{}, false, fmt.Errorf("rescale: %w", err)
	}
	return r, ok, nil
}
