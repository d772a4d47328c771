package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
	// Steps are the steps done, in order.
	Steps []string `dynamodbav:"steps"`
	// Resumed: the result was started before (by an earlier delivery).
	Resumed bool `dynamodbav:"-"`
}

// Done reports whether a step is recorded done.
func (p ResultProgress) Done(step string) bool { return slices.Contains(p.Steps, step) }

func resultPK(jobID, resultID string) string { return resultPrefix + jobID + "#" + resultID }

// StartResult records that a result is being applied and returns its
// progress: new, or the one an earlier delivery left.
func (s *Store) StartResult(ctx context.Context, jobID, resultID string) (ResultProgress, error) {
	now := s.now().UTC()
	pk := resultPK(jobID, resultID)
	p := ResultProgress{JobID: jobID, ResultID: resultID, StartedAt: now, Steps: []string{}}
	item, err := attributevalue.MarshalMap(p)
	if err != nil {
		return ResultProgress{}, fmt.Errorf("encode %s: %w", pk, err)
	}
	item[schema.AttrPK] = str(pk)
	item[schema.AttrExpiresAt] = num64(now.Add(resultProgressTT).Unix())
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
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: pkKey(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return ResultProgress{}, fmt.Errorf("get %s: %w", pk, err)
	}
	var prev ResultProgress
	if err := attributevalue.UnmarshalMap(out.Item, &prev); err != nil {
		return ResultProgress{}, fmt.Errorf("decode %s: %w", pk, err)
	}
	prev.Resumed = true
	return prev, nil
}

// ResultStepDone records a step of a result as done.
func (s *Store) ResultStepDone(ctx context.Context, jobID, resultID, step string) error {
	pk := resultPK(jobID, resultID)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       pkKey(pk),
		UpdateExpression:          aws.String("SET #steps = list_append(#steps, :step)"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#steps": "steps", "#pk": schema.AttrPK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":step": &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{str(step)}}},
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

// FinishResult records a result on its ticket: its id in result_ids and
// its record in job.results, and the job's new state, in one conditional
// update. It returns the job state it set ("" when none): a job that is no
// longer open (cancelled while the result was written) keeps its state and
// still gets the record. ErrResultApplied means the id was recorded
// already; ErrJobChanged that the ticket's job is another one.
func (s *Store) FinishResult(ctx context.Context, k Key, f ResultFinish) (string, error) {
	jobState := f.JobState
	for range 2 {
		err := s.finishResult(ctx, k, f, jobState)
		if err == nil {
			return jobState, nil
		}
		var cf *ddbtypes.ConditionalCheckFailedException
		if !errors.As(err, &cf) {
			return "", fmt.Errorf("finish result %s on %s: %w", f.Record.ResultID, k.PK(), err)
		}
		cur, err := s.TicketForResult(ctx, k)
		if err != nil {
			return "", err
		}
		switch {
		case cur.Applied(f.Record.ResultID):
			return "", fmt.Errorf("result %s on %s: %w", f.Record.ResultID, k.PK(), ErrResultApplied)
		case !f.AnyJob && (cur.Job == nil || cur.Job.ID != f.JobID):
			return "", fmt.Errorf("result %s of job %s on %s: %w", f.Record.ResultID, f.JobID, k.PK(), ErrJobChanged)
		case jobState != "" && !cur.Job.Open():
			jobState = ""
		default:
			return "", fmt.Errorf("finish result %s on %s: %w", f.Record.ResultID, k.PK(), ErrBusy)
		}
	}
	return "", fmt.Errorf("finish result %s on %s: %w", f.Record.ResultID, k.PK(), ErrBusy)
}

func (s *Store) finishResult(ctx context.Context, k Key, f ResultFinish, jobState string) error {
	rec, err := attributevalue.MarshalMap(f.Record)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	now := s.now()
	names := map[string]string{
		"#job": "job", "#results": "results", "#rids": attrResultIDs, "#pk": schema.AttrPK,
		"#updated_at": "updated_at", "#gsi1pk": schema.AttrGSI1PK, "#gsi1sk": schema.AttrGSI1SK,
	}
	values := map[string]ddbtypes.AttributeValue{
		":rec":    &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{&ddbtypes.AttributeValueMemberM{Value: rec}}},
		":empty":  &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{}},
		":rid":    str(f.Record.ResultID),
		":ridset": &ddbtypes.AttributeValueMemberSS{Value: []string{f.Record.ResultID}},
		":now":    timeAV(now),
		":gsi1pk": str(gatewayIndexPK + k.GatewayID),
		":gsi1sk": str(now.UTC().Format(updatedLayout)),
	}
	set := "#job.#results = list_append(if_not_exists(#job.#results, :empty), :rec), " +
		"#updated_at = :now, #gsi1pk = :gsi1pk, #gsi1sk = :gsi1sk"
	cond := "attribute_exists(#pk) AND attribute_exists(#job) AND (attribute_not_exists(#rids) OR NOT contains(#rids, :rid))"
	if !f.AnyJob {
		names["#jid"] = "id"
		values[":jid"] = str(f.JobID)
		cond += " AND #job.#jid = :jid"
	}
	if jobState != "" {
		names["#jstate"], names["#ended"] = "state", "ended_at"
		values[":jstate"], values[":open"] = str(jobState), str(JobOpen)
		set += ", #job.#jstate = :jstate"
		if jobState != JobOpen {
			set += ", #job.#ended = :now"
		}
		cond += " AND #job.#jstate = :open"
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       pkKey(k.PK()),
		UpdateExpression:          aws.String("SET " + set + " ADD #rids :ridset"),
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
