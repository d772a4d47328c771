package budget

import (
	"context"
	"fmt"
	"time"
)

// attrTurnAt is the last turn handed out by Book (epoch milliseconds).
const attrTurnAt = "turn_at"

// Book hands a request denied for want of tokens its turn: the time at
// which a token will be there for it if every request denied before it
// comes back at its own turn. Turns are one token interval apart and never
// earlier than from (the Until of the denial), so a backlog deferred
// through its queue's visibility comes back spread over the time the rate
// needs to serve it, instead of all at once when the next token is due,
// where all but one would be denied again.
//
// A turn is a hint, not a reservation: nothing is taken, and a request
// that does not come back (a reconciler run, a message that went stale)
// leaves its token in the bucket for whoever comes next. Concurrent
// bookers do not race: each adds one interval to the same number.
func (b *Budget) Book(ctx context.Context, gatewayID string, s Settings, from time.Time) (time.Time, error) {
	rec := b.cached(gatewayID)
	lim := effective(s.WithDefaults(), rec.learned)
	base := from.UnixMilli()
	for range maxAttempts {
		u := b.newUpdate(gatewayID)
		turn, baseV := u.n(attrTurnAt), u.v("base", nv(base))
		if rec.turnAt >= base {
			// A queue of turns is forming: take the next one.
			u.set = append(u.set, turn+" = "+turn+" + "+u.v("iv", nv(lim.interval)))
			u.cond = append(u.cond, turn+" >= "+baseV)
		} else {
			// The turns handed out so far are all before ours: start anew.
			u.set = append(u.set, turn+" = "+baseV)
			u.cond = append(u.cond, "attribute_not_exists("+turn+") OR "+turn+" < "+baseV)
		}
		r, ok, err := b.write(ctx, gatewayID, u)
		if err != nil {
			return time.Time{}, fmt.Errorf("budget %s: book a turn: %w", gatewayID, err)
		}
		if ok {
			return msTime(r.turnAt), nil
		}
		rec = r
	}
	return time.Time{}, fmt.Errorf("budget %s: book a turn: %d attempts: %w", gatewayID, maxAttempts, ErrContended)
}
