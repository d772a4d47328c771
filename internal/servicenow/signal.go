package servicenow

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what one answer said about the REST API rate limit rule that
// counted its request. An instance sends X-RateLimit-Limit,
// X-RateLimit-Reset and X-RateLimit-Rule on every answer to a request a
// rule applies to, served or refused; a request that no rule applies to,
// or that never reached the rule (refused by a full API queue), carries
// none of them.
type RateLimit struct {
	// Limit is X-RateLimit-Limit: the requests the rule allows per window
	// (an hour on ServiceNow) and per user. 0 when the answer had none.
	Limit int
	// Remaining is X-RateLimit-Remaining when the answer has it. ServiceNow
	// documents no such header, so on its answers Remaining is -1
	// (unknown), except on a rule's 429: nothing remains, 0. Whoever
	// needs a count keeps it against Limit and Reset.
	Remaining int
	// Reset is X-RateLimit-Reset, the UNIX time the rule's window ends;
	// zero when the answer had none.
	Reset time.Time
	// Rule is X-RateLimit-Rule, the sys_id of the rule that counted the
	// request.
	Rule string
}

// Known reports whether the answer carried any rate-limit header.
func (r RateLimit) Known() bool { return r.Limit > 0 || !r.Reset.IsZero() || r.Rule != "" }

// Outcome classifies an answer for flow control: whether the instance
// served the request, which of its limits refused it, or whether it
// failed.
type Outcome int

const (
	// OutcomeServed: the instance ran the request and answered it, with a
	// 2xx or with a 4xx that is about the request (404, 400, 409, …).
	OutcomeServed Outcome = iota
	// OutcomeRateLimited: a 429 from a rate limit rule: it carries
	// Retry-After or X-RateLimit-* headers. The user's hourly quota is
	// spent until the window resets; RetryAfter says when.
	OutcomeRateLimited
	// OutcomeQueueFull: a 429 without Retry-After or X-RateLimit-*: every
	// API thread of the node was busy and its queue full (an API
	// semaphore). It clears in seconds, as the node drains; RetryAfter is
	// zero and the caller backs off on its own.
	OutcomeQueueFull
	// OutcomeFailed: no usable answer: a 5xx (a 500 also when a request
	// waited too long in the node's queue), a timeout or a failed
	// connection (Status 0), or a 2xx that is not the API's answer (a
	// hibernating instance's HTML page, an error envelope, a transaction
	// cancelled by a quota rule).
	OutcomeFailed
	// OutcomeDenied: 401 or 403 (or the token endpoint refusing the
	// OAuth grant): the credentials or the integration user's rights are
	// wrong. No retry cures it.
	OutcomeDenied
)

var outcomeNames = [...]string{
	OutcomeServed:      "served",
	OutcomeRateLimited: "rate_limited",
	OutcomeQueueFull:   "queue_full",
	OutcomeFailed:      "failed",
	OutcomeDenied:      "denied",
}

// String returns a lower-case name fit for a metric dimension or a log
// field: served, rate_limited, queue_full, failed or denied.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Throttled reports whether the outcome is a 429, from a rate limit rule
// or from a full queue.
func (o Outcome) Throttled() bool { return o == OutcomeRateLimited || o == OutcomeQueueFull }

// Signal is what one HTTP exchange with the instance said about its
// limits, handed to the observers set with WithObserver. A call the client
// retries gives one Signal per request sent.
type Signal struct {
	// At is the client's clock (WithClock) when the answer came.
	At time.Time
	// Method and Table are the request's; Table is empty for the OAuth
	// token endpoint.
	Method string
	Table  string
	// Attempt counts the requests of this call, 1 for the first.
	Attempt int
	// Status is the HTTP status; 0 when there was no answer (a timeout or
	// failed connection).
	Status  int
	Outcome Outcome
	// Header is the answer's header (nil without an answer), for a
	// budget that reads Retry-After and X-RateLimit-* itself.
	Header http.Header
	// RateLimit holds the answer's X-RateLimit-* headers.
	RateLimit RateLimit
	// RetryAfter is how long the instance asked to wait before the next
	// request: Retry-After on a 429 or 503, else the time to
	// RateLimit.Reset when RateLimit.Remaining is 0 (a rule's 429, or an
	// answer that used the window's last request). Zero when it did not
	// say.
	RetryAfter time.Duration
	// Retrying: the client sends the call again after this answer (unless
	// the caller's context ends during the wait). False: the answer, or
	// its error, is what the caller gets.
	Retrying bool
	// Err is the error the exchange ended in, nil when it was usable; match
	// it with errors.Is, such as ErrNotAPI for a hibernating instance,
	// which only waking it cures.
	Err error
}

// Throttled reports whether the answer was a 429.
func (s Signal) Throttled() bool { return s.Outcome.Throttled() }

// RetryAt is the time the instance asked the next request to wait for
// (At + RetryAfter); zero when it did not ask.
func (s Signal) RetryAt() time.Time {
	if s.RetryAfter <= 0 {
		return time.Time{}
	}
	return s.At.Add(s.RetryAfter)
}

// WithObserver makes the client call f with the Signal of every HTTP
// answer it gets (and of every request that timed out or failed to
// connect), the OAuth token endpoint's included, once it has decided
// whether to send the call again and before it waits or returns. f runs
// on the goroutine of the call, so it must be quick and, since a Client
// serves concurrent calls, safe for concurrent use. Several observers are
// called in the order given.
func WithObserver(f func(Signal)) Option {
	return func(c *Client) {
		if f != nil {
			c.observers = append(c.observers, f)
		}
	}
}

// WithoutThrottleRetries makes a 429 end the call at once, whatever its
// Retry-After: the *Error says which limit refused it and how long to
// wait (RetryAfter), for a caller that pauses its own work (and the other
// callers of the same instance) rather than sleeping inside the call. By
// default the client waits out a 429 within its attempts and backoff cap.
// Other failures (5xx, timeouts) are retried as usual.
func WithoutThrottleRetries() Option { return func(c *Client) { c.noThrottleRetry = true } }

// Throttle errors, matched with errors.Is against the *Error of a 429:
// ErrThrottled matches every 429, ErrRateLimited a rate limit rule's and
// ErrQueueFull a full API queue's.
var (
	ErrThrottled = errors.New("servicenow throttled the request")
	// ErrRateLimited: the integration user's requests in the rule's window
	// (an hour) are spent; Error.RetryAfter is the time to the window's
	// end.
	ErrRateLimited = errors.New("servicenow rate limit rule exceeded")
	// ErrQueueFull: the node's API threads were busy and its queue full;
	// it clears in seconds.
	ErrQueueFull = errors.New("servicenow API queue full")
)

// rateLimitFrom reads the X-RateLimit-* headers of an answer with status.
func rateLimitFrom(status int, h http.Header) RateLimit {
	rl := RateLimit{Remaining: -1, Rule: strings.TrimSpace(h.Get("X-RateLimit-Rule"))}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil && n > 0 {
		rl.Limit = n
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining"))); err == nil && n >= 0 {
		rl.Remaining = n
	}
	if epoch, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && epoch > 0 && epoch < 1<<40 {
		rl.Reset = time.Unix(epoch, 0).UTC()
	}
	if status == http.StatusTooManyRequests && rl.Remaining < 0 && rl.Known() {
		// A rule refused the request: its window has nothing left.
		rl.Remaining = 0
	}
	return rl
}

// outcomeOf classifies an answer with a status and headers.
func outcomeOf(status int, h http.Header, tokenEndpoint bool) Outcome {
	switch {
	case status == http.StatusTooManyRequests:
		// An instance applies its rate limit rules to a request being
		// served, which a request refused by a full queue never is: only
		// a rule's 429 names the rule or a time.
		if strings.TrimSpace(h.Get("Retry-After")) != "" || rateLimitFrom(0, h).Known() {
			return OutcomeRateLimited
		}
		return OutcomeQueueFull
	case status >= 500:
		return OutcomeFailed
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return OutcomeDenied
	case tokenEndpoint && status == http.StatusBadRequest:
		// The token endpoint answers a refused grant with 400.
		return OutcomeDenied
	}
	return OutcomeServed
}

// failureOutcome classifies a request that got no usable answer: false
// when nothing was learnt about the instance (the caller cancelled, the
// request was never sent).
func failureOutcome(ctx context.Context, err error) (Outcome, bool) {
	if errors.Is(err, context.Canceled) || (ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return 0, false
	}
	var te *transportError
	var ae *AnswerError
	switch {
	case errors.As(err, &ae), errors.As(err, &te), errors.Is(err, context.DeadlineExceeded):
		return OutcomeFailed, true
	case errors.Is(err, ErrBadResponse):
		// Answered, but beyond what the client reads.
		return OutcomeServed, true
	}
	return 0, false
}

// observe hands sig to the observers.
func (c *Client) observe(sig Signal) {
	for _, f := range c.observers {
		f(sig)
	}
}
