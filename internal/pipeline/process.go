package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

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
)

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
	Err          error
}

// process runs one message through the pipeline. It never panics on bad
// input and records every outcome it can on the ticket.
func (p *Processor) process(ctx context.Context, rec events.SQSMessage) (o Outcome) {
	o.MessageID = rec.MessageId
	var m queue.IntakeMessage
	if err := json.Unmarshal([]byte(rec.Body), &m); err != nil {
		return poison(o, fmt.Errorf("decode intake message: %w", err))
	}
	if m.GatewayID == "" || m.Table == "" || m.SysID == "" {
		return poison(o, errors.New("intake message without gateway_id, table or sys_id"))
	}
	o.Key = state.Key{GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID}
	o.Source = m.Source

	if !slices.Contains(registry.EventTypes, m.Table) {
		return p.permanent(ctx, o, fmt.Sprintf("table %q is not handled", m.Table), nil)
	}
	if !servicenow.ValidSysID(m.SysID) {
		return p.permanent(ctx, o, "sys_id is not a ServiceNow sys_id", nil)
	}
	g, err := p.gateway(ctx, m.GatewayID)
	if errors.Is(err, registry.ErrNotFound) {
		return p.permanent(ctx, o, "unknown gateway", err)
	}
	if err != nil {
		return p.transient(ctx, o, "read gateway", err)
	}

	rec2, latency, err := p.fetch(ctx, g, m.Table, m.SysID)
	o.Fetched, o.FetchLatency = err == nil || latency > 0, latency
	if errors.Is(err, servicenow.ErrNotFound) {
		return p.permanent(ctx, o, "not found in ServiceNow: deleted, or hidden from the integration user by an ACL", err)
	}
	if errors.Is(err, servicenow.ErrForbidden) {
		// Retries would spend the budget on the same refusal.
		return p.permanent(ctx, o, "gateway misconfigured: "+forbiddenReason(err), err)
	}
	if err != nil {
		return p.transient(ctx, o, "fetch record", err)
	}
	v, err := state.VersionOf(m.Table, rec2)
	if err != nil {
		return p.permanent(ctx, o, "record unusable", err)
	}
	o.Number, o.Version = v.Mirror.Number, v.SysModCount

	// Idempotency: claim this version.
	token := uuid.NewString()
	prev, err := p.deps.Tickets.Claim(ctx, state.Claim{
		Key: o.Key, Mirror: v.Mirror, SysModCount: v.SysModCount, SysUpdatedOn: v.SysUpdatedOn,
		Source: m.Source, WebhookID: m.WebhookID, Token: token, Lease: p.cfg.Lease,
	})
	switch {
	case errors.Is(err, state.ErrStale):
		o.Status, o.Reason = StatusStale, fmt.Sprintf("version %d already processed or in progress (last seen %d)", v.SysModCount, prev.SysModCount)
		return o
	case errors.Is(err, state.ErrUnchanged):
		o.Status, o.Reason = StatusUnchanged, "mirrored fields unchanged"
		return o
	case errors.Is(err, state.ErrBusy):
		o.Status, o.Reason, o.Retry, o.Err = StatusFailed, "an older version is being processed", true, err
		return o
	case err != nil:
		return p.transient(ctx, o, "claim", err)
	}
	return p.decide(ctx, o, g, m, v, prev, token)
}

// decide runs scope, dedup, dispatch and write-back on a claimed version
// and stores the decision.
func (p *Processor) decide(ctx context.Context, o Outcome, g registry.Gateway, m queue.IntakeMessage, v state.Version, prev state.Ticket, token string) Outcome {
	now := p.cfg.Now()
	res := state.Result{Version: v.SysModCount}
	res.Status, res.Reason, res.Due = scope(g, m.Table, v, now)

	if res.Status == "" && m.Table == registry.TableIncident {
		if window := dedupWindow(g); window > 0 {
			if fp := fingerprint(v.Mirror); fp != "" {
				res.Fingerprint = fp
				owner := state.First{Table: m.Table, SysID: m.SysID, Number: v.Mirror.Number}
				first, dup, err := p.deps.Tickets.ClaimFingerprint(ctx, g.ID, fp, owner, window)
				if err != nil {
					return p.release(ctx, o, token, "dedup window", err)
				}
				if dup {
					res.Status = state.StatusDeduplicated
					res.Reason = fmt.Sprintf("same short description and CI as %s within %s", first.Number, window)
					res.DuplicateOf, res.DuplicateOfNumber = first.SysID, first.Number
				}
			}
		}
	}

	if res.Status == "" {
		res.Status = state.StatusAccepted
		res.Reason = dispatchReason(prev, v.Mirror)
		res.JobID = jobID(o.Key, prev, v.Mirror.Hash())
		job := queue.JobRequest{
			JobID: res.JobID, GatewayID: g.ID, GatewayName: g.Name, WebhookID: m.WebhookID,
			Table: m.Table, SysID: m.SysID, Number: v.Mirror.Number, SysModCount: v.SysModCount,
			Reason: res.Reason, Source: m.Source, RequestID: m.RequestID, RequestedAt: now.UTC(),
			EscalationGroup: g.EscalationGroupRef(), Ticket: jobTicket(v),
		}
		attrs := map[string]string{queue.AttrJobID: res.JobID, queue.AttrGatewayID: g.ID, queue.AttrTable: m.Table}
		if err := p.deps.Dispatch.SendJSON(ctx, job, attrs); err != nil {
			return p.release(ctx, o, token, "dispatch", err)
		}
		res.WriteBack = p.writeBack(ctx, g, m, v, res.JobID)
	}

	err := p.deps.Tickets.Finish(ctx, o.Key, token, res)
	switch {
	case errors.Is(err, state.ErrClaimLost):
		// Our claim expired and another processor took over; it will store
		// its own decision on the same content.
		o.Err = err
	case err != nil:
		return p.release(ctx, o, token, "store decision", err)
	}
	o.Status, o.Reason, o.JobID = res.Status, res.Reason, res.JobID
	return o
}

// writeBack adds the work note and says how it went; a failure does not
// fail the message (the job is on its way), it is stored on the ticket.
func (p *Processor) writeBack(ctx context.Context, g registry.Gateway, m queue.IntakeMessage, v state.Version, jobID string) string {
	if !g.WriteBack {
		return "off"
	}
	note := fmt.Sprintf("snowgate: gateway %q (%s) accepted %s for automation, job %s.", g.Name, g.ID, v.Mirror.Number, jobID)
	ctx, cancel := p.snowContext(ctx)
	defer cancel()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var inst Instance
		if inst, err = p.deps.ServiceNow.Connect(ctx, g); err != nil {
			break
		}
		// The version fetched is the one the note's bump must pass.
		err = p.call(ctx, g, func() error {
			_, err := inst.WriteJournal(ctx, m.Table, m.SysID, servicenow.FieldWorkNotes, note, v.SysModCount)
			return err
		})
		// A write that may have been stored is never sent again here,
		// whatever refused the look in the journal.
		if !isAuthFailure(err) || attempt > 0 || errors.Is(err, servicenow.ErrJournalUnconfirmed) {
			break
		}
		p.deps.ServiceNow.Reset(g)
	}
	if err != nil {
		return "failed: " + err.Error()
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
		err     error
	)
	for attempt := 0; attempt < 2; attempt++ {
		var inst Instance
		if inst, err = p.deps.ServiceNow.Connect(ctx, g); err != nil {
			return nil, 0, err
		}
		err = p.call(ctx, g, func() error {
			start := time.Now()
			var err error
			rec, err = inst.Get(ctx, table, sysID, fields...)
			latency = time.Since(start)
			return err
		})
		if !isAuthFailure(err) || attempt > 0 {
			break
		}
		p.deps.ServiceNow.Reset(g)
	}
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

func isAuthFailure(err error) bool {
	var se *servicenow.Error
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized
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

// transient notes a failure before any claim and retries the message.
func (p *Processor) transient(ctx context.Context, o Outcome, step string, cause error) Outcome {
	o.Status, o.Reason, o.Retry, o.Err = StatusFailed, step+" failed, will retry", true, cause
	if err := p.deps.Tickets.RecordFailure(ctx, o.Key, step+": "+cause.Error(), false, o.Source); err != nil {
		o.Err = errors.Join(cause, err)
	}
	return o
}

// release gives a claimed version back after a transient failure and
// retries the message.
func (p *Processor) release(ctx context.Context, o Outcome, token, step string, cause error) Outcome {
	o.Status, o.Reason, o.Retry, o.Err = StatusFailed, step+" failed, will retry", true, cause
	if err := p.deps.Tickets.Release(ctx, o.Key, token, step+": "+cause.Error()); err != nil {
		// The claim then expires after its lease; the retry takes it over.
		o.Err = errors.Join(cause, err)
	}
	return o
}
