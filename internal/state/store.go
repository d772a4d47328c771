// Package state keeps what the processor decided about each ServiceNow
// record in the state table: ticket items (TICKET#gtw#table#sys_id) and
// dedup fingerprints (FP#gtw#fingerprint, expiring by TTL). A final
// ticket expires by the same TTL attribute (Store.WithTicketTTL). The reconciler
// keeps its watermarks in the same table through the same Store.
//
// Every write that decides something is conditional, so that concurrent
// processors (webhook duplicates, reconciliation overlap, SQS redelivery)
// agree on one winner:
//
//   - Claim takes a version of a record for processing. It succeeds only
//     when no live claim exists and the version is new and different
//     (sys_mod_count higher and content hash different), or the same or a
//     newer version of a claim that was released or has expired, or a
//     deferred ticket that is now due, or a newer version with the same
//     content of a ticket whose journal matters (Ticket.JournalMatters: it
//     may carry a comment mentioning the gateway). Otherwise it reports
//     ErrStale, ErrUnchanged (recording the new sys_mod_count) or ErrBusy.
//   - Finish and Release only apply while the caller still holds the claim.
//
// What was handled is the decided version (Ticket.DecidedVersion), never
// the sys_mod_count a claim wrote: a claim records the version it is
// deciding before the decision, but only a completed decision (Finish,
// an unchanged version, or a version our own write produced) moves
// decided_version, and it never goes down. The processor's cheap
// duplicate check (DecidedVersion) and the reconciler's version checks
// (Versions, the open-job watch) compare with it, so an attempt that
// failed after its claim is never taken for a handled change.
//
// Self-healing: a ticket whose decision is pending (claimed, released
// after a transient failure, or failed before any claim) carries
// stuck_pk = "STUCK#"+gateway id and stuck_at = the time it counts as
// stuck (StuckAfter past the failure or the claim's expiry), which puts
// it in the sparse schema.IndexStuck; StuckTickets reads it for the
// reconciler, and a completed decision, a claim that finds nothing newer
// to decide, or a permanent failure takes it out. The reconciler marks
// what it enqueues (MarkQueued: queued_version, queued_until, and
// due_sent for a due change request), so that no run sends again what is
// still on the queue; the marker expires, so a message that vanished is
// sent again. A permanent failure also takes a deferred ticket out of the
// due index.
//
// An attempt about to send a job.cancelled records the ended job under
// its claim (MarkEnding); should it not finish, Ticket.Basis gives the
// next attempt the job as ended.
//
// Deferred tickets carry due_pk = "DUE#"+gateway id and due_at (UTC,
// second precision, fixed width so that it sorts), which puts them in the
// sparse schema.IndexDue; DueTickets reads a gateway's due tickets from it.
// One partition per gateway keeps the reconciler's per-gateway loop to one
// Query. Tickets list by gateway (List) through schema.IndexByGateway, which
// projects only schema.TicketListAttributes (ListOptions.Full reads the
// items), with
// gsi1pk = "GW#"+gateway id and gsi1sk = the update time (RFC 3339, fixed
// nanoseconds). A ticket whose job is open carries open_pk = "OPEN#"+gateway
// id and open_sk = table#sys_id, which puts it in the sparse
// schema.IndexOpenJobs; OpenJobs reads it for the reconciler.
//
// A ticket's job (Ticket.Job) is written whole: by Finish when a decision
// creates it, and afterwards only on the condition that its state and
// results are as the decision read them, so the processor and the writer
// never overwrite each other's part (see Finish).
package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Outcome errors of Claim.
var (
	// ErrStale: this version (or a newer one) was already processed or is
	// being processed right now.
	ErrStale = errors.New("stale version")
	// ErrUnchanged: a newer version whose mirrored fields did not change.
	ErrUnchanged = errors.New("mirrored fields unchanged")
	// ErrBusy: another processor holds a live claim on an older version;
	// retry after it finished.
	ErrBusy = errors.New("record is being processed")
)

var (
	// ErrNotFound is returned for an unknown ticket.
	ErrNotFound = errors.New("ticket not found")
	// ErrClaimLost: the claim expired and another processor took over.
	ErrClaimLost = errors.New("claim lost")
)

const (
	ticketPrefix      = "TICKET#"
	fingerprintPrefix = "FP#"
	gatewayIndexPK    = "GW#"
	duePrefix         = "DUE#"
	openPrefix        = "OPEN#"
	stuckPrefix       = "STUCK#"
	// dueLayout sorts lexicographically in time order.
	dueLayout = "2006-01-02T15:04:05Z"
	// updatedLayout is RFC 3339 with fixed-width nanoseconds, so it sorts.
	updatedLayout = "2006-01-02T15:04:05.000000000Z"
)

// Store reads and writes the state table.
type Store struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
	// ticketTTL is how long a final ticket is kept (WithTicketTTL).
	ticketTTL time.Duration
}

// DefaultTicketTTL is how long a final ticket stays in the state table
// after its last decision.
const DefaultTicketTTL = 90 * 24 * time.Hour

// New returns a Store over the named state table, keeping final tickets
// for DefaultTicketTTL.
func New(db *dynamodb.Client, table string) *Store {
	return &Store{db: db, table: table, now: time.Now, ticketTTL: DefaultTicketTTL}
}

// WithTicketTTL returns a copy of the Store that keeps a final ticket for
// ttl after the decision that made it final; 0 keeps every ticket forever.
//
// A ticket is final when its decision ends it for good: out_of_scope,
// expired or failed for good, without an open job (Final). Such a decision
// sets the table's TTL attribute (schema.AttrExpiresAt) to the decision's
// time plus ttl, and DynamoDB deletes the item some time after. Anything
// that makes the ticket live again takes the attribute away: a claim (the
// ticket is then processing, and stuck should the attempt die), a failure
// before any claim that will be retried, a decision that opens a job,
// defers a change request or waits for a mention, a deduplicated ticket
// (which a comment can unlink). Open jobs, due change requests and stuck
// tickets therefore never expire.
//
// What outlives a ticket: its job index items (JOB#…, IndexJob) never
// expire, so a record that comes back after its ticket expired starts its
// jobs after the episodes of the earlier ticket (the processor reads the
// index), and no job id or event id is used twice; a result for a job of
// a deleted ticket finds the ticket gone and is dropped. They are a few
// hundred bytes per job ever created. Dedup fingerprints (FP#…) expire
// with their gateway's dedup window, independently: a duplicate's ticket
// is never final, and the primary it names is a ServiceNow number, still
// valid after the primary's ticket is gone.
func (s *Store) WithTicketTTL(ttl time.Duration) *Store {
	c := *s
	c.ticketTTL = max(ttl, 0)
	return &c
}

// Final reports whether a decision with this status, its job open or not,
// ends the ticket for good: the statuses no version needs to be kept for
// (a comment cannot revive them; a later change of the record is a new
// decision). Accepted (a mention may start a new episode), deduplicated,
// awaiting_mention, deferred and the pending statuses are not.
func Final(status string, jobOpen bool) bool {
	if jobOpen {
		return false
	}
	switch status {
	case StatusOutOfScope, StatusExpired, StatusFailed:
		return true
	}
	return false
}

// expiry sets the TTL attribute of a final ticket decided at now, or takes
// it away from a live one.
func (s *Store) expiry(u *update, final bool, now time.Time) {
	if final && s.ticketTTL > 0 {
		u.set(schema.AttrExpiresAt, num64(now.Add(s.ticketTTL).Unix()))
		return
	}
	u.remove(schema.AttrExpiresAt)
}

// WithClock returns a copy of the Store that reads the time from now; for
// tests that need a deferred ticket to fall due.
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Claim is a request to take one version of a record for processing.
type Claim struct {
	Key
	Mirror       Mirror
	SysModCount  int
	SysUpdatedOn string
	Source       string
	WebhookID    string
	// Token identifies the claimant; Finish and Release must present it.
	Token string
	// CreatedOn is the record's sys_created_on, stored when set.
	CreatedOn string
	// Lease is how long the claim holds if the claimant vanishes. It must
	// be shorter than the intake queue's visibility timeout, so that the
	// redelivered message finds it expired.
	Lease time.Duration
}

// Claim takes c's version for processing and returns the ticket as it was
// before (zero Ticket when new). It returns ErrStale, ErrUnchanged or
// ErrBusy when this version must not be processed.
func (s *Store) Claim(ctx context.Context, c Claim) (Ticket, error) {
	hash := c.Mirror.Hash()
	// A lost race on the follow-up write (unchanged) restarts the decision;
	// it settles within a few rounds because each round sees a newer item.
	for range 3 {
		prev, err := s.tryClaim(ctx, c, hash)
		if err == nil {
			return prev, nil
		}
		var cf *ddbtypes.ConditionalCheckFailedException
		if !errors.As(err, &cf) {
			return Ticket{}, fmt.Errorf("claim %s: %w", c.PK(), err)
		}
		cur, err := s.get(ctx, c.Key, true)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Ticket{}, err
		}
		now := s.now()
		switch {
		case cur.ClaimExpires >= now.UnixMilli() && cur.SysModCount < c.SysModCount:
			if cur.ContentHash == hash && !cur.Basis().JournalMatters() {
				// The claimant is deciding on this very content (this is,
				// typically, the echo of its own work note). Should it
				// crash, its redelivered message fetches this version and
				// takes the claim over, so nothing is lost.
				return cur, s.note(ctx, c.Key, OutcomeUnchanged)
			}
			// Same content, but the version may carry a comment the
			// claimant's journal read came too early for: retry it later.
			return cur, ErrBusy
		case cur.ClaimExpires >= now.UnixMilli() || cur.SysModCount >= c.SysModCount:
			if cur.StuckAt != "" && cur.ClaimToken == "" {
				// A failure before any claim put a decided ticket among the
				// stuck ones; this version shows there was nothing more.
				s.settle(ctx, c.Key)
			}
			return cur, s.note(ctx, c.Key, OutcomeStale)
		case cur.ContentHash == hash && cur.JournalMatters():
			// The claim admits this version; another one won the race
			// and finished in between. Try again on what it left.
			continue
		case cur.ContentHash == hash:
			err := s.markUnchanged(ctx, c, hash)
			if err == nil {
				return cur, ErrUnchanged
			}
			if !errors.As(err, &cf) {
				return Ticket{}, err
			}
		}
	}
	return Ticket{}, fmt.Errorf("claim %s: %w", c.PK(), ErrBusy)
}

func (s *Store) tryClaim(ctx context.Context, c Claim, hash string) (Ticket, error) {
	now := s.now()
	u := newUpdate()
	u.setMirror(c.Mirror)
	u.set("gateway_id", str(c.GatewayID))
	u.set("table", str(c.Table))
	u.set("sys_id", str(c.SysID))
	u.set("sys_mod_count", num(c.SysModCount))
	u.set("sys_updated_on", str(c.SysUpdatedOn))
	u.set("content_hash", str(hash))
	u.set("status", str(StatusProcessing))
	u.set("reason", str(""))
	u.set("claim_token", str(c.Token))
	u.set("claim_expires", num64(now.Add(c.Lease).UnixMilli()))
	u.stuck(c.GatewayID, now.Add(c.Lease+StuckAfter))
	u.remove(schema.AttrExpiresAt) // a pending decision never expires
	u.setExpr("attempts", "if_not_exists(#attempts, :zero) + :one")
	u.setExpr("first_seen_at", "if_not_exists(#first_seen_at, :now)")
	u.set("source", str(c.Source))
	if c.WebhookID != "" {
		u.set("webhook_id", str(c.WebhookID))
	}
	if c.CreatedOn != "" {
		u.set("sys_created_on", str(c.CreatedOn))
	}
	u.touch(c.GatewayID, now)
	journalValues(u)
	u.values[":zero"] = num(0)
	u.values[":one"] = num(1)
	u.values[":v"] = num(c.SysModCount)
	u.values[":h"] = str(hash)
	u.values[":nowms"] = num64(now.UnixMilli())
	u.values[":deferred"] = str(StatusDeferred)
	u.values[":nowdue"] = str(now.UTC().Format(dueLayout))
	u.names["#due_at"] = "due_at"
	u.cond = "(attribute_not_exists(#claim_expires) OR #claim_expires < :nowms) AND (" +
		"attribute_not_exists(#sys_mod_count)" +
		" OR (#sys_mod_count < :v AND #content_hash <> :h)" +
		" OR (#sys_mod_count <= :v AND attribute_exists(#claim_expires))" +
		" OR (#sys_mod_count <= :v AND #status = :deferred AND #due_at <= :nowdue)" +
		" OR (#sys_mod_count < :v AND (" + journalCond + ")))"
	out, err := s.db.UpdateItem(ctx, u.input(s.table, c.Key.PK(), ddbtypes.ReturnValueAllOld))
	if err != nil {
		return Ticket{}, err
	}
	var prev Ticket
	if len(out.Attributes) > 0 {
		if err := attributevalue.UnmarshalMap(out.Attributes, &prev); err != nil {
			return Ticket{}, fmt.Errorf("decode ticket %s: %w", c.PK(), err)
		}
	}
	return prev, nil
}

// markUnchanged records a newer version with the same content, so that an
// older delivery arriving later is stale.
func (s *Store) markUnchanged(ctx context.Context, c Claim, hash string) error {
	now := s.now()
	u := newUpdate()
	u.set("sys_mod_count", num(c.SysModCount))
	// Nothing to decide on this version: it is handled.
	u.set("decided_version", num(c.SysModCount))
	u.set("sys_updated_on", str(c.SysUpdatedOn))
	u.set("last_outcome", str(OutcomeUnchanged))
	u.remove(schema.AttrStuckPK, schema.AttrStuckAt)
	u.set("last_outcome_at", timeAV(now))
	u.touch(c.GatewayID, now)
	u.values[":v"] = num(c.SysModCount)
	u.values[":h"] = str(hash)
	u.names["#content_hash"] = "content_hash"
	u.names["#claim_expires"] = "claim_expires"
	journalValues(u)
	u.cond = "#sys_mod_count < :v AND #content_hash = :h AND attribute_not_exists(#claim_expires) AND NOT (" + journalCond + ")"
	if _, err := s.db.UpdateItem(ctx, u.input(s.table, c.PK(), ddbtypes.ReturnValueNone)); err != nil {
		return fmt.Errorf("record unchanged %s: %w", c.PK(), err)
	}
	return nil
}

// note records an outcome that changes nothing else.
func (s *Store) note(ctx context.Context, k Key, outcome string) error {
	now := s.now()
	u := newUpdate()
	u.set("last_outcome", str(outcome))
	u.set("last_outcome_at", timeAV(now))
	u.names["#pk"] = schema.AttrPK
	u.cond = "attribute_exists(#pk)"
	_, err := s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
	var cf *ddbtypes.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &cf) {
		return fmt.Errorf("record %s on %s: %w", outcome, k.PK(), err)
	}
	if outcome == OutcomeStale {
		return ErrStale
	}
	return ErrUnchanged
}

// settle takes a ticket without a pending claim out of the stuck index
// (best effort: should it fail, the reconciler's next copy settles it).
func (s *Store) settle(ctx context.Context, k Key) {
	u := newUpdate()
	u.remove(schema.AttrStuckPK, schema.AttrStuckAt)
	u.names["#claim_token"] = "claim_token"
	u.cond = "attribute_not_exists(#claim_token)"
	_, _ = s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
}

// Result is the decision on a claimed version.
type Result struct {
	// Version is the claimed sys_mod_count.
	Version int
	Status  string
	Reason  string
	// Outcome is the last outcome when it is not Status: OutcomeUnchanged
	// for a version that brought nothing new (Status and Reason are then
	// the ticket's, as they were before the claim).
	Outcome           string
	JobID             string // the ticket's job, when it has one
	Fingerprint       string
	DuplicateOf       string
	DuplicateOfNumber string
	Due               time.Time // deferred only
	WriteBack         string

	// Job, for a new episode, is the job to store whole (its first events
	// included); it replaces the ticket's ended one.
	Job *Job
	// Base, without Job, is the ticket's job as the claim read it; Events
	// are appended to it.
	Base   *Job
	Events []JobEventRecord
	// EndJob, when set, ends the open job in this state (JobCancelled). A
	// job the writer ended in the meantime keeps the writer's state.
	EndJob  string
	endedAt time.Time
	// JobOpen says whether the ticket's job is open after the decision: it
	// keeps the ticket in, or takes it out of, schema.IndexOpenJobs.
	JobOpen bool

	// JournalSeenAt and JournalSeenIDs, when JournalSeenAt is set, are the
	// newest journal entries the decision considered.
	JournalSeenAt  string
	JournalSeenIDs []string
	// Prior, when set, is stored for the next attempt (see Ticket.Basis):
	// the status, reason and mirror this decision leaves.
	Prior *Prior
	// SeenVersion, when higher than Version, is the sys_mod_count our own
	// work note produced (nothing else changed in between), so its echo
	// is stale without a fetch of the journal.
	SeenVersion int

	// keepDecided: the ticket's decided version is already above this
	// decision's (the writer recorded its own write meanwhile).
	keepDecided bool
}

// decided is the version the decision makes handled.
func (r Result) decided() int { return max(r.Version, r.SeenVersion) }

// Finish stores the decision on a claimed version and releases the claim.
// ErrClaimLost means the claim expired and another processor took over.
// The decision's version (or SeenVersion, when higher) becomes the
// decided version, unless the ticket's is higher already: it never goes
// down. The ticket leaves the stuck index, and a due_sent mark is
// cleared, so a deferred decision is sent again when its (new) time comes.
//
// The job is written so that the processor and the writer never overwrite
// each other's part: a new one whole (under the claim, only the processor
// creates jobs); an existing one as Base with the decision's events (and
// end) applied, on the condition that its state and results are still
// Base's. When the writer changed them in between, Finish applies the
// decision again to the job as it now is. (A write of whole maps, not of
// nested paths, because the embedded emulator applies neither nested SET
// paths nor list_append.)
func (s *Store) Finish(ctx context.Context, k Key, token string, r Result) error {
	for attempt := 0; ; attempt++ {
		err := s.finish(ctx, k, token, r)
		if !errors.Is(err, ErrClaimLost) || attempt == 4 {
			return err
		}
		cur, gerr := s.get(ctx, k, true)
		if gerr != nil || cur.ClaimToken != token {
			return err
		}
		again := false
		if !r.keepDecided && cur.Decided() > r.decided() {
			r.keepDecided, again = true, true
		}
		if r.Job == nil && r.Base != nil && cur.Job != nil && cur.Job.ID == r.Base.ID {
			r.Base, again = cur.Job, true
		}
		if !again {
			return err
		}
	}
}

// After is the job as Finish stores it from Base: with the decision's
// events and, for EndJob, ended at at.
func (r Result) After(at time.Time) Job {
	r.endedAt = at.UTC()
	return r.next()
}

// next is the job after the decision's events and end.
func (r Result) next() Job {
	j := *r.Base
	j.Events = append(slices.Clone(j.Events), r.Events...)
	if len(r.Events) > 0 {
		j.Sequence = r.Events[len(r.Events)-1].Sequence
	}
	if r.EndJob != "" && j.State == JobOpen {
		j.State, j.EndedAt = r.EndJob, r.endedAt
	}
	return j
}

func (s *Store) finish(ctx context.Context, k Key, token string, r Result) error {
	now := s.now()
	u := newUpdate()
	u.set("status", str(r.Status))
	u.set("reason", str(r.Reason))
	outcome := r.Status
	if r.Outcome != "" {
		outcome = r.Outcome
	}
	u.set("last_outcome", str(outcome))
	u.set("last_outcome_at", timeAV(now))
	u.set("processed_at", timeAV(now))
	cond := "#claim_token = :token"
	if !r.keepDecided {
		u.set("decided_version", num(r.decided()))
		cond += " AND (attribute_not_exists(#decided_version) OR #decided_version <= :decided_version)"
	}
	if r.SeenVersion > r.Version {
		u.set("sys_mod_count", num(r.SeenVersion))
	}
	u.touch(k.GatewayID, now)
	if r.JobID != "" {
		u.set("job_id", str(r.JobID))
	}
	if r.Fingerprint != "" {
		u.set("fingerprint", str(r.Fingerprint))
	}
	if r.DuplicateOf != "" {
		u.set("duplicate_of", str(r.DuplicateOf))
		u.set("duplicate_of_number", str(r.DuplicateOfNumber))
	} else {
		u.remove("duplicate_of", "duplicate_of_number")
	}
	if r.WriteBack != "" {
		u.set("write_back", str(r.WriteBack))
	}
	if r.Status == StatusDeferred {
		u.set(schema.AttrDuePK, str(duePrefix+k.GatewayID))
		u.set(schema.AttrDueAt, str(r.Due.UTC().Format(dueLayout)))
	} else {
		u.remove(schema.AttrDuePK, schema.AttrDueAt)
	}
	u.remove("due_sent", "ending", schema.AttrStuckPK, schema.AttrStuckAt)
	if r.JournalSeenAt != "" {
		u.set("journal_seen_at", str(r.JournalSeenAt))
		ids := make([]ddbtypes.AttributeValue, 0, len(r.JournalSeenIDs))
		for _, id := range r.JournalSeenIDs {
			ids = append(ids, str(id))
		}
		u.set("journal_seen_ids", &ddbtypes.AttributeValueMemberL{Value: ids})
	}
	if r.Prior != nil {
		av, err := attributevalue.Marshal(r.Prior)
		if err != nil {
			return fmt.Errorf("finish %s: encode prior: %w", k.PK(), err)
		}
		u.set("prior", av)
	}
	job := r.Job
	if job == nil && r.Base != nil && (len(r.Events) > 0 || r.EndJob != "") {
		r.endedAt = now.UTC()
		j := r.next()
		job = &j
		// Unchanged by the writer since Base was read: its state and results.
		u.names["#job"], u.names["#jid"], u.names["#jstate"], u.names["#jresults"] = "job", "id", "state", "results"
		u.values[":jid"], u.values[":jstate"], u.values[":jresults"] = str(r.Base.ID), str(r.Base.State), num(len(r.Base.Results))
		cond += " AND #job.#jid = :jid AND #job.#jstate = :jstate"
		if len(r.Base.Results) == 0 {
			cond += " AND attribute_not_exists(#job.#jresults)"
		} else {
			cond += " AND size(#job.#jresults) = :jresults"
		}
	}
	if job != nil {
		av, err := attributevalue.Marshal(job)
		if err != nil {
			return fmt.Errorf("finish %s: encode job: %w", k.PK(), err)
		}
		u.set("job", av)
	}
	if r.JobOpen {
		u.set(schema.AttrOpenPK, str(openPrefix+k.GatewayID))
		u.set(schema.AttrOpenSK, str(k.Table+"#"+k.SysID))
	} else {
		u.remove(schema.AttrOpenPK, schema.AttrOpenSK)
	}
	s.expiry(u, Final(r.Status, r.JobOpen), now)
	u.remove("claim_token", "claim_expires", "last_error")
	u.values[":token"] = str(token)
	u.names["#claim_token"] = "claim_token"
	u.cond = cond
	return s.ifClaimed(ctx, k, "finish", u)
}

// Release gives a claimed version back after a transient failure: the
// ticket says retrying, and the redelivered message can claim it at once.
// The decided version stays where it was, and the ticket is among the
// stuck ones from StuckAfter on, so that the reconciler re-enqueues it
// should the message never succeed (dead-lettered, or lost).
// prior, when set, is what the failed attempt was based on, kept for the
// next one (see Ticket.Basis).
func (s *Store) Release(ctx context.Context, k Key, token, reason string, prior *Prior) error {
	return s.ReleaseUntil(ctx, k, token, reason, prior, time.Time{})
}

// ReleaseUntil is Release for a retry that is not due before retryAt (a
// message deferred by the gateway's budget, or told by ServiceNow when to
// come back): the ticket joins the stuck ones only StuckAfter past that
// time, so the reconciler does not send a copy of a message that is
// merely waiting for its turn. A zero retryAt is now.
func (s *Store) ReleaseUntil(ctx context.Context, k Key, token, reason string, prior *Prior, retryAt time.Time) error {
	now := s.now()
	u := newUpdate()
	if prior != nil {
		av, err := attributevalue.Marshal(prior)
		if err != nil {
			return fmt.Errorf("release %s: encode prior: %w", k.PK(), err)
		}
		u.set("prior", av)
	}
	u.set("status", str(StatusRetrying))
	u.set("reason", str(reason))
	u.set("last_error", str(reason))
	u.set("last_outcome", str(StatusRetrying))
	u.set("last_outcome_at", timeAV(now))
	u.set("claim_expires", num(0))
	u.stuck(k.GatewayID, laterOf(now, retryAt).Add(StuckAfter))
	u.touch(k.GatewayID, now)
	u.values[":token"] = str(token)
	u.names["#claim_token"] = "claim_token"
	u.cond = "#claim_token = :token"
	return s.ifClaimed(ctx, k, "release", u)
}

func (s *Store) ifClaimed(ctx context.Context, k Key, op string, u *update) error {
	_, err := s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return fmt.Errorf("%s %s: %w", op, k.PK(), ErrClaimLost)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, k.PK(), err)
	}
	return nil
}

// RecordFailure stores a failure that happened before a version could be
// claimed (the record could not be fetched, the gateway is unknown). A
// permanent failure sets the status to failed and takes the ticket out of
// the due and stuck indexes (a deferred change deleted before its time is
// not enqueued again); a transient one leaves the status of a known
// ticket alone, marks a new one retrying, and puts it among the stuck
// ones from StuckAfter on: the change it was about is found again even
// when its message never succeeds.
func (s *Store) RecordFailure(ctx context.Context, k Key, reason string, permanent bool, source string) error {
	return s.recordFailure(ctx, k, reason, permanent, source, time.Time{})
}

// DeferFailure records a transient failure before any claim whose retry is
// not due before retryAt (see ReleaseUntil): the ticket joins the stuck
// ones StuckAfter past that time.
func (s *Store) DeferFailure(ctx context.Context, k Key, reason, source string, retryAt time.Time) error {
	return s.recordFailure(ctx, k, reason, false, source, retryAt)
}

func (s *Store) recordFailure(ctx context.Context, k Key, reason string, permanent bool, source string, retryAt time.Time) error {
	var err error
	if permanent {
		err = s.failForGood(ctx, k, reason, source, "")
	} else {
		err = s.recordFailureIf(ctx, k, reason, false, source, retryAt, "", false)
	}
	if err != nil {
		return fmt.Errorf("record failure on %s: %w", k.PK(), err)
	}
	return nil
}

// failForGood stores a permanent failure on condition cond ("" for none):
// final, with the ticket TTL, unless the ticket's job is open. The error
// is the UpdateItem's.
func (s *Store) failForGood(ctx context.Context, k Key, reason, source, cond string) error {
	if s.ticketTTL > 0 {
		c := "attribute_not_exists(#open_pk)"
		if cond != "" {
			c = cond + " AND " + c
		}
		err := s.recordFailureIf(ctx, k, reason, true, source, time.Time{}, c, true)
		var cf *ddbtypes.ConditionalCheckFailedException
		if !errors.As(err, &cf) {
			return err
		}
	}
	return s.recordFailureIf(ctx, k, reason, true, source, time.Time{}, cond, false)
}

// recordFailureIf is recordFailure on condition cond ("" for none), final
// or not (Final); the error is the UpdateItem's.
func (s *Store) recordFailureIf(ctx context.Context, k Key, reason string, permanent bool, source string, retryAt time.Time, cond string, final bool) error {
	now := s.now()
	u := newUpdate()
	u.set("gateway_id", str(k.GatewayID))
	u.set("table", str(k.Table))
	u.set("sys_id", str(k.SysID))
	u.set("last_error", str(reason))
	u.set("last_outcome", str(StatusFailed))
	u.set("last_outcome_at", timeAV(now))
	u.set("source", str(source))
	u.setExpr("attempts", "if_not_exists(#attempts, :zero) + :one")
	u.setExpr("first_seen_at", "if_not_exists(#first_seen_at, :now)")
	u.values[":zero"] = num(0)
	u.values[":one"] = num(1)
	if permanent {
		u.set("status", str(StatusFailed))
		u.set("reason", str(reason))
		u.remove(schema.AttrDuePK, schema.AttrDueAt, "due_sent", schema.AttrStuckPK, schema.AttrStuckAt)
	} else {
		u.stuck(k.GatewayID, laterOf(now, retryAt).Add(StuckAfter))
		u.setExpr("status", "if_not_exists(#status, :retrying)")
		u.setExpr("reason", "if_not_exists(#reason, :reason)")
		u.values[":retrying"] = str(StatusRetrying)
		u.values[":reason"] = str(reason)
	}
	s.expiry(u, final, now)
	u.touch(k.GatewayID, now)
	if cond != "" {
		u.names["#content_hash"] = "content_hash"
		u.names["#open_pk"] = schema.AttrOpenPK
		u.cond = cond
	}
	_, err := s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
	return err
}

// RecordGone stores a 404 from ServiceNow (deleted, or hidden by an ACL)
// on a ticket that has mirrored a version of the record, as the permanent
// failure RecordFailure stores. A record the table never held a version
// of (a replayed or forged message, a sys_id nobody uses) leaves nothing
// behind: RecordGone returns ErrNotFound, and deletes an item that only
// recorded failures before any claim (or the reconciler's queued marker),
// so that a stray sys_id leaves neither a permanent ticket nor one the
// reconciler re-enqueues as stuck.
func (s *Store) RecordGone(ctx context.Context, k Key, reason, source string) error {
	var cf *ddbtypes.ConditionalCheckFailedException
	for range 2 {
		err := s.failForGood(ctx, k, reason, source, "attribute_exists(#content_hash)")
		if err == nil {
			return nil
		}
		if !errors.As(err, &cf) {
			return fmt.Errorf("record gone on %s: %w", k.PK(), err)
		}
		_, err = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                aws.String(s.table),
			Key:                      pkKey(k.PK()),
			ConditionExpression:      aws.String("attribute_not_exists(#content_hash)"),
			ExpressionAttributeNames: map[string]string{"#content_hash": "content_hash"},
		})
		if err == nil {
			return fmt.Errorf("record gone on %s: %w", k.PK(), ErrNotFound)
		}
		if !errors.As(err, &cf) {
			return fmt.Errorf("record gone on %s: %w", k.PK(), err)
		}
		// A claim mirrored a version in between: store the failure on it.
	}
	return fmt.Errorf("record gone on %s: %w", k.PK(), ErrBusy)
}

// Get returns one ticket, or ErrNotFound.
func (s *Store) Get(ctx context.Context, k Key) (Ticket, error) { return s.get(ctx, k, false) }

func (s *Store) get(ctx context.Context, k Key, consistent bool) (Ticket, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            pkKey(k.PK()),
		ConsistentRead: aws.Bool(consistent),
	})
	if err != nil {
		return Ticket{}, fmt.Errorf("get ticket %s: %w", k.PK(), err)
	}
	if out.Item == nil {
		return Ticket{}, fmt.Errorf("ticket %s: %w", k.PK(), ErrNotFound)
	}
	var t Ticket
	if err := attributevalue.UnmarshalMap(out.Item, &t); err != nil {
		return Ticket{}, fmt.Errorf("decode ticket %s: %w", k.PK(), err)
	}
	return t, nil
}

// ListOptions select tickets of one gateway.
type ListOptions struct {
	GatewayID string
	// Status keeps only tickets with this status; empty keeps all.
	Status string
	// JobState keeps only tickets whose job is in this state (JobStates);
	// empty keeps all.
	JobState string
	// Since keeps tickets updated at or after it; zero keeps all.
	Since time.Time
	// Limit caps the result; zero means no cap.
	Limit int
	// Full reads each listed ticket whole (BatchGetItem). Without it a
	// ticket holds only schema.TicketListAttributes, all the index keeps.
	Full bool
}

// List returns a gateway's tickets, most recently updated first.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Ticket, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(schema.IndexByGateway),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk >= :since"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrGSI1PK, "#sk": schema.AttrGSI1SK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(gatewayIndexPK + o.GatewayID), ":since": str(o.Since.UTC().Format(updatedLayout))},
		ScanIndexForward:          aws.Bool(false),
	}
	if o.Status != "" {
		in.FilterExpression = aws.String("#status = :status")
		in.ExpressionAttributeNames["#status"] = "status"
		in.ExpressionAttributeValues[":status"] = str(o.Status)
	}
	if o.JobState != "" {
		f := "#job.#jstate = :jstate"
		if in.FilterExpression != nil {
			f = *in.FilterExpression + " AND " + f
		}
		in.FilterExpression = aws.String(f)
		in.ExpressionAttributeNames["#job"] = "job"
		in.ExpressionAttributeNames["#jstate"] = "state"
		in.ExpressionAttributeValues[":jstate"] = str(o.JobState)
	}
	tickets, err := s.query(ctx, in, o.Limit)
	if err == nil && o.Full {
		tickets, err = s.whole(ctx, tickets)
	}
	if err != nil {
		return nil, fmt.Errorf("list tickets of %s: %w", o.GatewayID, err)
	}
	// Index order is update order; sort again in case an emulator does not
	// honour ScanIndexForward on an index.
	sort.SliceStable(tickets, func(i, j int) bool { return tickets[i].UpdatedAt.After(tickets[j].UpdatedAt) })
	return tickets, nil
}

// whole reads the items of projected tickets, in their order; a ticket
// deleted in between is left out.
func (s *Store) whole(ctx context.Context, ts []Ticket) ([]Ticket, error) {
	byPK := make(map[string]Ticket, len(ts))
	for start := 0; start < len(ts); start += maxBatchGet {
		keys := make([]map[string]ddbtypes.AttributeValue, 0, maxBatchGet)
		for _, t := range ts[start:min(start+maxBatchGet, len(ts))] {
			keys = append(keys, pkKey(t.Key().PK()))
		}
		req := map[string]ddbtypes.KeysAndAttributes{s.table: {Keys: keys}}
		for attempt := 1; len(req) > 0 && len(req[s.table].Keys) > 0; attempt++ {
			if attempt > versionsAttempts {
				return nil, fmt.Errorf("%d tickets still unread after %d attempts", len(req[s.table].Keys), versionsAttempts)
			}
			if attempt > 1 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
				}
			}
			out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, err
			}
			var got []Ticket
			if err := attributevalue.UnmarshalListOfMaps(out.Responses[s.table], &got); err != nil {
				return nil, fmt.Errorf("decode tickets: %w", err)
			}
			for _, t := range got {
				byPK[t.Key().PK()] = t
			}
			req = out.UnprocessedKeys
		}
	}
	out := make([]Ticket, 0, len(ts))
	for _, t := range ts {
		if w, ok := byPK[t.Key().PK()]; ok {
			out = append(out, w)
		}
	}
	return out, nil
}

// DueTickets returns the gateway's deferred tickets due at or before now,
// the earliest first.
func (s *Store) DueTickets(ctx context.Context, gatewayID string, now time.Time) ([]Ticket, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(schema.IndexDue),
		KeyConditionExpression:    aws.String("#pk = :pk AND #due <= :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrDuePK, "#due": schema.AttrDueAt},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(duePrefix + gatewayID), ":now": str(now.UTC().Format(dueLayout))},
	}
	tickets, err := s.query(ctx, in, 0)
	if err != nil {
		return nil, fmt.Errorf("due tickets of %s: %w", gatewayID, err)
	}
	sort.SliceStable(tickets, func(i, j int) bool { return tickets[i].DueAt < tickets[j].DueAt })
	return tickets, nil
}

func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, limit int) ([]Ticket, error) {
	var tickets []Ticket
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		var ts []Ticket
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &ts); err != nil {
			return nil, fmt.Errorf("decode tickets: %w", err)
		}
		tickets = append(tickets, ts...)
		if limit > 0 && len(tickets) >= limit {
			return tickets[:limit], nil
		}
	}
	return tickets, nil
}

// First names the ticket that first had a fingerprint within its window.
type First struct {
	Table  string `dynamodbav:"table"`
	SysID  string `dynamodbav:"sys_id"`
	Number string `dynamodbav:"number"`
}

// ClaimFingerprint registers owner as the first ticket with fingerprint fp
// for window, unless another ticket registered it within its window: then
// it returns that ticket and true. The item expires by TTL; the condition
// also checks the expiry, because TTL deletion lags.
func (s *Store) ClaimFingerprint(ctx context.Context, gatewayID, fp string, owner First, window time.Duration) (First, bool, error) {
	now := s.now()
	pk := fingerprintPrefix + gatewayID + "#" + fp
	item := map[string]ddbtypes.AttributeValue{
		schema.AttrPK:        str(pk),
		"gateway_id":         str(gatewayID),
		"fingerprint":        str(fp),
		"table":              str(owner.Table),
		"sys_id":             str(owner.SysID),
		"number":             str(owner.Number),
		"created_at":         timeAV(now),
		schema.AttrExpiresAt: num64(now.Add(window).Unix()),
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #exp < :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrPK, "#exp": schema.AttrExpiresAt},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":now": num64(now.Unix())},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if err == nil {
		return owner, false, nil
	}
	if !errors.As(err, &cf) {
		return First{}, false, fmt.Errorf("claim fingerprint %s: %w", pk, err)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: pkKey(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return First{}, false, fmt.Errorf("get fingerprint %s: %w", pk, err)
	}
	var first First
	if err := attributevalue.UnmarshalMap(out.Item, &first); err != nil {
		return First{}, false, fmt.Errorf("decode fingerprint %s: %w", pk, err)
	}
	if first.SysID == "" || (first.Table == owner.Table && first.SysID == owner.SysID) {
		// Expired and deleted in between, or our own earlier version.
		return owner, false, nil
	}
	return first, true, nil
}

// update builds an UpdateItem expression with placeholder names for
// every attribute, since many of ours (status, table, state...) are
// DynamoDB reserved words.
type update struct {
	sets    []string
	removes []string
	names   map[string]string
	values  map[string]ddbtypes.AttributeValue
	cond    string
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]ddbtypes.AttributeValue{}}
}

func (u *update) set(attr string, v ddbtypes.AttributeValue) {
	n := "#" + attr
	u.names[n] = attr
	u.values[":"+attr] = v
	u.sets = append(u.sets, n+" = :"+attr)
}

func (u *update) setExpr(attr, expr string) {
	u.names["#"+attr] = attr
	u.sets = append(u.sets, "#"+attr+" = "+expr)
}

func (u *update) remove(attrs ...string) {
	for _, a := range attrs {
		u.names["#"+a] = a
		u.removes = append(u.removes, "#"+a)
	}
}

func (u *update) setMirror(m Mirror) {
	av, _ := attributevalue.MarshalMap(m) // strings and a bool always marshal
	keys := make([]string, 0, len(av))
	for k := range av {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		u.set(k, av[k])
	}
}

// stuck puts the ticket in schema.IndexStuck from at on.
// laterOf returns the later of two times.
func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (u *update) stuck(gatewayID string, at time.Time) {
	u.set(schema.AttrStuckPK, str(stuckPrefix+gatewayID))
	u.set(schema.AttrStuckAt, str(at.UTC().Format(dueLayout)))
}

// touch moves the ticket to the top of its gateway's list.
func (u *update) touch(gatewayID string, now time.Time) {
	u.set("updated_at", timeAV(now))
	u.set(schema.AttrGSI1PK, str(gatewayIndexPK+gatewayID))
	u.set(schema.AttrGSI1SK, str(now.UTC().Format(updatedLayout)))
	u.values[":now"] = timeAV(now)
}

func (u *update) input(table, pk string, rv ddbtypes.ReturnValue) *dynamodb.UpdateItemInput {
	var clauses []string
	if len(u.sets) > 0 {
		clauses = append(clauses, "SET "+strings.Join(u.sets, ", "))
	}
	if len(u.removes) > 0 {
		clauses = append(clauses, "REMOVE "+strings.Join(u.removes, ", "))
	}
	expr := strings.Join(clauses, " ")
	// Names used only in the condition must be declared too; names used
	// nowhere must not be.
	used := expr + " " + u.cond
	names := map[string]string{}
	for k, v := range u.names {
		if containsName(used, k) {
			names[k] = v
		}
	}
	values := map[string]ddbtypes.AttributeValue{}
	for k, v := range u.values {
		if containsName(used, k) {
			values[k] = v
		}
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       pkKey(pk),
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              rv,
	}
	if len(values) == 0 {
		// DynamoDB refuses an empty map (a REMOVE under a condition
		// without values, say).
		in.ExpressionAttributeValues = nil
	}
	if u.cond != "" {
		in.ConditionExpression = aws.String(u.cond)
	}
	return in
}

// containsName reports whether the placeholder occurs in expr as a whole
// token (":now" must not match ":nowms").
func containsName(expr, name string) bool {
	for i := 0; ; {
		j := strings.Index(expr[i:], name)
		if j < 0 {
			return false
		}
		end := i + j + len(name)
		if end == len(expr) || !isNameChar(expr[end]) {
			return true
		}
		i = end
	}
}

func isNameChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func pkKey(pk string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{schema.AttrPK: str(pk)}
}

func str(s string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: s} }
func num(n int) ddbtypes.AttributeValue    { return num64(int64(n)) }
func num64(n int64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func timeAV(t time.Time) ddbtypes.AttributeValue { return str(t.UTC().Format(time.RFC3339Nano)) }
