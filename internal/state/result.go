package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/schema"
)

// What the writer keeps in the state table to apply each result once.
//
//   - The ticket's top-level string set "result_ids" holds every result id
//     applied (or recorded without writing) on the ticket. The final write
//     of a result adds its id and appends its JobResultRecord to
//     job.results in one conditional update, so a redelivered result finds
//     its id and changes nothing. (DynamoDB's ADD works on top-level
//     attributes only, hence the set beside the job map rather than in it.)
//   - A progress item, RESULT#<job id>#<result id>, holds when the result
//     was first started and which of its steps (a comment, a work note, a
//     field update) are done. A result interrupted half-way (a crash, a
//     timeout, an unknown outcome) resumes from its last recorded step; a
//     journal step started but not recorded is looked for in the journal
//     from the start time on before it is written again. The item expires
//     by TTL well after the results queue's retention.
//   - RecordOwnWrite stores the version of the record the writer's own
//     write produced, so the processor sees its echo as stale.
const (
	resultPrefix     = "RESULT#"
	attrResultIDs    = "result_ids"
	resultProgressTT = 14 * 24 * time.Hour
)

// Outcome errors of FinishResult.
var (
	// ErrResultApplied: the result id is already recorded on the ticket.
	ErrResultApplied = errors.New("result already applied")
	// ErrJobChanged: the ticket's job is not (or no longer) the result's.
	ErrJobChanged = errors.New("the ticket's job is another one")
)

// ResultTicket is a ticket as the writer reads it: the ticket and the ids
// of the results applied on it.
type ResultTicket struct {
	Ticket
	ResultIDs []string
}

// Applied reports whether a result id is recorded on the ticket.
func (t ResultTicket) Applied(resultID string) bool { return slices.Contains(t.ResultIDs, resultID) }

// ClaimLive reports whether a processor holds a live claim on the ticket.
func (t ResultTicket) ClaimLive(now time.Time) bool { return t.ClaimExpires >= now.UnixMilli() }

// TicketForResult reads a ticket with the result ids applied on it, with a
// strongly consistent read; ErrNotFound for an unknown ticket.
func (s *Store) TicketForResult(ctx context.Context, k Key) (ResultTicket, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: pkKey(k.PK()), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ResultTicket{}, fmt.Errorf("get ticket %s: %w", k.PK(), err)
	}
	if out.Item == nil {
		return ResultTicket{}, fmt.Errorf("ticket %s: %w", k.PK(), ErrNotFound)
	}
	var t ResultTicket
	if err := attributevalue.UnmarshalMap(out.Item, &t.Ticket); err != nil {
		return ResultTicket{}, fmt.Errorf("decode ticket %s: %w", k.PK(), err)
	}
	if ss, ok := out.Item[attrResultIDs].(*ddbtypes.AttributeValueMemberSS); ok {
		t.ResultIDs = ss.Value
	}
	return t, nil
}

// ResultProgress is how far a result got.
type ResultProgress struct {
	JobID    string `dynamodbav:"job_id"`
	ResultID string `dynamodbav:"result_id"`
	// StartedAt is when the result was first started: a journal entry of
	// it can only be younger.
	StartedAt time.Time `dynamodbav:"started_at"`
	// Steps are the steps done (a string set: the order of a result's
	// steps is fixed by the result, not by when they were recorded).
	Steps []string `dynamodbav:"steps,stringset,omitempty"`
	// Resumed: the result was started before (by an earlier delivery).
	Resumed bool `dynamodbav:"-"`
	// Lease is this delivery's hold on the result (see StartResult), to
	// give back with ReleaseResult.
	Lease string `dynamodbav:"lease_token,omitempty"`
}

// ResultLease is how long a delivery holds a result it applies: longer
// than a writer invocation (30 s), so a live one never loses it, short
// enough that the result of a crashed one is taken over within a minute.
const ResultLease = time.Minute

// ResultBusyError says another delivery of the same result is applying it
// now (SQS delivers a message twice now and then, and an engine may post a
// result twice): writing it too could add its journal entries twice. Retry
// once Until has passed; by then it is usually recorded applied.
type ResultBusyError struct{ Until time.Time }

func (e *ResultBusyError) Error() string {
	return "result being applied by another delivery until " + e.Until.UTC().Format(time.RFC3339)
}

// Done reports whether a step is recorded done.
func (p ResultProgress) Done(step string) bool { return slices.Contains(p.Steps, step) }

func resultPK(jobID, resultID string) string { return resultPrefix + jobID + "#" + resultID }

// StartResult records that a result is being applied and returns its
// progress: new, or the one an earlier delivery left, with a lease on it
// for ResultLease. A delivery that finds the lease held by another gets a
// *ResultBusyError and writes nothing.
func (s *Store) StartResult(ctx context.Context, jobID, resultID string) (ResultProgress, error) {
	now := s.now().UTC()
	pk := resultPK(jobID, resultID)
	lease := uuid.NewString()
	p := ResultProgress{JobID: jobID, ResultID: resultID, StartedAt: now, Lease: lease}
	item, err := attributevalue.MarshalMap(p)
	if err != nil {
		return ResultProgress{}, fmt.Errorf("encode %s: %w", pk, err)
	}
	item[schema.AttrPK] = str(pk)
	item[schema.AttrExpiresAt] = num64(now.Add(resultProgressTT).Unix())
	item[attrLeaseUntil] = num64(now.Add(ResultLease).UnixMilli())
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if err == nil {
		return p, nil
	}
	if !errors.As(err, &cf) {
		return ResultProgress{}, fmt.Errorf("start %s: %w", pk, err)
	}
	// Started before: take it over unless another delivery holds it.
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      pkKey(pk),
		UpdateExpression:         aws.String("SET #tok = :tok, #until = :until"),
		ConditionExpression:      aws.String("attribute_exists(#pk) AND (attribute_not_exists(#until) OR #until <= :now)"),
		ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK, "#tok": attrLeaseToken, "#until": attrLeaseUntil},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":tok": str(lease), ":until": num64(now.Add(ResultLease).UnixMilli()), ":now": num64(now.UnixMilli()),
		},
		ReturnValues:                        ddbtypes.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: ddbtypes.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if errors.As(err, &cf) {
		until := now.Add(ResultLease)
		if v, ok := cf.Item[attrLeaseUntil].(*ddbtypes.AttributeValueMemberN); ok {
			if ms, perr := strconv.ParseInt(v.Value, 10, 64); perr == nil {
				until = time.UnixMilli(ms).UTC()
			}
		}
		return ResultProgress{}, &ResultBusyError{Until: until}
	}
	if err != nil {
		return ResultProgress{}, fmt.Errorf("take over %s: %w", pk, err)
	}
	var prev ResultProgress
	if err := attributevalue.UnmarshalMap(out.Attributes, &prev); err != nil {
		return ResultProgress{}, fmt.Errorf("decode %s: %w", pk, err)
	}
	prev.Resumed = true
	return prev, nil
}

// ReleaseResult gives a delivery's lease on a result back, so that its
// redelivery need not wait for the lease to end. A lease already taken
// over, or a result never started, is left alone.
func (s *Store) ReleaseResult(ctx context.Context, p ResultProgress) error {
	if p.Lease == "" {
		return nil
	}
	pk := resultPK(p.JobID, p.ResultID)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       pkKey(pk),
		UpdateExpression:          aws.String("REMOVE #tok, #until"),
		ConditionExpression:       aws.String("#tok = :tok"),
		ExpressionAttributeNames:  map[string]string{"#tok": attrLeaseToken, "#until": attrLeaseUntil},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":tok": str(p.Lease)},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &cf) {
		return fmt.Errorf("release %s: %w", pk, err)
	}
	return nil
}

// Attributes of a result's lease.
const (
	attrLeaseToken = "lease_token"
	attrLeaseUntil = "lease_until" // epoch milliseconds
)

// ResultStepDone records a step of a result as done.
func (s *Store) ResultStepDone(ctx context.Context, jobID, resultID, step string) error {
	pk := resultPK(jobID, resultID)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       pkKey(pk),
		UpdateExpression:          aws.String("ADD #steps :step"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#steps": "steps", "#pk": schema.AttrPK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":step": &ddbtypes.AttributeValueMemberSS{Value: []string{step}}},
	})
	if err != nil {
		return fmt.Errorf("record step %s of %s: %w", step, pk, err)
	}
	return nil
}

// ResultFinish is the final record of a result on its ticket.
type ResultFinish struct {
	JobID  string
	Record JobResultRecord
	// JobState, when set, ends or moves the job (JobSucceeded, JobFailed,
	// JobPartial, JobEscalated); it applies only while the job is open.
	JobState string
	// AnyJob records the result whatever the ticket's job is (a result for
	// a job that is no longer the ticket's current one); JobState must then
	// be empty.
	AnyJob bool
}

// attrJobRev counts the writer's writes of the job map; see FinishResult.
const attrJobRev = "job_rev"

// FinishResult records a result on its ticket: its id in result_ids, its
// record appended to job.results and the job's new state, in one
// conditional update. It returns the job state it set ("" when none): a
// job that is no longer open (cancelled while the result was written)
// keeps its state and still gets the record. ErrResultApplied means the
// id was recorded already; ErrJobChanged that the ticket's job is another
// one.
//
// The job map is read, changed and written back whole, guarded by a
// condition on everything another writer of it changes: its id, state and
// sequence (the processor's) and job_rev (bumped here), so a concurrent
// change by the processor or another result makes the write fail and be
// redone on what is there, never lost. A nested update (SET job.state,
// list_append to job.results) would say the same more directly, but the
// embedded emulator stores "job.state" as a top-level attribute and has no
// list_append, and the writer must behave the same on both.
func (s *Store) FinishResult(ctx context.Context, k Key, f ResultFinish) (string, error) {
	for range 8 {
		set, err := s.finishResult(ctx, k, f)
		var cf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			continue
		}
		return set, err
	}
	return "", fmt.Errorf("finish result %s on %s: %w", f.Record.ResultID, k.PK(), ErrBusy)
}

func (s *Store) finishResult(ctx context.Context, k Key, f ResultFinish) (string, error) {
	cur, err := s.readJob(ctx, k, f.JobID, f.Record.ResultID, f.AnyJob)
	if err != nil {
		return "", err
	}
	rec, err := attributevalue.MarshalMap(f.Record)
	if err != nil {
		return "", fmt.Errorf("encode result: %w", err)
	}
	now := s.now()
	// Keep every attribute of the map, ours or not, and change only ours.
	m := maps.Clone(cur.av.Value)
	var results []ddbtypes.AttributeValue
	if l, ok := m["results"].(*ddbtypes.AttributeValueMemberL); ok {
		results = slices.Clone(l.Value)
	}
	m["results"] = &ddbtypes.AttributeValueMemberL{Value: append(results, &ddbtypes.AttributeValueMemberM{Value: rec})}
	set := ""
	switch {
	case f.JobState != "" && cur.job.Open():
		set = f.JobState
		m["state"] = str(set)
		if set != JobOpen {
			m["ended_at"] = timeAV(now)
			m["ended_by"] = str(f.Record.ResultID)
		}
	case f.JobState != "" && cur.job.EndedBy == f.Record.ResultID:
		// EndJobForResult ended it before the writes.
		set = cur.job.State
	}
	err = s.replaceJob(ctx, k, cur, m, true, f.Record.ResultID)
	if err != nil {
		var cf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			return "", err
		}
		return "", fmt.Errorf("finish result %s on %s: %w", f.Record.ResultID, k.PK(), err)
	}
	return set, nil
}

// EndJobForResult ends an open job in the state a result will leave it in
// (JobSucceeded, JobFailed, JobPartial, JobEscalated), before the writer
// writes the result to ServiceNow. Its resolve or reassignment echoes back
// through the Business Rule within milliseconds, possibly before the writer
// has recorded the version it made: a job still open would then read as
// "a person resolved the ticket" and be cancelled. It returns ErrJobChanged
// when the job is not the result's or not open, unless this result ended
// it already (a redelivery), which is not an error.
func (s *Store) EndJobForResult(ctx context.Context, k Key, jobID, resultID, jobState string) error {
	for range 8 {
		cur, err := s.readJob(ctx, k, jobID, resultID, false)
		if err != nil {
			return err
		}
		if cur.job.EndedBy == resultID {
			return nil
		}
		if !cur.job.Open() {
			return fmt.Errorf("end job %s on %s: the job is %s: %w", jobID, k.PK(), cur.job.State, ErrJobChanged)
		}
		m := maps.Clone(cur.av.Value)
		m["state"] = str(jobState)
		m["ended_at"] = timeAV(s.now())
		m["ended_by"] = str(resultID)
		err = s.replaceJob(ctx, k, cur, m, false, resultID)
		var cf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			continue
		}
		if err != nil {
			return fmt.Errorf("end job %s on %s: %w", jobID, k.PK(), err)
		}
		return nil
	}
	return fmt.Errorf("end job %s on %s: %w", jobID, k.PK(), ErrBusy)
}

// currentJob is a ticket's job map as read, with what guards its rewrite.
type currentJob struct {
	av  *ddbtypes.AttributeValueMemberM
	job Job
	rev *ddbtypes.AttributeValueMemberN // nil before the writer's first write
}

// readJob reads the ticket's job for a result: ErrResultApplied when the
// result id is recorded, ErrJobChanged when the ticket has no job or
// (unless anyJob) another one.
func (s *Store) readJob(ctx context.Context, k Key, jobID, resultID string, anyJob bool) (currentJob, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: pkKey(k.PK()), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return currentJob{}, fmt.Errorf("get ticket %s: %w", k.PK(), err)
	}
	if out.Item == nil {
		return currentJob{}, fmt.Errorf("ticket %s: %w", k.PK(), ErrNotFound)
	}
	if ss, ok := out.Item[attrResultIDs].(*ddbtypes.AttributeValueMemberSS); ok && slices.Contains(ss.Value, resultID) {
		return currentJob{}, fmt.Errorf("result %s on %s: %w", resultID, k.PK(), ErrResultApplied)
	}
	jobAV, ok := out.Item["job"].(*ddbtypes.AttributeValueMemberM)
	if !ok {
		return currentJob{}, fmt.Errorf("result %s of job %s on %s: no job: %w", resultID, jobID, k.PK(), ErrJobChanged)
	}
	cur := currentJob{av: jobAV}
	if err := attributevalue.Unmarshal(jobAV, &cur.job); err != nil {
		return currentJob{}, fmt.Errorf("decode the job of %s: %w", k.PK(), err)
	}
	if !anyJob && cur.job.ID != jobID {
		return currentJob{}, fmt.Errorf("result %s of job %s on %s: %w", resultID, jobID, k.PK(), ErrJobChanged)
	}
	if n, ok := out.Item[attrJobRev].(*ddbtypes.AttributeValueMemberN); ok {
		cur.rev = n
	}
	return cur, nil
}

// replaceJob writes the job map m back in place of cur, guarded by a
// condition on everything another writer of it changes: its id, state and
// sequence (the processor's) and job_rev (bumped here). With addResult,
// the result id joins result_ids in the same write. A
// ConditionalCheckFailedException means the job changed meanwhile.
func (s *Store) replaceJob(ctx context.Context, k Key, cur currentJob, m map[string]ddbtypes.AttributeValue, addResult bool, resultID string) error {
	now := s.now()
	names := map[string]string{
		"#job": "job", "#rids": attrResultIDs, "#rev": attrJobRev, "#jid": "id", "#jstate": "state", "#jseq": "sequence",
		"#updated_at": "updated_at", "#gsi1pk": schema.AttrGSI1PK, "#gsi1sk": schema.AttrGSI1SK,
	}
	values := map[string]ddbtypes.AttributeValue{
		":job":    &ddbtypes.AttributeValueMemberM{Value: m},
		":rid":    str(resultID),
		":oldjid": str(cur.job.ID),
		":oldst":  str(cur.job.State),
		":now":    timeAV(now),
		":gsi1pk": str(gatewayIndexPK + k.GatewayID),
		":gsi1sk": str(now.UTC().Format(updatedLayout)),
	}
	cond := "#job.#jid = :oldjid AND #job.#jstate = :oldst AND (attribute_not_exists(#rids) OR NOT contains(#rids, :rid))"
	if seq, ok := cur.av.Value["sequence"]; ok {
		values[":oldseq"] = seq
		cond += " AND #job.#jseq = :oldseq"
	} else {
		cond += " AND attribute_not_exists(#job.#jseq)"
	}
	rev := 0
	if cur.rev != nil {
		var err error
		if rev, err = strconv.Atoi(cur.rev.Value); err != nil {
			return fmt.Errorf("decode %s of %s: %w", attrJobRev, k.PK(), err)
		}
		values[":oldrev"] = cur.rev
		cond += " AND #rev = :oldrev"
	} else {
		cond += " AND attribute_not_exists(#rev)"
	}
	values[":rev"] = num(rev + 1)
	update := "SET #job = :job, #rev = :rev, #updated_at = :now, #gsi1pk = :gsi1pk, #gsi1sk = :gsi1sk"
	if addResult {
		update += " ADD #rids :ridset"
		values[":ridset"] = &ddbtypes.AttributeValueMemberSS{Value: []string{resultID}}
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       pkKey(k.PK()),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return err
}

// OwnWrite is a version of a record that the writer's own write produced.
type OwnWrite struct {
	// Before is the record's sys_mod_count just before the write and
	// BeforeHash its content hash (Mirror.Hash), as read by the writer.
	Before     int
	BeforeHash string
	// After is the sys_mod_count the write's answer carries.
	After int
	// Version is the record after a field update (read from the write's
	// answer); nil for a journal-only write, which changes no mirrored
	// field.
	Version *Version
}

// RecordOwnWrite stores the version the writer's write produced as seen and
// decided (sys_mod_count, decided_version and, for a field update,
// sys_updated_on, the mirror and its content hash), so the processor finds
// its echo stale instead of taking the writer's own change for a person's.
// It applies only when the write bumped the record by exactly one version
// and the ticket already knows the content the record had just before it
// (content_hash = BeforeHash, sys_mod_count below After): a version in
// between that the processor has not seen could be a person's change, and
// hiding it would lose it. It never touches the claim. It reports whether
// the version was recorded.
func (s *Store) RecordOwnWrite(ctx context.Context, k Key, w OwnWrite) (bool, error) {
	if w.After != w.Before+1 || w.BeforeHash == "" {
		return false, nil
	}
	u := newUpdate()
	u.set("sys_mod_count", num(w.After))
	u.set("decided_version", num(w.After))
	if w.Version != nil {
		u.setMirror(w.Version.Mirror)
		u.set("sys_updated_on", str(w.Version.SysUpdatedOn))
		u.set("content_hash", str(w.Version.Mirror.Hash()))
	}
	u.values[":after"] = num(w.After)
	u.values[":bhash"] = str(w.BeforeHash)
	if w.Version == nil {
		u.names["#content_hash"] = "content_hash"
	}
	u.cond = "#content_hash = :bhash AND #sys_mod_count < :after AND " +
		"(attribute_not_exists(#decided_version) OR #decided_version < :after)"
	_, err := s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
	var cf *ddbtypes.ConditionalCheckFailedException
	switch {
	case errors.As(err, &cf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("record own write on %s: %w", k.PK(), err)
	}
	return true, nil
}
