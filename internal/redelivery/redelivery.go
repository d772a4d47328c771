// Package redelivery paces the redelivery of SQS messages that failed, for the
// consumers of the intake and results queues (the processor and the
// writer): a message reported as a batch item failure comes back when its
// visibility timeout ends, and this package sets that timeout
// (ChangeMessageVisibility) instead of leaving it at the queue's.
//
//   - A transient failure waits a capped exponential backoff with jitter:
//     Base·2^(n−1) after the n-th receive, at most Cap, each wait drawn
//     from its upper half ("equal jitter"), so retries of messages that
//     failed together spread out and the shortest wait is known. When the
//     other side said how long to wait (ServiceNow's Retry-After or
//     X-RateLimit-Reset), the wait is at least that, plus a little jitter
//     so that a throttled backlog does not come back in one burst. No
//     wait exceeds MaxWait (SQS allows 12 hours).
//   - A message older than the retry horizon (its SentTimestamp; 24 hours
//     by default) that fails again is given up: its visibility is set to
//     0, and every later receive reports it failed at once, without work,
//     until the queue's redrive policy moves it to the dead-letter queue
//     on the receive past MaxReceiveCount. A poisoned message (one that no
//     retry can cure) takes the same path at once. The redrive policy is
//     the only way into a dead-letter queue, so a dead-lettered message
//     keeps its body, its attributes and its receive count.
//
// The queues' MaxReceiveCount (package schema) is computed from the
// policy: the most receives the backoff can spend within the horizon, at
// the short end of every jitter, plus a margin for receives the backoff
// does not pace (a function that timed out, a visibility change that
// failed). Since a wait is never shorter than the backoff, the count can
// only be reached after the horizon, or by a message given up.
package redelivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/schema"
)

// MaxVisibility is SQS's ceiling on a visibility timeout.
const MaxVisibility = 12 * time.Hour

// Policy says how long a failed message waits and when it is given up.
// Zero fields take the defaults.
type Policy struct {
	// Base is the first wait; it doubles with each receive. Default
	// schema.RetryBase.
	Base time.Duration
	// Cap bounds the backoff (not a Retry-After). Default schema.RetryCap.
	Cap time.Duration
	// MaxWait bounds every wait, a Retry-After included. Default (and at
	// most) MaxVisibility.
	MaxWait time.Duration
	// Horizon is the age past which a message that fails is given up.
	// Default schema.RetryHorizon.
	Horizon time.Duration
	// Jitter returns a number in [0, n); nil is math/rand/v2's Int64N.
	Jitter func(n int64) int64
}

// WithDefaults returns p with its zero fields set.
func (p Policy) WithDefaults() Policy {
	if p.Base <= 0 {
		p.Base = schema.RetryBase
	}
	if p.Cap < p.Base {
		p.Cap = max(schema.RetryCap, p.Base)
	}
	if p.MaxWait <= 0 || p.MaxWait > MaxVisibility {
		p.MaxWait = MaxVisibility
	}
	if p.Horizon <= 0 {
		p.Horizon = schema.RetryHorizon
	}
	if p.Jitter == nil {
		p.Jitter = rand.Int64N
	}
	return p
}

// Backoff is the wait before the next delivery of a message that failed on
// its receive-th receive, before jitter: Base·2^(receive−1), at most Cap.
func (p Policy) Backoff(receive int) time.Duration {
	p = p.WithDefaults()
	n := min(max(receive-1, 0), 40)
	w := p.Base << n
	if w <= 0 || w > p.Cap || w>>n != p.Base {
		return p.Cap
	}
	return w
}

// Wait is how long a message that failed on its receive-th receive stays
// hidden: the backoff drawn from its upper half, at least retryAfter (zero:
// the other side did not say) plus up to Base/2 of jitter, at most MaxWait.
func (p Policy) Wait(receive int, retryAfter time.Duration) time.Duration {
	p = p.WithDefaults()
	b := p.Backoff(receive)
	w := b/2 + time.Duration(p.Jitter(int64(b/2)+1))
	if retryAfter > 0 {
		w = max(w, retryAfter+time.Duration(p.Jitter(int64(p.Base/2)+1)))
	}
	return min(w, p.MaxWait)
}

// Age is how long ago the message was first sent to the queue (its
// SentTimestamp, else its ApproximateFirstReceiveTimestamp); ok is false
// when the record carries neither.
func Age(rec events.SQSMessage, now time.Time) (age time.Duration, ok bool) {
	for _, a := range []string{"SentTimestamp", "ApproximateFirstReceiveTimestamp"} {
		ms, err := strconv.ParseInt(rec.Attributes[a], 10, 64)
		if err == nil && ms > 0 {
			return now.Sub(time.UnixMilli(ms)), true
		}
	}
	return 0, false
}

// Receives is the record's ApproximateReceiveCount, 1 when it is missing.
func Receives(rec events.SQSMessage) int {
	n, err := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Visibility is what pacing needs of an SQS client (sqs.Client).
type Visibility interface {
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

var _ Visibility = (*sqs.Client)(nil)

// Queue paces the failed messages of one queue. Without an SQS client or
// a queue URL it changes nothing: messages then come back after the
// queue's visibility timeout, and are given up by its redrive policy.
type Queue struct {
	SQS    Visibility
	URL    string
	Policy Policy
	Now    func() time.Time
	Log    *slog.Logger
}

// Next is what became of a failed message.
type Next struct {
	// Wait is the visibility set: the message's next delivery is due
	// after it. Zero with GiveUp.
	Wait time.Duration
	// GiveUp: on its way to the dead-letter queue (past the horizon, or
	// poison).
	GiveUp bool
	// Set: the visibility was changed; false when there was no queue to
	// change it on or the change failed (the queue's visibility timeout
	// then paces the message).
	Set bool
}

// LogAttrs are what a message's log line says of its redelivery:
// dead_letter when it is on its way to the DLQ, retry_in_s when its
// visibility was set; none otherwise.
func (n Next) LogAttrs() []slog.Attr {
	switch {
	case n.GiveUp:
		return []slog.Attr{slog.Bool("dead_letter", true)}
	case n.Set:
		return []slog.Attr{slog.Float64("retry_in_s", n.Wait.Seconds())}
	}
	return nil
}

func (q *Queue) now() time.Time {
	if q.Now == nil {
		return time.Now()
	}
	return q.Now()
}

// Expired reports whether a message is past the horizon and was received
// before: it failed then, so it is to be reported failed again, without
// work, on its way to the dead-letter queue (GiveUp). A message is always
// tried at least once.
func (q *Queue) Expired(rec events.SQSMessage) bool {
	age, ok := Age(rec, q.now())
	return ok && Receives(rec) > 1 && age >= q.Policy.WithDefaults().Horizon
}

// Retry paces a message that failed transiently and is reported as a batch
// item failure: hidden for Policy.Wait, or, past the horizon, given up.
// retryAfter is how long the other side asked to wait (zero: it did not
// say).
func (q *Queue) Retry(ctx context.Context, rec events.SQSMessage, retryAfter time.Duration) Next {
	if age, ok := Age(rec, q.now()); ok && age >= q.Policy.WithDefaults().Horizon {
		return q.GiveUp(ctx, rec)
	}
	n := Next{Wait: q.Policy.Wait(Receives(rec), retryAfter)}
	n.Set = q.set(ctx, rec, n.Wait)
	return n
}

// GiveUp sends a message reported as a batch item failure on its way to
// the dead-letter queue: visible again at once, so the receives left
// before the redrive policy's maximum pass quickly. Each of them is to be
// reported failed without work (Expired, or poison again).
func (q *Queue) GiveUp(ctx context.Context, rec events.SQSMessage) Next {
	return Next{GiveUp: true, Set: q.set(ctx, rec, 0)}
}

func (q *Queue) set(ctx context.Context, rec events.SQSMessage, wait time.Duration) bool {
	if q.SQS == nil || q.URL == "" || rec.ReceiptHandle == "" {
		return false
	}
	// Whole seconds, rounded up: never sooner than asked.
	secs := int32((wait + time.Second - 1) / time.Second)
	_, err := q.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.URL), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: secs,
	})
	if err != nil {
		if q.Log != nil {
			q.Log.WarnContext(ctx, "change visibility of a failed message; the queue's visibility timeout paces it",
				"message_id", rec.MessageId, "visibility_s", secs, "error", err.Error())
		}
		return false
	}
	return true
}

// Settings of the policy, read by the processor and the writer at start
// (PolicyFromEnv). EnvHorizon may shorten the retry horizon; EnvBase and
// EnvCap change the backoff, for a system that runs in compressed time
// (the end-to-end tests). Go durations ("6h", "90m").
const (
	EnvHorizon = "SNOWGATE_RETRY_HORIZON"
	EnvBase    = "SNOWGATE_RETRY_BASE"
	EnvCap     = "SNOWGATE_RETRY_CAP"
)

// PolicyFromEnv reads EnvHorizon, EnvBase and EnvCap, schema's constants
// when unset. A policy is refused when the receives it may spend within its
// horizon (schema.RetryReceives, plus schema.UnpacedReceives) exceed the
// queues' redrive count, which is computed from schema's constants: the
// count would dead-letter before the horizon. With the default backoff,
// that is a horizon past schema.RetryHorizon.
func PolicyFromEnv(getenv func(string) string) (Policy, error) {
	p := Policy{Horizon: schema.RetryHorizon, Base: schema.RetryBase, Cap: schema.RetryCap}
	var errs []error
	// A system whose budget pauses are capped (schema.EnvMaxPause, compressed
	// time) waits no longer for a Retry-After than its pauses last: the
	// message comes back when its gateway does.
	for _, s := range []struct {
		name string
		d    *time.Duration
	}{{EnvHorizon, &p.Horizon}, {EnvBase, &p.Base}, {EnvCap, &p.Cap}, {schema.EnvMaxPause, &p.MaxWait}} {
		v := strings.TrimSpace(getenv(s.name))
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration above 0", s.name, v))
			continue
		}
		*s.d = d
	}
	if len(errs) > 0 {
		return Policy{}, errors.Join(errs...)
	}
	if p.Cap < p.Base {
		return Policy{}, fmt.Errorf("%s=%s is below %s=%s", EnvCap, p.Cap, EnvBase, p.Base)
	}
	if p.MaxWait > 0 && p.MaxWait < p.Cap {
		// The backoff itself is never cut: the redrive count is computed
		// from it.
		p.MaxWait = p.Cap
	}
	if n := schema.RetryReceives(p.Horizon, p.Base, p.Cap) + schema.UnpacedReceives; n > schema.ConsumerMaxReceiveCount {
		return Policy{}, fmt.Errorf("retry horizon %s with a backoff from %s to %s may take %d receives, more than the queues' redrive count of %d: shorten %s or lengthen the backoff",
			p.Horizon, p.Base, p.Cap, n, schema.ConsumerMaxReceiveCount, EnvHorizon)
	}
	return p, nil
}
