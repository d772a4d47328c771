// Package pipeline is the processor: it takes intake messages (a gateway, a
// table and a sys_id), fetches the record from ServiceNow and runs it
// through its gateway's pipeline: cheap duplicate check → fetch → mirror →
// claim → scope → the lifecycle decision (with dedup) → job events on the
// dispatch queue → acknowledgement. Every outcome is stored on the ticket
// item (package state).
//
// # One job per ticket
//
// A ticket has at most one open job (state.Job on the ticket); the period
// from a job's creation to its end is an episode. Each claimed version is
// decided against the ticket's history:
//
//   - No open job, in scope: in automatic mode, a ticket that never had a
//     job, or whose job ended and that has been out of scope since (a
//     resolved incident reopened by a person, a change request
//     re-approved, a deferred change now due), gets job.created with a new
//     episode and the reason (queue.Reason*). In semi-automatic mode the
//     ticket is awaiting_mention until a comment or work note mentions the
//     gateway's token (registry.Gateway.MentionToken, a whole token, any
//     case); that entry creates the job and is its message. In both modes
//     a mention on a ticket whose job ended starts a new episode. The job
//     id derives from the ticket and the episode, so every attempt at
//     creating it has the same id; the job is indexed (state.IndexJob)
//     before its job.created is sent, so no result can outrun it. A
//     ticket that expired by its TTL and came back continues the episodes
//     of the jobs indexed for it (firstEpisode), so ids are never reused.
//   - Open job, still in scope: mirrored fields that changed are one
//     job.updated (changed_fields with ServiceNow's names, and the new
//     snapshot): a change request moving from Scheduled to Implement, a
//     priority or description edit are news for the job, never a new one.
//     Each new journal entry mentioning the token is a job.follow_up.
//   - Open job, and the ticket left the scope (an incident Resolved,
//     Closed or Canceled or inactive; a change request closed, in Review or
//     out of Scheduled/Implement, its approval withdrawn or its window
//     over; outside the gateway's groups or environments): job.cancelled
//     with the reason, and the job's state is cancelled.
//   - Otherwise the decision is out_of_scope, deferred, expired, or
//     unchanged (nothing new for the ticket), without an event.
//
// Every event carries schema_version, a derived event_id (queue.EventIDFor:
// a job.created, a job.cancelled and a follow-up are once per episode, a
// job.updated once per version), the job id, its sequence (1, 2, … per
// job), the episode, the gateway's id, name and org, and the snapshot.
// The engine drops an event id it has seen.
//
// The journal (sys_journal_field, newer than Ticket.JournalSeenAt) is read
// only where an entry can matter: an open job, a ticket awaiting a
// mention, a deduplicated ticket (which "@2501 unlink-ticket" gives a job
// of its own), a ticket whose job ended while in scope. A new job in
// automatic mode starts its journal at its own version. Entries of the
// gateway's integration user are ignored, so our own notes never loop.
//
// # Dedup
//
// An incident about to get its first job claims its fingerprint (short
// description and CI) for the gateway's window; when another incident
// holds it, it is deduplicated, linked to that one, and gets a work note
// naming it (registry.Gateway.DedupNote). Handle claims a batch's
// fingerprints one at a time in sys_created_on order, so within a batch
// the earliest-created incident is the primary.
//
// # Exactly once, and our own writes
//
// A record version is decided at most once, and a change is never lost:
//
//   - Cheap duplicates first: a message carrying a sys_mod_count (the
//     Business Rule sends it; so does the reconciler's watermark pass) at
//     or below the ticket's decided version is stale after one projected
//     GetItem, without a ServiceNow call: a double rule firing, the echo
//     of our own acknowledgement or of the writer's writes (both recorded
//     as decided), reconciler overlap. The decided version moves only when
//     a decision completes, so an attempt that failed after its claim is
//     never taken for a duplicate. Messages for one record in one batch
//     are processed once (the one with the highest hint, or without one);
//     the others are stale at no cost.
//   - Otherwise the processor fetches the record and works on what it
//     reads, so a late or duplicated message can only repeat work on the
//     current version, never resurrect an old one.
//   - Before deciding, it claims the version with one conditional write on
//     the ticket (state.Store.Claim): a higher sys_mod_count with a new
//     content hash, or with the same hash where the journal matters (a
//     comment bumps sys_mod_count without changing a mirrored field), or a
//     claim that was released or has expired. Concurrent deliveries of one
//     record (webhook duplicates, reconciliation overlap, SQS redelivery)
//     see stale, unchanged or busy; only the claimant goes on.
//   - The claimant sends the events, writes the acknowledgement (one work
//     note, on job.created, when the gateway writes back), then stores the
//     decision and releases the claim in one conditional write. When the
//     note was the record's only change, the ticket records the version it
//     produced, so its echo is stale; the writer records its own writes
//     likewise, and an echo that still gets through finds only our own
//     entries in the journal: unchanged. A transient failure releases the
//     claim at once, keeping what the attempt was based on
//     (state.Ticket.Basis), and fails the message, so SQS redelivers it.
//   - The job is stored whole when it is created; later decisions change
//     it only on the condition that the writer has not changed its state
//     or results since the claim read it (state.Store.Finish), so neither
//     overwrites the other's part.
//   - A crash after the claim leaves it to expire (Config.Lease, shorter
//     than the intake queue's visibility timeout): the redelivered message
//     (or the reconciler's, from the stuck index) takes it over and sends
//     the same events again, with the same ids. That is the one place
//     where a duplicate can reach the dispatch queue; it always carries an
//     id the engine has seen. The attempt that takes over also decides
//     from what the dead one may have sent: a job it indexed (the job
//     index is written before a job.created) is cancelled if the record
//     left the scope meanwhile, and a job it was ending (recorded before a
//     job.cancelled, state.Store.MarkEnding) counts as ended: its
//     job.cancelled is sent again, and a record back in scope starts the
//     next episode.
//
// # Failures
//
// A transient failure (ServiceNow 429/5xx/timeouts, credentials that do not
// work, DynamoDB or SQS errors, a claim held by another processor) fails
// only its message: the batch response lists it, and its visibility is set
// to when it should come back (package redelivery): a capped exponential
// backoff with jitter, or longer when ServiceNow sent a Retry-After. A
// message older than the retry horizon (24 h by default, Config.Retry)
// that fails again goes to the dead-letter queue: it is made visible at
// once and reported failed, without work, on every receive until the
// intake queue's redrive count moves it. Its ticket is then among the
// stuck ones (state.StuckAfter after the last failed attempt), and the
// reconciler enqueues it again: nothing but poison needs a redrive. A
// permanent failure (404 from ServiceNow, a 403 (the integration user may
// not read the table: a gateway misconfiguration that no retry cures), an
// unknown gateway or table, a record without the fields idempotency needs)
// is stored on the ticket as failed and the message is done, except a 404
// for a record no ticket has mirrored (a replay, a probe): that is logged
// and counted (StatusUnknownRecord, MetricUnknownRecord) and stores
// nothing; a 403 on the
// journal only is noted on the ticket, and the decision goes on without
// it. A message that is not an intake message (bad JSON) is logged and
// takes the same way to the dead-letter queue at once, unchanged and with
// its original attributes; it never holds up the rest of the batch. The
// redrive policy stays the only way into the DLQ: sending there directly
// would save the quick receives, at the price of a second path with its
// own permission and failure mode, and of the receive count and first-sent
// time an operator reads in `2501 infra dlq list`.
package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// Gateways reads gateways from the registry.
type Gateways interface {
	Gateway(ctx context.Context, id string) (registry.Gateway, error)
}

// Tickets is the ticket store.
type Tickets interface {
	Claim(ctx context.Context, c state.Claim) (state.Ticket, error)
	Finish(ctx context.Context, k state.Key, token string, r state.Result) error
	// ReleaseUntil gives a claim back after a transient failure whose
	// retry is not due before retryAt.
	ReleaseUntil(ctx context.Context, k state.Key, token, reason string, prior *state.Prior, retryAt time.Time) error
	RecordFailure(ctx context.Context, k state.Key, reason string, permanent bool, source string) error
	// RecordGone stores a 404 on the record's ticket; state.ErrNotFound
	// when no ticket has seen the record, and nothing was stored.
	RecordGone(ctx context.Context, k state.Key, reason, source string) error
	// DeferFailure records a transient failure before any claim whose
	// retry is not due before retryAt.
	DeferFailure(ctx context.Context, k state.Key, reason, source string, retryAt time.Time) error
	ClaimFingerprint(ctx context.Context, gatewayID, fp string, owner state.First, window time.Duration) (state.First, bool, error)
	// IndexJob records a job's ticket before its job.created is sent.
	IndexJob(ctx context.Context, jobID string, k state.Key) error
	// MarkEnding records, under the claim, the job.cancelled about to be
	// sent (see state.Ticket.Basis).
	MarkEnding(ctx context.Context, k state.Key, token string, e state.Ending) error
	// IndexedJob reads a job's index item (state.ErrNotFound: no attempt
	// ever got as far as sending its job.created).
	IndexedJob(ctx context.Context, jobID string) (state.IndexedJob, error)
	// DecidedVersion is the ticket's decided version (false: none yet):
	// the cheap duplicate check before any ServiceNow call.
	DecidedVersion(ctx context.Context, k state.Key) (int, bool, error)
}

// Dispatcher puts job events on the dispatch queue.
type Dispatcher interface {
	SendJSON(ctx context.Context, body any, attrs map[string]string) error
}

// Instance is a ServiceNow instance as the pipeline uses it.
type Instance interface {
	Get(ctx context.Context, table, sysID string, fields ...string) (servicenow.Record, error)
	// WriteJournal adds a work note once: a write whose outcome is
	// unknown is looked up in the journal before it is sent again.
	WriteJournal(ctx context.Context, table, sysID, field, text string, knownModCount int) (servicenow.JournalWrite, error)
	// JournalEntries reads the record's comments and work notes created
	// at or after since.
	JournalEntries(ctx context.Context, sysID string, since servicenow.Time) ([]servicenow.JournalEntry, error)
}

// Connector gives the Instance of a gateway, with its credentials.
type Connector interface {
	Connect(ctx context.Context, g registry.Gateway) (Instance, error)
	// Reset forgets the gateway's cached client and credentials after an
	// authentication failure, in case they were rotated.
	Reset(g registry.Gateway)
}

var (
	_ Tickets    = (*state.Store)(nil)
	_ Gateways   = (*registry.Store)(nil)
	_ Instance   = (*servicenow.Client)(nil)
	_ Dispatcher = (*queue.Sender)(nil)
)

// Deps are the pipeline's collaborators.
type Deps struct {
	Gateways   Gateways
	Tickets    Tickets
	Dispatch   Dispatcher
	ServiceNow Connector
	// Queue, with Config.QueueURL, paces the messages that failed; nil
	// leaves them to the intake queue's visibility timeout and redrive
	// count.
	Queue redelivery.Visibility
}

// Config tunes the pipeline; zero values take the defaults.
type Config struct {
	// Lease is how long a claim holds if its processor vanishes. It must be
	// longer than one invocation and shorter than the intake queue's
	// visibility timeout. Default 2 × schema.ProcessorTimeout.
	Lease time.Duration
	// GatewayTTL is how long a gateway read from the registry is reused.
	// Default 30s.
	GatewayTTL time.Duration
	// Reserve is the time kept before the invocation deadline to record
	// outcomes: ServiceNow calls get a deadline that much earlier. Default 3s.
	Reserve time.Duration
	// QueueURL is the intake queue, for visibility changes.
	QueueURL string
	// Retry is the backoff and horizon of failed messages; zero fields
	// take redelivery's defaults (schema.RetryBase, RetryCap, RetryHorizon).
	Retry  redelivery.Policy
	Logger *slog.Logger
	// Metrics receives one EMF line per batch; nil writes none.
	Metrics *metrics.Emitter
	Now     func() time.Time
}

// Defaults of Config.
const (
	DefaultLease      = 2 * schema.ProcessorTimeout
	DefaultGatewayTTL = 30 * time.Second
	DefaultReserve    = 3 * time.Second
)

// Processor runs intake messages through the gateway pipeline. It is safe
// for concurrent use and meant to live across invocations.
type Processor struct {
	deps Deps
	cfg  Config
	log  *slog.Logger

	gateways *registry.Cache
	retries  *redelivery.Queue
}

// New returns a Processor.
func New(deps Deps, cfg Config) *Processor {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.GatewayTTL <= 0 {
		cfg.GatewayTTL = DefaultGatewayTTL
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = DefaultReserve
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	return &Processor{
		deps: deps, cfg: cfg, log: cfg.Logger,
		gateways: registry.NewCache(deps.Gateways, cfg.GatewayTTL, cfg.Now),
		retries:  &redelivery.Queue{SQS: deps.Queue, URL: cfg.QueueURL, Policy: cfg.Retry, Now: cfg.Now, Log: cfg.Logger},
	}
}
