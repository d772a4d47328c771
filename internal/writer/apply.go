package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/contract"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// errRecordClosed: a person closed or cancelled the record while the
// result was on its way; resolving or reassigning it now would undo that.
var errRecordClosed = errors.New("the record is closed")

// apply takes one result message to its outcome.
func (w *Writer) apply(ctx context.Context, rec events.SQSMessage) Outcome {
	o := Outcome{MessageID: rec.MessageId}
	var r queue.JobResult
	if err := json.Unmarshal([]byte(rec.Body), &r); err != nil {
		return poison(o, fmt.Errorf("%w: not JSON: %w", queue.ErrMalformedResult, err))
	}
	o.JobID, o.ResultID, o.Status = r.JobID, r.ResultID, r.Status
	// The published schema, not just the Go type: a field the contract
	// does not know (a misspelt "sumary") is refused, not silently dropped.
	if err := contract.ValidateResult([]byte(rec.Body)); err != nil {
		return poison(o, err)
	}
	if err := r.Validate(); err != nil {
		return poison(o, err)
	}

	key, err := w.deps.Tickets.JobTicketKey(ctx, r.JobID)
	if errors.Is(err, state.ErrNotFound) {
		o.Outcome, o.Applied, o.Err = OutcomeUnknownJob, "unknown job id: dropped", err
		return o
	}
	if err != nil {
		return retry(o, "find the job's ticket", err)
	}
	o.Key = key
	t, err := w.deps.Tickets.TicketForResult(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		o.Outcome, o.Applied, o.Err = OutcomeUnknownJob, "the job's ticket is gone: dropped", err
		return o
	}
	if err != nil {
		return retry(o, "read the ticket", err)
	}
	if t.Applied(r.ResultID) {
		o.Outcome, o.Applied = OutcomeDuplicate, "already applied"
		return o
	}
	if t.Job == nil || t.Job.ID != r.JobID {
		if t.Job == nil || t.ClaimLive(w.cfg.Now()) {
			// The processor indexes a job before it sends job.created and
			// records it on the ticket after: a quick engine can answer in
			// between.
			return retry(o, "wait for the job on the ticket", errors.New("the job is not recorded on its ticket yet"))
		}
		current := t.Job.ID
		return w.record(ctx, o, key, r, OutcomeNotWritten, "job is no longer the ticket's current one (now "+current+"): not written", "", true)
	}

	g, err := w.gateways.Gateway(ctx, key.GatewayID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return w.record(ctx, o, key, r, OutcomeNotWritten, "gateway deleted: not written", "", false)
	case err != nil:
		return retry(o, "read the gateway", err)
	case !g.Active:
		return w.record(ctx, o, key, r, OutcomeNotWritten, "gateway inactive: not written", "", false)
	}
	switch {
	case t.Job.State == state.JobOpen:
	case t.Job.EndedBy == r.ResultID:
		// This result ended the job before its writes (a redelivery):
		// carry on with the steps not done yet.
	case t.Job.State == state.JobCancelled:
		return w.record(ctx, o, key, r, OutcomeCancelled, appliedJobCancelled, "", false)
	default:
		return w.record(ctx, o, key, r, OutcomeNotWritten, "job already "+t.Job.State+": not written", "", false)
	}

	p := planFor(g, key.Table, r)
	progress, err := w.deps.Tickets.StartResult(ctx, r.JobID, r.ResultID)
	var busy *state.ResultBusyError
	if errors.As(err, &busy) {
		// Another delivery is writing it; it is usually applied by the
		// time this one comes back.
		o = retry(o, "start the result", err)
		o.RetryAfter = max(0, busy.Until.Sub(w.cfg.Now()))
		return o
	}
	if err != nil {
		return retry(o, "start the result", err)
	}
	defer func() {
		if err := w.deps.Tickets.ReleaseResult(context.WithoutCancel(ctx), progress); err != nil {
			w.log.WarnContext(ctx, "release the result's lease; its redelivery waits for the lease to end", "result_id", r.ResultID, "error", err.Error())
		}
	}()
	if p.JobState != "" && p.JobState != state.JobOpen {
		// Ended before the writes: the echo of our resolve or reassignment
		// must not find an open job, or it reads as a person's close.
		err := w.deps.Tickets.EndJobForResult(ctx, key, r.JobID, r.ResultID, p.JobState)
		switch {
		case errors.Is(err, state.ErrJobChanged):
			// Cancelled or ended meanwhile: recorded, not written.
			return w.record(ctx, o, key, r, OutcomeNotWritten, "the job ended meanwhile: not written", "", true)
		case err != nil:
			return retry(o, "end the job", err)
		}
	}
	snowCtx, cancel := w.snowContext(ctx)
	defer cancel()
	var done []string
	// known is the record as the last step left it, so the next step need
	// not read it again.
	var known servicenow.Record
	for _, s := range p.Steps {
		if !progress.Done(s.Name) {
			var err error
			if known, err = w.runStep(snowCtx, g, key, progress, s, known); err != nil {
				return w.stepFailed(ctx, o, key, r, done, s, err)
			}
			if err := w.deps.Tickets.ResultStepDone(ctx, r.JobID, r.ResultID, s.Name); err != nil {
				// The step is done in ServiceNow but not recorded: the
				// retry looks in the journal before writing it again.
				return retry(o, "record step "+s.Name, err)
			}
		}
		done = append(done, s.Says)
	}
	applied := strings.Join(done, ", ")
	if applied == "" {
		applied = appliedNothing
	}
	if p.Note != "" {
		applied += "; " + p.Note
	}
	return w.record(ctx, o, key, r, OutcomeApplied, applied, p.JobState, false)
}

// record stores the result on the ticket, with the job's new state.
func (w *Writer) record(ctx context.Context, o Outcome, key state.Key, r queue.JobResult, outcome, applied, jobState string, anyJob bool) Outcome {
	o.Outcome, o.Applied = outcome, applied
	set, err := w.deps.Tickets.FinishResult(ctx, key, state.ResultFinish{
		JobID:    r.JobID,
		Record:   state.JobResultRecord{ResultID: r.ResultID, Status: r.Status, At: w.cfg.Now().UTC(), Applied: applied},
		JobState: jobState,
		AnyJob:   anyJob,
	})
	switch {
	case errors.Is(err, state.ErrResultApplied):
		// A concurrent delivery of the same result finished first.
		o.Outcome, o.Applied = OutcomeDuplicate, "already applied"
	case errors.Is(err, state.ErrJobChanged):
		// A new episode started while we wrote: record it against the
		// ticket whatever its job is.
		return w.record(ctx, o, key, r, outcome, applied+" (the ticket's job changed meanwhile)", "", true)
	case err != nil:
		return retry(o, "record the result", err)
	}
	o.JobState = set
	return o
}

// stepFailed turns a failed step into the result's outcome.
func (w *Writer) stepFailed(ctx context.Context, o Outcome, key state.Key, r queue.JobResult, done []string, s step, err error) Outcome {
	o.SnowFailure = true
	prefix := ""
	if len(done) > 0 {
		prefix = strings.Join(done, ", ") + "; "
	}
	switch {
	case errors.Is(err, errRecordClosed):
		// The processor sees the close and cancels the job.
		o = w.record(ctx, o, key, r, OutcomeNotWritten, prefix+"record closed in ServiceNow meanwhile: "+s.Says+" not written", "", false)
		o.SnowFailure = false
	case errors.Is(err, servicenow.ErrNotFound):
		o = w.record(ctx, o, key, r, OutcomeRecordGone, prefix+"record not found in ServiceNow (deleted, or hidden by an ACL): "+s.Says+" not written", "", false)
	case errors.Is(err, servicenow.ErrJournalNotStored):
		o = w.record(ctx, o, key, r, OutcomeMisconfigured, prefix+"gateway misconfigured: "+s.Says+" refused: "+refusal(err), "", false)
	default:
		// A 403 included: the budget pauses the gateway until a probe
		// finds the right restored, and the result waits for it.
		o = retry(o, "write "+s.Name, err)
		o.RetryAfter = connect.RetryAfter(err, w.cfg.Now())
		return o
	}
	if o.Err == nil {
		o.Err = err
	}
	return o
}

// runStep writes one step, after the look in the journal that a resumed
// result needs, and records the version it produced on the ticket. known
// is the record as the previous step left it (nil: read it). It returns
// the record as this step leaves it, nil when that is not known. A 401
// resets the gateway's credentials and tries once more.
func (w *Writer) runStep(ctx context.Context, g registry.Gateway, key state.Key, progress state.ResultProgress, s step, known servicenow.Record) (servicenow.Record, error) {
	var (
		err   error
		after servicenow.Record
	)
	for attempt := 0; attempt < 2; attempt++ {
		var inst Instance
		if inst, err = w.deps.ServiceNow.Connect(ctx, g); err != nil {
			return nil, err
		}
		after, err = w.write(ctx, inst, key, progress, s, known)
		if !isAuthFailure(err) || attempt > 0 || errors.Is(err, servicenow.ErrJournalUnconfirmed) {
			break
		}
		w.deps.ServiceNow.Reset(g)
		known = nil
	}
	return after, err
}

// readFields are what the writer reads of a record before a step: what the
// processor mirrors (so the content hash compares with the ticket's) and
// the close fields.
func readFields(table string) []string {
	fields := servicenow.IncidentFields
	if table == registry.TableChangeRequest {
		fields = servicenow.ChangeRequestFields
	}
	return append(slices.Clone(fields), servicenow.FieldCloseCode, servicenow.FieldCloseNotes)
}

func (w *Writer) write(ctx context.Context, inst Instance, key state.Key, progress state.ResultProgress, s step, before servicenow.Record) (servicenow.Record, error) {
	fields := readFields(key.Table)
	if before == nil {
		var err error
		if before, err = inst.Get(ctx, key.Table, key.SysID, fields...); err != nil {
			return nil, err
		}
	}
	bv, err := state.VersionOf(key.Table, before)
	if err != nil {
		return nil, err
	}
	own := state.OwnWrite{Before: bv.SysModCount, BeforeHash: bv.Mirror.Hash()}

	if s.journal() {
		if progress.Resumed {
			// An earlier delivery may have written it and stopped before
			// recording the step.
			found, err := inJournal(ctx, inst, key.SysID, s, progress)
			if err != nil {
				return nil, err
			}
			if found {
				return nil, nil
			}
		}
		jw, err := inst.WriteJournal(ctx, key.Table, key.SysID, s.Field, s.Text, bv.SysModCount)
		if err != nil {
			return nil, err
		}
		if jw.ModCount == 0 {
			// Confirmed from the journal: the version is not known.
			return nil, nil
		}
		own.After = jw.ModCount
		w.recordOwn(ctx, key, own)
		if jw.ModCount != bv.SysModCount+1 {
			// Someone else wrote in between: the fields read are stale.
			return nil, nil
		}
		// A journal entry changes no field but the version.
		after := maps.Clone(before)
		after[servicenow.FieldSysModCount] = strconv.Itoa(jw.ModCount)
		return after, nil
	}

	if before[servicenow.FieldActive] == "false" {
		return nil, errRecordClosed
	}
	if setAlready(before, s.Set) {
		return before, nil
	}
	after, err := inst.UpdateFields(ctx, key.Table, key.SysID, s.Set, fields...)
	if err != nil {
		return nil, err
	}
	av, err := state.VersionOf(key.Table, after)
	if err != nil {
		// Stored, but the answer does not say which version it made: the
		// processor will see the change and compare it itself.
		w.log.WarnContext(ctx, "own write's version unreadable", "sys_id", key.SysID, "error", err.Error())
		return nil, nil
	}
	own.After, own.Version = av.SysModCount, &av
	w.recordOwn(ctx, key, own)
	return after, nil
}

// recordOwn stores our write's version on the ticket. A failure only costs
// the processor one fetch of the echo, which it then judges on content.
func (w *Writer) recordOwn(ctx context.Context, key state.Key, own state.OwnWrite) {
	if _, err := w.deps.Tickets.RecordOwnWrite(ctx, key, own); err != nil {
		w.log.WarnContext(ctx, "record own write", "sys_id", key.SysID, "error", err.Error())
	}
}

// inJournal looks for the step's text among the record's entries of its
// field since the result started.
func inJournal(ctx context.Context, inst Instance, sysID string, s step, progress state.ResultProgress) (bool, error) {
	since := servicenow.NewTime(progress.StartedAt.Add(-servicenow.JournalClockSkew))
	entries, err := inst.JournalEntries(ctx, sysID, since)
	if err != nil {
		return false, fmt.Errorf("%w: %w", servicenow.ErrJournalUnconfirmed, err)
	}
	want := normalize(s.Text)
	for _, e := range entries {
		if e.Field == s.Field && normalize(e.Text) == want {
			return true, nil
		}
	}
	return false, nil
}

// normalize makes a stored entry comparable with the text written, as
// WriteJournal compares them.
func normalize(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) }

// setAlready reports whether the record holds every value already: the
// write would change nothing (ServiceNow would not even bump the version).
func setAlready(rec servicenow.Record, set map[string]string) bool {
	for k, v := range set {
		got, ok := rec[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// snowContext ends ServiceNow calls Reserve before the invocation's
// deadline, so there is time to record the outcome.
func (w *Writer) snowContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-w.cfg.Reserve))
	}
	return context.WithCancel(ctx)
}

func poison(o Outcome, err error) Outcome {
	o.Outcome, o.Applied, o.Retry, o.Err = OutcomePoison, "malformed result: dead-lettered", true, err
	return o
}

func retry(o Outcome, step string, err error) Outcome {
	o.Outcome, o.Applied, o.Retry, o.Err = OutcomeRetry, step+" failed, will retry", true, err
	if servicenow.IsNotAdmitted(err) {
		o.Outcome, o.Applied, o.SnowFailure = OutcomeWaiting, step+": waiting for the ServiceNow budget", false
	}
	return o
}

// refusal is ServiceNow's own message, which names the table and the
// right, without the call's prefix.
func refusal(err error) string {
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
