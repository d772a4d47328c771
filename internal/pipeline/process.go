package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// Outcome statuses of a message beyond the ticket statuses.
const (
	StatusStale     = state.OutcomeStale
	StatusUnchanged = state.OutcomeUnchanged
	// StatusFailed covers permanent failures (stored on the ticket) and
	// transient ones (the message is retried: Outcome.Retry).
	StatusFailed = state.StatusFailed
	// StatusWaiting: the gateway's ServiceNow budget held the message back
	// (the gateway paused, or its request rate spent for now); it comes
	// back when the budget says (Outcome.Retry). Not a failure.
	StatusWaiting = "waiting"
	// StatusUnknownRecord: ServiceNow answered 404 for a record no ticket
	// has mirrored (a replay, a probe, a sys_id nobody uses): logged and
	// counted (MetricUnknownRecord), nothing stored, the message done.
	StatusUnknownRecord = "unknown_record"
)

// MetricUnknownRecord counts, per batch, the messages for records that
// ServiceNow does not know and no ticket has seen (StatusUnknownRecord).
const MetricUnknownRecord = "UnknownRecord"

// Outcome is what happened to one message.
type Outcome struct {
	MessageID string
	Key       state.Key
	Source    string
	Number    string
	Version   int
	Status    string
	Reason    string
	JobID     string
	// Retry reports the message as a batch item failure, so SQS delivers it
	// again (and, after the maximum receives, moves it to the DLQ).
	Retry bool
	// Poison: the message is not an intake message.
	Poison       bool
	Fetched      bool
	FetchLatency time.Duration
	// JournalRead: the decision read the record's journal.
	JournalRead bool
	// Events are the types of the job events sent, in order.
	Events []string
	Err    error
}

// decision is a claimed version on its way through the lifecycle: what
// prepare found, what the dedup stage adds, what complete sends and stores.
type decision struct {
	o     Outcome
	g     registry.Gateway
	m     queue.IntakeMessage
	v     state.Version
	prev  state.Ticket
	token string
	now   time.Time
	res   state.Result
	plan  plan
	// journalProblem says why the journal could not be read.
	journalProblem string
	// pending is a job an unfinished attempt indexed, and so may have
	// sent the job.created of, without storing it (see pendingJob).
	pending *state.Job
	// resend is the end of a job an unfinished attempt recorded before it
	// sent its job.cancelled (state.Ending), to send again.
	resend *state.Ending
	// final, when set, is the outcome: a failure after the claim.
	final *Outcome
	// since is when the ticket's item was first written (its life began,
	// see firstEpisode); first, when not 0, is its first job's episode.
	since time.Time
	first int
}

// prepare runs one message up to the lifecycle decision: decode, gateway,
// fetch, claim, scope and the journal. It returns the decision to go on
// with, or nil and the message's final outcome. It never panics on bad
// input and records every outcome it can on the ticket.
func (p *Processor) prepare(ctx context.Context, rec events.SQSMessage) (*decision, Outcome) {
	var o Outcome
	o.MessageID = rec.MessageId
	var m queue.IntakeMessage
	if err := json.Unmarshal([]byte(rec.Body), &m); err != nil {
		return nil, poison(o, fmt.Errorf("decode intake message: %w", err))
	}
	if m.GatewayID == "" || m.Table == "" || m.SysID == "" {
		return nil, poison(o, errors.New("intake message without gateway_id, table or sys_id"))
	}
	if !slices.Contains(queue.Sources, m.Source) {
		// Ingest, the reconciler and the CLI always name theirs; the
		// job events carry it, and their contract knows only those.
		return nil, poison(o, fmt.Errorf("intake message with source %q, not one of %v", m.Source, queue.Sources))
	}
	o.Key = state.Key{GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID}
	o.Source = m.Source

	if !slices.Contains(registry.EventTypes, m.Table) {
		return nil, p.permanent(ctx, o, fmt.Sprintf("table %q is not handled", m.Table), nil)
	}
	if !servicenow.ValidSysID(m.SysID) {
		return nil, p.permanent(ctx, o, "sys_id is not a ServiceNow sys_id", nil)
	}
	g, err := p.gateways.Gateway(ctx, m.GatewayID)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, p.permanent(ctx, o, "unknown gateway", err)
	}
	if err != nil {
		return nil, p.transient(ctx, o, "read gateway", err)
	}

	// Cheap duplicates: a version at or below the decided one is stale
	// without a ServiceNow call. The hint is the Business Rule's (or the
	// reconciler's) sys_mod_count; without one the record is fetched.
	if m.SysModCount != nil {
		decided, ok, err := p.deps.Tickets.DecidedVersion(ctx, o.Key)
		if err != nil {
			return nil, p.transient(ctx, o, "read decided version", err)
		}
		if ok && *m.SysModCount <= decided {
			o.Version = *m.SysModCount
			o.Status, o.Reason = StatusStale, fmt.Sprintf("version %d already decided (decided %d), not fetched", *m.SysModCount, decided)
			return nil, o
		}
	}

	rec2, latency, err := p.fetch(ctx, g, m.Table, m.SysID)
	o.Fetched, o.FetchLatency = err == nil || latency > 0, latency
	if errors.Is(err, servicenow.ErrNotFound) {
		return nil, p.gone(ctx, o, err)
	}
	if errors.Is(err, servicenow.ErrForbidden) {
		// The integration user lacks a right: the gateway, not this
		// record, is wrong. Its budget pauses it until a probe finds the
		// right restored; the message waits with the others.
		return nil, p.transient(ctx, o, "fetch record (gateway misconfigured: "+forbiddenReason(err)+")", err)
	}
	if err != nil {
		return nil, p.transient(ctx, o, "fetch record", err)
	}
	v, err := state.VersionOf(m.Table, rec2)
	if err != nil {
		return nil, p.permanent(ctx, o, "record unusable", err)
	}
	o.Number, o.Version = v.Mirror.Number, v.SysModCount

	// Idempotency: claim this version.
	token := uuid.NewString()
	prev, err := p.deps.Tickets.Claim(ctx, state.Claim{
		Key: o.Key, Mirror: v.Mirror, SysModCount: v.SysModCount, SysUpdatedOn: v.SysUpdatedOn, CreatedOn: v.CreatedOn,
		Source: m.Source, WebhookID: m.WebhookID, Token: token, Lease: p.cfg.Lease,
	})
	switch {
	case errors.Is(err, state.ErrStale):
		o.Status, o.Reason = StatusStale, fmt.Sprintf("version %d already processed or in progress (last seen %d)", v.SysModCount, prev.SysModCount)
		return nil, o
	case errors.Is(err, state.ErrUnchanged):
		o.Status, o.Reason = StatusUnchanged, "mirrored fields unchanged"
		return nil, o
	case errors.Is(err, state.ErrBusy):
		o.Status, o.Reason, o.Retry, o.Err = StatusFailed, "an older version is being processed", true, err
		return nil, o
	case err != nil:
		return nil, p.transient(ctx, o, "claim", err)
	}
	// An unfinished attempt's claim is not what to decide against.
	d := &decision{o: o, g: g, m: m, v: v, prev: prev.Basis(), token: token, now: p.cfg.Now(), since: prev.FirstSeenAt}
	if d.since.IsZero() {
		d.since = d.now // the claim wrote the item
	}
	if prev.Status == state.StatusProcessing || prev.Status == state.StatusRetrying {
		d.resend = prev.Ending
	}
	if d.pending, err = p.pendingJob(ctx, d, prev); err != nil {
		return nil, p.release(ctx, d, "read job index", err)
	}
	if err := p.decide(ctx, d); err != nil {
		return nil, p.release(ctx, d, "read journal", err)
	}
	return d, Outcome{}
}

// pendingJob returns the job an unfinished attempt (the claim found the
// ticket processing or retrying) indexed without storing it: the job of
// the episode after the basis's, when the basis has no open job. That
// attempt may have sent its job.created before it crashed or failed to
// store its decision, so the engine may be working on it. In scope, the
// decision creates the same job again (same ids, which the engine drops);
// out of scope, it must cancel it, or the engine's job would never end.
func (p *Processor) pendingJob(ctx context.Context, d *decision, claimed state.Ticket) (*state.Job, error) {
	k, now := d.o.Key, d.now
	basis := claimed.Basis()
	if claimed.Status != state.StatusProcessing && claimed.Status != state.StatusRetrying || basis.Job.Open() {
		return nil, nil
	}
	var episode int
	if basis.Job != nil {
		episode = basis.Job.Episode + 1
		switch _, err := p.deps.Tickets.IndexedJob(ctx, jobIDFor(k, episode)); {
		case errors.Is(err, state.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		}
	} else {
		first, indexed, err := p.firstEpisode(ctx, k, d.since)
		if err != nil {
			return nil, err
		}
		if d.first = first; !indexed {
			return nil, nil
		}
		episode = first
	}
	id := jobIDFor(k, episode)
	created := queue.EventIDFor(k.GatewayID, k.Table, k.SysID, episode, 0, queue.EventJobCreated, "")
	return &state.Job{ID: id, State: state.JobOpen, Episode: episode, Sequence: 1, OpenedAt: now.UTC(),
		Events: []state.JobEventRecord{{Type: queue.EventJobCreated, Sequence: 1, EventID: created, At: now.UTC()}}}, nil
}

// lifeMargin separates the jobs of a ticket's earlier life from its own:
// a job indexed that long before the ticket's item was first written
// belongs to an item that expired (final for the ticket TTL, a day at the
// least). It absorbs clock differences between processors.
const lifeMargin = time.Hour

// firstEpisode is the episode of the first job of a ticket without one:
// 1, unless the job index holds jobs of an earlier life of the ticket (an
// item the ticket TTL deleted, the record back in scope since): then the
// episode after them, so that no job id or event id is used twice.
// indexed says that the episode's job is indexed already, by an attempt of
// this life (since is when the item was first written).
func (p *Processor) firstEpisode(ctx context.Context, k state.Key, since time.Time) (episode int, indexed bool, err error) {
	for n := 1; ; n++ {
		j, err := p.deps.Tickets.IndexedJob(ctx, jobIDFor(k, n))
		switch {
		case errors.Is(err, state.ErrNotFound):
			return n, false, nil
		case err != nil:
			return 0, false, fmt.Errorf("read job index: %w", err)
		case !j.CreatedAt.Before(since.Add(-lifeMargin)):
			return n, true, nil
		}
	}
}

// decide takes the lifecycle decision on a claimed version (see the
// package comment): scope, then what the version means for the ticket's
// job. It reads the journal only where an entry can matter.
func (p *Processor) decide(ctx context.Context, d *decision) error {
	v, table := d.v, d.m.Table
	st, why, due := scope(d.g, table, v, d.now)
	if d.pending != nil && (st == state.StatusOutOfScope || st == state.StatusExpired) {
		// The job an unfinished attempt may have created is the one to
		// cancel; complete stores it whole (the ticket never had it).
		d.prev.Job = d.pending
	} else {
		d.pending = nil
	}
	g, prev := d.g, d.prev
	res := &d.res
	res.Version = v.SysModCount
	if prev.Job != nil {
		res.JobID = prev.Job.ID
	}

	if prev.Job.Open() {
		if st == state.StatusOutOfScope || st == state.StatusExpired {
			d.plan.cancel = why
			res.Status, res.Reason = st, "job cancelled: "+why
			return nil
		}
		res.JobOpen = true
		if prev.ContentHash != "" {
			d.plan.changed = changedFields(prev.Mirror, v.Mirror)
		}
		news, err := p.journal(ctx, d)
		if err != nil {
			return err
		}
		d.plan.followUps = mentions(g, news)
		if len(d.plan.changed) == 0 && len(d.plan.followUps) == 0 {
			res.Status, res.Reason, res.Outcome = prev.Status, prev.Reason, StatusUnchanged
			return nil
		}
		var what []string
		if len(d.plan.changed) > 0 {
			what = append(what, "updated: "+strings.Join(d.plan.changed, ", "))
		}
		if n := len(d.plan.followUps); n > 0 {
			what = append(what, fmt.Sprintf("%d follow-up(s)", n))
		}
		res.Status, res.Reason = state.StatusAccepted, "job "+prev.Job.ID+" "+strings.Join(what, "; ")
		return nil
	}

	if st != "" {
		res.Status, res.Reason, res.Due = st, why, due
		return nil
	}

	auto := g.JobMode() == registry.ModeAutomatic
	eligible := auto && (prev.Job == nil || reentered(g, table, prev))
	var found []servicenow.JournalEntry
	if !eligible || prev.Status == state.StatusDeduplicated {
		news, err := p.journal(ctx, d)
		if err != nil {
			return err
		}
		found = mentions(g, news)
	} else if v.SysUpdatedOn > prev.JournalSeenAt {
		// The new job's snapshot is this version: entries written before
		// it are not news for the job; those of its very second may be.
		res.JournalSeenAt, res.JournalSeenIDs = v.SysUpdatedOn, nil
	}
	unlink := -1
	if prev.Status == state.StatusDeduplicated {
		unlink = slices.IndexFunc(found, func(e servicenow.JournalEntry) bool { return unlinks(e.Text, g.MentionToken()) })
	}
	dedupable := prev.Job == nil && table == registry.TableIncident
	switch {
	case unlink >= 0:
		d.plan = plan{create: true, reason: queue.ReasonUnlinked, message: message(found[unlink]),
			duplicateOf: prev.DuplicateOfNumber, followUps: slices.Delete(slices.Clone(found), unlink, unlink+1)}
	case eligible:
		d.plan = plan{create: true, reason: createReason(table, prev), dedup: dedupable, followUps: found}
	case len(found) > 0:
		d.plan = plan{create: true, reason: queue.ReasonMention, message: message(found[0]), dedup: dedupable, followUps: found[1:]}
	case !auto:
		res.Status = state.StatusAwaitingMention
		res.Reason = fmt.Sprintf("semi-automatic gateway: waiting for a comment or work note mentioning %s", g.MentionToken())
	default:
		res.Status = state.StatusAccepted
		res.Reason = fmt.Sprintf("job %s ended (%s); a comment or work note mentioning %s starts a new one", prev.Job.ID, prev.Job.State, g.MentionToken())
	}
	if !d.plan.create && prev.ContentHash == v.Mirror.Hash() && res.Status == prev.Status {
		res.Outcome = StatusUnchanged
	}
	return nil
}

// journal reads the comments and work notes newer than the ticket has seen
// and records the new position on the result.
func (p *Processor) journal(ctx context.Context, d *decision) ([]servicenow.JournalEntry, error) {
	since, err := servicenow.ParseTime(d.prev.JournalSeenAt)
	if err != nil {
		since = servicenow.Time{} // unreadable: read everything, seen ids still drop repeats
	}
	ctx, cancel := p.snowContext(ctx)
	defer cancel()
	var entries []servicenow.JournalEntry
	err = p.withInstance(ctx, d.g, func(inst Instance) error {
		var err error
		entries, err = inst.JournalEntries(ctx, d.m.SysID, since)
		return err
	})
	if errors.Is(err, servicenow.ErrForbidden) {
		// No retry cures it, and the record's own news (an update, a
		// cancellation) must not wait for it: decide without the journal.
		d.o.Err, d.journalProblem = err, "comments and work notes unreadable: "+forbiddenReason(err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d.o.JournalRead = true
	news, at, ids := journalSince(d.prev, entries)
	if at != "" && (at != d.prev.JournalSeenAt || len(ids) != len(d.prev.JournalSeenIDs)) {
		d.res.JournalSeenAt, d.res.JournalSeenIDs = at, ids
	}
	return news, nil
}

// dedup claims the fingerprint of an incident about to get its first job:
// when another incident of the group holds it, this one is its duplicate.
// Handle runs it for a batch's incidents in sys_created_on order, so the
// earliest-created incident of a group is the primary.
func (p *Processor) dedup(ctx context.Context, d *decision) {
	if !d.plan.dedup {
		return
	}
	window := dedupWindow(d.g)
	fp := fingerprint(d.v.Mirror)
	if window <= 0 || fp == "" {
		return
	}
	d.res.Fingerprint = fp
	owner := state.First{Table: d.m.Table, SysID: d.m.SysID, Number: d.v.Mirror.Number}
	first, dup, err := p.deps.Tickets.ClaimFingerprint(ctx, d.g.ID, fp, owner, window)
	if err != nil {
		out := p.release(ctx, d, "dedup window", err)
		d.final = &out
		return
	}
	if dup {
		d.plan = plan{}
		d.res.Status = state.StatusDeduplicated
		d.res.Reason = fmt.Sprintf("same short description and CI as %s within %s", first.Number, window)
		d.res.DuplicateOf, d.res.DuplicateOfNumber = first.SysID, first.Number
	}
}

// complete sends the decision's events, writes the notes and stores the
// decision.
func (p *Processor) complete(ctx context.Context, d *decision) Outcome {
	if d.final != nil {
		return *d.final
	}
	o, res, prev := d.o, &d.res, d.prev
	var evs []queue.JobEvent
	switch {
	case d.plan.create:
		episode := d.first
		if prev.Job != nil {
			episode = prev.Job.Episode + 1
		} else if episode == 0 {
			var err error
			if episode, _, err = p.firstEpisode(ctx, o.Key, d.since); err != nil {
				return p.release(ctx, d, "read job index", err)
			}
		}
		res.JobID = jobIDFor(o.Key, episode)
		res.Status, res.Reason, res.JobOpen, res.Outcome = state.StatusAccepted, d.plan.reason, true, ""
		created := d.event(queue.EventJobCreated, res.JobID, episode, 1, "")
		created.Reason, created.Message, created.DuplicateOf = d.plan.reason, d.plan.message, d.plan.duplicateOf
		evs = append(evs, created)
		evs = append(evs, d.followUps(res.JobID, episode, 2)...)
		if err := p.deps.Tickets.IndexJob(ctx, res.JobID, o.Key); err != nil {
			return p.release(ctx, d, "index job", err)
		}
		res.Job = &state.Job{ID: res.JobID, State: state.JobOpen, Episode: episode, Sequence: len(evs), OpenedAt: d.now.UTC()}
		res.Job.Events = records(evs, d.now)
	case d.plan.cancel != "":
		ev := d.event(queue.EventJobCancelled, prev.Job.ID, prev.Job.Episode, prev.Job.Sequence+1, "")
		ev.Reason = d.plan.cancel
		evs = append(evs, ev)
		res.EndJob = state.JobCancelled
	case prev.Job.Open():
		seq := prev.Job.Sequence + 1
		if len(d.plan.changed) > 0 {
			ev := d.event(queue.EventJobUpdated, prev.Job.ID, prev.Job.Episode, seq, "")
			ev.ChangedFields = d.plan.changed
			evs = append(evs, ev)
			seq++
		}
		evs = append(evs, d.followUps(prev.Job.ID, prev.Job.Episode, seq)...)
	}
	switch {
	case d.pending != nil && len(evs) > 0:
		j := *d.pending
		j.Events = append(j.Events, records(evs, d.now)...)
		j.Sequence = evs[len(evs)-1].Sequence
		j.State, j.EndedAt = state.JobCancelled, d.now.UTC()
		res.Job, res.EndJob = &j, ""
	case res.Job == nil && len(evs) > 0:
		res.Base, res.Events = prev.Job, records(evs, d.now)
	case res.Job == nil && prev.EndedByAttempt():
		// An unfinished attempt ended this job (its job.cancelled may be
		// with the engine); the ticket has not stored that yet.
		res.Job = prev.Job
	}
	if d.plan.cancel != "" {
		// Before the job.cancelled leaves: should this attempt not
		// finish, the next one decides from the job as ended.
		ended := res.Job // the pending job's
		if ended == nil {
			j := res.After(d.now)
			ended = &j
		}
		if err := p.deps.Tickets.MarkEnding(ctx, o.Key, d.token, state.Ending{Job: *ended, Status: res.Status, Reason: res.Reason, Why: d.plan.cancel}); err != nil {
			return p.release(ctx, d, "record the job's end", err)
		}
	}
	sends := evs
	if e := d.resend; e != nil {
		// The job.cancelled an unfinished attempt recorded may not have
		// left: send it again (same id) before anything else, so the
		// engine's job ends before any next one starts.
		again := d.event(queue.EventJobCancelled, e.Job.ID, e.Job.Episode, e.Job.Sequence, "")
		again.Reason = e.Why
		sends = append([]queue.JobEvent{again}, evs...)
	}
	for _, ev := range sends {
		attrs := map[string]string{
			queue.AttrJobID: ev.JobID, queue.AttrGatewayID: ev.GatewayID, queue.AttrTable: ev.Table,
			queue.AttrEventType: ev.Type, queue.AttrEventID: ev.EventID,
		}
		if err := p.deps.Dispatch.SendJSON(ctx, ev, attrs); err != nil {
			return p.release(ctx, d, "dispatch "+ev.Type, err)
		}
		o.Events = append(o.Events, ev.Type)
	}
	switch {
	case d.plan.create:
		res.WriteBack = p.note(ctx, d, d.g.WriteBack, fmt.Sprintf("snowgate: gateway %q (%s) accepted %s for automation, job %s.", d.g.Name, d.g.ID, d.v.Mirror.Number, res.JobID))
	case res.Status == state.StatusDeduplicated && d.g.DedupNote() && (prev.Status != state.StatusDeduplicated || prev.DuplicateOf != res.DuplicateOf):
		res.WriteBack = p.note(ctx, d, true, fmt.Sprintf("snowgate: gateway %q linked this incident to %s, the first with the same short description and configuration item; %s works on that one. Comment \"%s %s\" to give this incident a job of its own.",
			d.g.Name, res.DuplicateOfNumber, res.DuplicateOfNumber, d.g.MentionToken(), registry.UnlinkCommand))
	}

	if d.journalProblem != "" && res.Outcome == "" {
		res.Reason += " (" + d.journalProblem + ")"
	}
	after := state.Ticket{Status: res.Status, Reason: res.Reason, Mirror: d.v.Mirror, ContentHash: d.v.Mirror.Hash()}
	res.Prior = state.PriorOf(after)
	err := p.deps.Tickets.Finish(ctx, o.Key, d.token, *res)
	switch {
	case errors.Is(err, state.ErrClaimLost):
		// Our claim expired and another processor took over; it will store
		// its own decision on the same content.
		o.Err = err
	case err != nil:
		return p.release(ctx, d, "store decision", err)
	}
	o.Status, o.Reason, o.JobID = res.Status, res.Reason, res.JobID
	if res.Outcome != "" {
		o.Status = res.Outcome
	}
	return o
}

// event is a job event on the decided version, its id derived (see
// queue.EventIDFor) so that a re-send carries the same one. A job.created,
// a job.cancelled and a follow-up happen once per episode (a follow-up
// once per entry), whatever version a retry fetched, so their ids leave
// the version out; a job.updated is one per version.
func (d *decision) event(typ, jobID string, episode, seq int, entry string) queue.JobEvent {
	version := 0
	if typ == queue.EventJobUpdated {
		version = d.v.SysModCount
	}
	k := d.o.Key
	return queue.JobEvent{
		Type: typ, SchemaVersion: queue.EventSchemaVersion,
		EventID: queue.EventIDFor(k.GatewayID, k.Table, k.SysID, episode, version, typ, entry),
		JobID:   jobID, Sequence: seq, Episode: episode,
		GatewayID: d.g.ID, GatewayName: d.g.Name, Org: d.g.Org, WebhookID: d.m.WebhookID,
		Table: k.Table, SysID: k.SysID, Number: d.v.Mirror.Number, SysModCount: d.v.SysModCount,
		Source: d.m.Source, RequestID: d.m.RequestID, OccurredAt: d.now.UTC(),
		EscalationGroup: d.g.EscalationGroupRef(), Ticket: jobTicket(d.v),
	}
}

// followUps are the plan's follow-up events, numbered from seq.
func (d *decision) followUps(jobID string, episode, seq int) []queue.JobEvent {
	out := make([]queue.JobEvent, 0, len(d.plan.followUps))
	for _, e := range d.plan.followUps {
		ev := d.event(queue.EventJobFollowUp, jobID, episode, seq, e.SysID)
		ev.Message = message(e)
		out = append(out, ev)
		seq++
	}
	return out
}

func records(evs []queue.JobEvent, at time.Time) []state.JobEventRecord {
	out := make([]state.JobEventRecord, 0, len(evs))
	for _, ev := range evs {
		out = append(out, state.JobEventRecord{Type: ev.Type, Sequence: ev.Sequence, EventID: ev.EventID, At: at.UTC()})
	}
	return out
}

// noteWait is how long a work note may wait for the gateway's budget,
// within the invocation's deadline: a pause of an outage's first trip
// (10 s) or of a short Retry-After.
const noteWait = 15 * time.Second

// note adds a work note once and says how it went; a failure does not
// fail the message (the events are on their way), it is stored on the
// ticket. When the note was the record's only change since the fetch, the
// version it produced is recorded, so its echo is stale at once.
func (p *Processor) note(ctx context.Context, d *decision, on bool, text string) string {
	if !on {
		return "off"
	}
	ctx, cancel := p.snowContext(ctx)
	defer cancel()
	// The events are on their way and the note has no message of its own
	// to wait with: a short pause of the gateway is waited out here.
	ctx = connect.WithWait(ctx, noteWait)
	var w servicenow.JournalWrite
	// The version fetched is the one the note's bump must pass.
	err := p.withInstance(ctx, d.g, func(inst Instance) error {
		var err error
		w, err = inst.WriteJournal(ctx, d.m.Table, d.m.SysID, servicenow.FieldWorkNotes, text, d.v.SysModCount)
		return err
	})
	if err != nil {
		return "failed: " + err.Error()
	}
	if w.ModCount == d.v.SysModCount+1 {
		d.res.SeenVersion = w.ModCount
	}
	return "done"
}

// fetch reads the record, refreshing the gateway's credentials once after
// an authentication failure. The latency is the ServiceNow call's, without
// the wait for the instance's concurrency bound.
func (p *Processor) fetch(ctx context.Context, g registry.Gateway, table, sysID string) (servicenow.Record, time.Duration, error) {
	fields := servicenow.IncidentFields
	if table == registry.TableChangeRequest {
		fields = servicenow.ChangeRequestFields
	}
	ctx, cancel := p.snowContext(ctx)
	defer cancel()
	var (
		rec     servicenow.Record
		latency time.Duration
	)
	err := p.withInstance(ctx, g, func(inst Instance) error {
		start := time.Now()
		var err error
		rec, err = inst.Get(ctx, table, sysID, fields...)
		latency = time.Since(start)
		return err
	})
	return rec, latency, err
}

// snowContext ends ServiceNow calls Reserve before the invocation's
// deadline, so a slow or throttled instance leaves time to record the
// outcome and report the message.
func (p *Processor) snowContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-p.cfg.Reserve))
	}
	return context.WithCancel(ctx)
}

// forbiddenReason is the 403's own message, which names the table and the
// right, without the call's prefix.
func forbiddenReason(err error) string {
	var se *servicenow.Error
	if errors.As(err, &se) {
		return strings.TrimPrefix(se.Error(), "servicenow: ")
	}
	return err.Error()
}

func jobTicket(v state.Version) queue.JobTicket {
	m := v.Mirror
	return queue.JobTicket{
		Number: m.Number, State: m.State, Priority: m.Priority,
		ShortDescription: m.ShortDescription, Description: m.Description,
		AssignmentGroup: m.AssignmentGroup, AssignmentGroupName: m.AssignmentGroupName,
		Environment: m.Environment, ConfigurationItem: m.ConfigurationItem, Active: m.Active,
		SysUpdatedOn: v.SysUpdatedOn, Type: m.Type, Approval: m.Approval,
		StartDate: m.StartDate, EndDate: m.EndDate,
		DescriptionSHA256: m.DescriptionSHA256, ShortDescriptionSHA256: m.ShortDescriptionSHA256,
	}
}

func poison(o Outcome, err error) Outcome {
	o.Status, o.Reason, o.Retry, o.Poison, o.Err = StatusFailed, "not an intake message", true, true, err
	return o
}

// permanent stores a failure that retrying cannot cure; the message is done.
func (p *Processor) permanent(ctx context.Context, o Outcome, reason string, cause error) Outcome {
	o.Status, o.Reason, o.Err = StatusFailed, reason, cause
	if err := p.deps.Tickets.RecordFailure(ctx, o.Key, reason, true, o.Source); err != nil {
		// Unrecorded, the failure would be silent: retry the message.
		o.Retry, o.Err = true, errors.Join(cause, err)
	}
	return o
}

// gone handles a 404: stored as a permanent failure on the record's
// ticket, or, for a record no ticket has seen, only logged and counted:
// a stray sys_id must not leave a ticket behind forever.
func (p *Processor) gone(ctx context.Context, o Outcome, cause error) Outcome {
	const reason = "not found in ServiceNow: deleted, or hidden from the integration user by an ACL"
	o.Status, o.Reason, o.Err = StatusFailed, reason, cause
	err := p.deps.Tickets.RecordGone(ctx, o.Key, reason, o.Source)
	switch {
	case errors.Is(err, state.ErrNotFound):
		o.Status, o.Reason = StatusUnknownRecord, "not found in ServiceNow, and no ticket has seen the record: not stored"
	case err != nil:
		o.Retry, o.Err = true, errors.Join(cause, err)
	}
	return o
}

// transient notes a failure before any claim and retries the message.
func (p *Processor) transient(ctx context.Context, o Outcome, step string, cause error) Outcome {
	o = retrying(o, step, cause)
	if err := p.deps.Tickets.DeferFailure(ctx, o.Key, step+": "+cause.Error(), o.Source, retryAt(cause, p.cfg.Now())); err != nil {
		o.Err = errors.Join(cause, err)
	}
	return o
}

// release gives a claimed version back after a transient failure and
// retries the message; the ticket keeps what the attempt was based on.
func (p *Processor) release(ctx context.Context, d *decision, step string, cause error) Outcome {
	o := retrying(d.o, step, cause)
	if err := p.deps.Tickets.ReleaseUntil(ctx, o.Key, d.token, step+": "+cause.Error(), state.PriorOf(d.prev), retryAt(cause, p.cfg.Now())); err != nil {
		// The claim then expires after its lease; the retry takes it over.
		o.Err = errors.Join(cause, err)
	}
	return o
}

// retrying is the outcome of a message to retry after step failed with
// cause: waiting when the gateway's budget held it back, failed otherwise.
func retrying(o Outcome, step string, cause error) Outcome {
	o.Retry, o.Err = true, cause
	if servicenow.IsNotAdmitted(cause) {
		o.Status, o.Reason = StatusWaiting, step+": "+cause.Error()
		return o
	}
	o.Status, o.Reason = StatusFailed, step+" failed, will retry"
	return o
}

// sameRecord groups a batch's messages by record: lead[i] is the message
// that is processed for message i's record (i itself for a lead, -1 for
// one that is not an intake message, left to prepare). The lead is the
// message with the highest sys_mod_count hint, one without a hint counting
// highest (it asks for whatever is current), the first of equals: every
// message fetches the current version, so one fetch serves them all, and
// a lead that is a cheap duplicate means the others are too.
func sameRecord(recs []events.SQSMessage) []int {
	lead := make([]int, len(recs))
	byKey := map[state.Key]int{}
	hint := func(m queue.IntakeMessage) int {
		if m.SysModCount == nil {
			return int(^uint(0) >> 1)
		}
		return *m.SysModCount
	}
	msgs := make([]queue.IntakeMessage, len(recs))
	for i, rec := range recs {
		lead[i] = -1
		if err := json.Unmarshal([]byte(rec.Body), &msgs[i]); err != nil || msgs[i].GatewayID == "" || msgs[i].Table == "" || msgs[i].SysID == "" {
			continue
		}
		k := state.Key{GatewayID: msgs[i].GatewayID, Table: msgs[i].Table, SysID: msgs[i].SysID}
		j, ok := byKey[k]
		if !ok || hint(msgs[i]) > hint(msgs[j]) {
			byKey[k] = i
		}
	}
	for i := range recs {
		if lead[i] == -1 && msgs[i].SysID != "" {
			if j, ok := byKey[state.Key{GatewayID: msgs[i].GatewayID, Table: msgs[i].Table, SysID: msgs[i].SysID}]; ok {
				lead[i] = j
			}
		}
	}
	return lead
}

// duplicate is the outcome of a message whose record another message of
// the batch (its lead) is processed for: stale, without any call. Should
// the lead fail, its retry fetches the current version, which covers this
// message's.
func duplicate(rec, lead events.SQSMessage) Outcome {
	o := Outcome{MessageID: rec.MessageId, Status: StatusStale, Reason: "same record as message " + lead.MessageId + " in this batch, fetched once"}
	var m queue.IntakeMessage
	if json.Unmarshal([]byte(rec.Body), &m) == nil {
		o.Key, o.Source = state.Key{GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID}, m.Source
		if m.SysModCount != nil {
			o.Version = *m.SysModCount
		}
	}
	return o
}
