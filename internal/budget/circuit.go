package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cause says why a gateway is paused; it is the dimension of the pause
// metric and what `gateway show` prints next to the reason.
type Cause string

// Causes of a pause.
const (
	// CauseRateLimited: the instance said "later" (429 with Retry-After or
	// X-RateLimit-Reset, or X-RateLimit-Remaining 0).
	CauseRateLimited Cause = "rate_limited"
	// CauseOverloaded: 429 without Retry-After, the node's API semaphore
	// queue is full.
	CauseOverloaded Cause = "overloaded"
	// CauseUnavailable: repeated 5xx or timeouts.
	CauseUnavailable Cause = "unavailable"
	// CauseAuth: 401 or 403, the gateway's credentials or roles are wrong;
	// the pause lasts until a probe succeeds.
	CauseAuth Cause = "auth"
	// CauseOperator: paused by hand.
	CauseOperator Cause = "operator"
)

// Backoff is how Trip pauses for consecutive failures of one cause: from
// the Threshold-th failure on, for Base doubled per further failure, at
// most Cap, with jitter taking the pause anywhere in [d/2, d].
type Backoff struct {
	Threshold int
	Base, Cap time.Duration
	// Probe: the pause lasts until a probe succeeds; its end is the time of
	// the next probe.
	Probe bool
}

// Backoffs by cause. A single 5xx is noise the client's own retry covers,
// so an outage is recognised on the third in a row; a full semaphore queue
// and an auth failure are clear at once. Auth probes back off to half an
// hour: every failed login counts towards locking the integration user.
var Backoffs = map[Cause]Backoff{
	CauseUnavailable: {Threshold: 3, Base: 10 * time.Second, Cap: 10 * time.Minute},
	CauseOverloaded:  {Threshold: 1, Base: 2 * time.Second, Cap: time.Minute},
	CauseAuth:        {Threshold: 1, Base: time.Minute, Cap: 30 * time.Minute, Probe: true},
}

// Delay is the pause before jitter after the n-th consecutive failure, 0
// below the threshold.
func (p Backoff) Delay(n int) time.Duration {
	if n < p.Threshold || p.Threshold < 1 {
		return 0
	}
	d := p.Base
	for i := p.Threshold; i < n && d < p.Cap; i++ {
		d *= 2
	}
	return min(d, p.Cap)
}

// Pause opens the gateway's circuit until the given time, with a cause and
// a human-readable reason. A pause only ever grows: if the gateway is
// already paused until later, nothing changes. Use it for a 429's
// Retry-After (Report does) or an operator's pause.
func (b *Budget) Pause(ctx context.Context, gatewayID string, until time.Time, cause Cause, reason string) error {
	_, err := b.pause(ctx, gatewayID, until, cause, reason, false)
	return err
}

// pause extends the pause to until; probe marks it as waiting for a
// probe, even when an existing pause already lasts longer.
func (b *Budget) pause(ctx context.Context, gatewayID string, until time.Time, cause Cause, reason string, probe bool) (record, error) {
	until = minTime(until, b.now().Add(b.opts.MaxPause))
	now := b.now().UnixMilli()
	u := b.newUpdate(gatewayID)
	pu, untilV := u.n(attrPausedUntil), u.v("until", nv(until.UnixMilli()))
	u.set = append(u.set, pu+" = "+untilV, u.n(attrPauseCause)+" = "+u.v("cause", sv(string(cause))),
		u.n(attrPauseReason)+" = "+u.v("reason", sv(reason)), u.n(attrPausedAt)+" = "+u.v("at", nv(now)))
	if probe {
		u.set = append(u.set, u.n(attrProbe)+" = "+u.v("probe", nv(1)))
	}
	u.cond = append(u.cond, "attribute_not_exists("+pu+") OR "+pu+" < "+untilV)
	r, ok, err := b.write(ctx, gatewayID, u)
	if err != nil {
		return record{}, fmt.Errorf("pause: %w", err)
	}
	if ok || !probe || r.probe {
		return r, nil
	}
	// Paused for longer already, but now it also needs a probe to end.
	u = b.newUpdate(gatewayID)
	u.set = append(u.set, u.n(attrProbe)+" = "+u.v("probe", nv(1)), u.n(attrPauseCause)+" = "+u.v("cause", sv(string(cause))),
		u.n(attrPauseReason)+" = "+u.v("reason", sv(reason)))
	if r, _, err = b.write(ctx, gatewayID, u); err != nil {
		return record{}, fmt.Errorf("pause: %w", err)
	}
	return r, nil
}

// ProbeDue reports whether, as this process last saw the gateway's budget,
// the gateway waits for a probe (401/403) and the probe's time has come. It
// reads nothing: a caller about to build the probe's client uses it to
// read the credentials afresh, in case they were fixed meanwhile.
func (b *Budget) ProbeDue(gatewayID string) bool {
	r := b.cached(gatewayID)
	return r.probe && r.pausedUntil <= b.now().UnixMilli()
}

// Resume closes the gateway's circuit now, whatever its cause, and resets
// the failure count: an operator's "the instance is fixed", or a probe
// that succeeded.
func (b *Budget) Resume(ctx context.Context, gatewayID string) error {
	u := b.newUpdate(gatewayID)
	u.set = append(u.set, u.n(attrFailures)+" = "+u.v("zero", nv(0)))
	u.remove = append(u.remove, u.n(attrPausedUntil), u.n(attrPauseCause), u.n(attrPauseReason), u.n(attrPausedAt), u.n(attrProbe))
	if _, _, err := b.write(ctx, gatewayID, u); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// Trip counts one more consecutive failure of the given cause (5xx,
// timeout, 429 without Retry-After, 401/403) and, from the cause's
// threshold on, pauses the gateway for the cause's exponential, jittered
// backoff (see Backoffs). It returns the end of the pause, zero when the
// failure did not pause. Succeed, or a Resume, resets the count.
func (b *Budget) Trip(ctx context.Context, gatewayID string, cause Cause, reason string) (time.Time, error) {
	policy, ok := Backoffs[cause]
	if !ok {
		return time.Time{}, fmt.Errorf("budget %s: trip: no backoff for cause %q", gatewayID, cause)
	}
	u := b.newUpdate(gatewayID)
	f := u.n(attrFailures)
	u.set = append(u.set, f+" = if_not_exists("+f+", "+u.v("zero", nv(0))+") + "+u.v("one", nv(1)))
	r, _, err := b.write(ctx, gatewayID, u)
	if err != nil {
		return time.Time{}, fmt.Errorf("trip: %w", err)
	}
	d := policy.Delay(r.failures)
	if d == 0 {
		return time.Time{}, nil
	}
	d = d/2 + time.Duration(b.rand()*float64(d/2))
	until := b.now().Add(d).Truncate(time.Millisecond)
	reason = fmt.Sprintf("%s (%d in a row)", reason, r.failures)
	if _, err := b.pause(ctx, gatewayID, until, cause, reason, policy.Probe); err != nil {
		return time.Time{}, err
	}
	return until, nil
}

// Succeed records that a request got an answer: the failure count starts
// again, and a pause waiting for a probe ends. It writes only when the
// item it last saw has something to reset.
func (b *Budget) Succeed(ctx context.Context, gatewayID string) error {
	rec := b.cached(gatewayID)
	switch {
	case rec.probe:
		u := b.newUpdate(gatewayID)
		u.set = append(u.set, u.n(attrFailures)+" = "+u.v("zero", nv(0)))
		u.remove = append(u.remove, u.n(attrPausedUntil), u.n(attrPauseCause), u.n(attrPauseReason), u.n(attrPausedAt), u.n(attrProbe))
		u.cond = append(u.cond, "attribute_exists("+u.n(attrProbe)+")")
		if _, _, err := b.write(ctx, gatewayID, u); err != nil {
			return fmt.Errorf("succeed: %w", err)
		}
	case rec.failures > 0:
		u := b.newUpdate(gatewayID)
		f, zero := u.n(attrFailures), u.v("zero", nv(0))
		u.set = append(u.set, f+" = "+zero)
		u.cond = append(u.cond, f+" > "+zero)
		if _, _, err := b.write(ctx, gatewayID, u); err != nil {
			return fmt.Errorf("succeed: %w", err)
		}
	}
	return nil
}

// RateLimit is what an instance says about its rate-limit rule in the
// X-RateLimit-* headers of an answer.
type RateLimit struct {
	// Limit is the rule's requests per hour; 0 when not sent.
	Limit int
	// Remaining is what is left of it until Reset; -1 when not sent.
	Remaining int
	// Reset is when the rule's count starts again; zero when not sent.
	Reset time.Time
}

// ParseRateLimit reads X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset (a UNIX time) from h; ok is false when none is there.
func ParseRateLimit(h http.Header) (RateLimit, bool) {
	rl := RateLimit{Remaining: -1}
	found := false
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil && n > 0 {
		rl.Limit, found = n, true
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining"))); err == nil && n >= 0 {
		rl.Remaining, found = n, true
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && n > 0 {
		rl.Reset, found = time.Unix(n, 0), true
	}
	return rl, found
}

// Observe takes in what the instance said about its rate limit. A Limit
// different from the one learned before is stored, and the bucket's rate
// follows it down (never above the configured rate; see the package doc),
// keeping the tokens owed. A Remaining below the tokens left takes the
// surplus away; Remaining 0 pauses the gateway until Reset. It writes
// nothing when nothing changes.
func (b *Budget) Observe(ctx context.Context, gatewayID string, s Settings, rl RateLimit) error {
	s = s.WithDefaults()
	if rl.Limit > 0 {
		if err := b.learn(ctx, gatewayID, s, rl.Limit); err != nil {
			return err
		}
	}
	now := b.now()
	switch {
	case rl.Remaining == 0 && rl.Reset.After(now):
		reason := "X-RateLimit-Remaining 0 until " + rl.Reset.UTC().Format(time.RFC3339)
		return b.Pause(ctx, gatewayID, rl.Reset, CauseRateLimited, reason)
	case rl.Remaining >= 0:
		return b.clamp(ctx, gatewayID, s, rl.Remaining)
	}
	return nil
}

// clamp takes away the tokens above remaining: tokens ≤ remaining ⇔
// full_at ≥ now + (burst − remaining)·interval.
func (b *Budget) clamp(ctx context.Context, gatewayID string, s Settings, remaining int) error {
	rec := b.cached(gatewayID)
	for range maxAttempts {
		now := b.now().UnixMilli()
		lim := effective(s, rec.learned)
		if remaining >= lim.burst {
			return nil
		}
		floor := now + int64(lim.burst-remaining)*lim.interval
		if rec.exists && rec.owes(now) && !rec.sameBucket(lim) {
			r, _, err := b.rescale(ctx, gatewayID, rec, lim, now)
			if err != nil {
				return fmt.Errorf("observe remaining: %w", err)
			}
			rec = r
			continue
		}
		u := b.newUpdate(gatewayID)
		full, floorV, nowV := u.n(attrFullAt), u.v("floor", nv(floor)), u.v("now", nv(now))
		iv, burst := u.n(attrInterval), u.n(attrBurst)
		ivV, burstV := u.v("iv", nv(lim.interval)), u.v("burst", nv(int64(lim.burst)))
		u.set = append(u.set, full+" = "+floorV, iv+" = "+ivV, burst+" = "+burstV)
		u.cond = append(u.cond, "attribute_not_exists("+full+") OR "+full+" < "+floorV,
			"attribute_not_exists("+iv+") OR "+full+" <= "+nowV+" OR ("+iv+" = "+ivV+" AND "+burst+" = "+burstV+")")
		r, ok, err := b.write(ctx, gatewayID, u)
		if err != nil {
			return fmt.Errorf("observe remaining: %w", err)
		}
		if ok || r.fullAt >= floor && r.sameBucket(lim) {
			return nil
		}
		rec = r
	}
	return fmt.Errorf("budget %s: observe remaining: %d attempts: %w", gatewayID, maxAttempts, ErrContended)
}

// learn stores a new X-RateLimit-Limit and converts the bucket to the rate
// it implies (see rescale). A taker that still counts in the old rate
// finds its condition fail, reads the item and follows.
func (b *Budget) learn(ctx context.Context, gatewayID string, s Settings, limit int) error {
	rec := b.cached(gatewayID)
	for range maxAttempts {
		now := b.now().UnixMilli()
		if rec.exists && rec.learned == limit {
			if lim := effective(s, limit); rec.owes(now) && !rec.sameBucket(lim) {
				r, ok, err := b.rescale(ctx, gatewayID, rec, lim, now)
				if err != nil || ok {
					return err
				}
				rec = r
				continue
			}
			return nil
		}
		u := b.newUpdate(gatewayID)
		l := u.n(attrLearned)
		u.set = append(u.set, l+" = "+u.v("limit", nv(int64(limit))), u.n(attrLearnedAt)+" = "+u.v("at", nv(now)))
		if rec.learned > 0 {
			u.cond = append(u.cond, l+" = "+u.v("was", nv(int64(rec.learned))))
		} else {
			u.cond = append(u.cond, "attribute_not_exists("+l+")")
		}
		r, _, err := b.write(ctx, gatewayID, u)
		if err != nil {
			return fmt.Errorf("observe limit: %w", err)
		}
		rec = r
	}
	return fmt.Errorf("budget %s: observe limit: %d attempts: %w", gatewayID, maxAttempts, ErrContended)
}

// Outcome is what became of one request to the instance.
type Outcome struct {
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Header is the answer's header (Retry-After, X-RateLimit-*), if any.
	Header http.Header
	// Err is the transport error or timeout when no answer came.
	Err error
}

// Report takes in the outcome of a request, the one call a caller makes
// after each request (Done does it with the release):
//
//   - X-RateLimit-* headers go to Observe;
//   - 429 with Retry-After (seconds or a date) or X-RateLimit-Reset pauses
//     until then (CauseRateLimited); without either it is a full semaphore
//     queue (Trip, CauseOverloaded);
//   - 401 and 403 trip CauseAuth: paused until a probe succeeds;
//   - 5xx, a timeout or a failed connection trip CauseUnavailable;
//   - any other answer (2xx, 404, 400…) means the instance serves us:
//     Succeed. A request cancelled by the caller itself counts as nothing.
//
// A 200 whose body is not what was asked (a hibernating instance's HTML
// page) is the caller's to recognise: report it with Status 503.
func (b *Budget) Report(ctx context.Context, gatewayID string, s Settings, o Outcome) error {
	var errs []error
	if rl, ok := ParseRateLimit(o.Header); ok {
		errs = append(errs, b.Observe(ctx, gatewayID, s, rl))
	}
	now := b.now()
	var err error
	switch {
	case o.Status == 0 && o.Err == nil, o.Status == 0 && errors.Is(o.Err, context.Canceled):
	case o.Status == http.StatusTooManyRequests:
		if until, ok := retryAfter(o.Header, now); ok {
			err = b.Pause(ctx, gatewayID, until, CauseRateLimited, "429 until "+until.UTC().Format(time.RFC3339))
		} else {
			_, err = b.Trip(ctx, gatewayID, CauseOverloaded, "429 without Retry-After")
		}
	case o.Status == http.StatusUnauthorized || o.Status == http.StatusForbidden:
		_, err = b.Trip(ctx, gatewayID, CauseAuth, strconv.Itoa(o.Status)+" "+http.StatusText(o.Status))
	case o.Status >= 500:
		_, err = b.Trip(ctx, gatewayID, CauseUnavailable, strconv.Itoa(o.Status)+" "+http.StatusText(o.Status))
	case o.Status == 0:
		_, err = b.Trip(ctx, gatewayID, CauseUnavailable, "no answer")
	default:
		err = b.Succeed(ctx, gatewayID)
	}
	return errors.Join(append(errs, err)...)
}

// maxRetryAfter bounds what a 429 can pause for: a day, the retry horizon.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads when a 429 says to come back: Retry-After in seconds or
// as an HTTP date, else X-RateLimit-Reset.
func retryAfter(h http.Header, now time.Time) (time.Time, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			secs = min(math.Ceil(secs), maxRetryAfter.Seconds())
			return now.Add(time.Duration(secs) * time.Second), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return minTime(t, now.Add(maxRetryAfter)), true
		}
	}
	if rl, ok := ParseRateLimit(h); ok && rl.Reset.After(now) {
		return minTime(rl.Reset, now.Add(maxRetryAfter)), true
	}
	return time.Time{}, false
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
