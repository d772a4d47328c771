package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Job states, as `ticket show` prints them. A ticket has at most one open
// job; the others are ended.
const (
	JobOpen      = "open"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobPartial   = "partial"
	// JobEscalated: failed or partial, and reassigned to the gateway's
	// escalation group.
	JobEscalated = "escalated"
	JobCancelled = "cancelled"
)

// JobStates lists the job states.
var JobStates = []string{JobOpen, JobSucceeded, JobFailed, JobPartial, JobEscalated, JobCancelled}

// StatusAwaitingMention: a semi-automatic gateway's in-scope ticket that
// no comment or work note has mentioned the gateway on yet.
const StatusAwaitingMention = "awaiting_mention"

// Job is the ticket's current or last job, stored on the ticket item under
// "job". Only the processor creates one (the whole map, under its claim);
// every later write updates nested attributes (job.state, a list_append to
// job.events or job.results), so the processor and the writer never
// overwrite each other's part.
type Job struct {
	ID    string `dynamodbav:"id"`
	State string `dynamodbav:"state"`
	// Episode counts the ticket's jobs from 1.
	Episode int `dynamodbav:"episode"`
	// Sequence is the sequence number of the job's last event.
	Sequence int               `dynamodbav:"sequence"`
	OpenedAt time.Time         `dynamodbav:"opened_at"`
	EndedAt  time.Time         `dynamodbav:"ended_at,omitempty"`
	Events   []JobEventRecord  `dynamodbav:"events,omitempty"`
	Results  []JobResultRecord `dynamodbav:"results,omitempty"`
	// EndedBy is the result id that ended the job. The writer ends the job
	// before it writes the result to ServiceNow (EndJobForResult), so the
	// echo of its own resolve finds no open job to cancel; a redelivery of
	// that result then carries on with its steps.
	EndedBy string `dynamodbav:"ended_by,omitempty"`
}

// Open reports whether the job is open.
func (j *Job) Open() bool { return j != nil && j.State == JobOpen }

// JobEventRecord is an event sent for the job, as the ticket remembers it.
type JobEventRecord struct {
	Type     string    `dynamodbav:"type"`
	Sequence int       `dynamodbav:"sequence"`
	EventID  string    `dynamodbav:"event_id"`
	At       time.Time `dynamodbav:"at"`
}

// JobResultRecord is a result the writer applied (or, for a cancelled job,
// recorded without writing).
type JobResultRecord struct {
	ResultID string    `dynamodbav:"result_id"`
	Status   string    `dynamodbav:"status"`
	At       time.Time `dynamodbav:"at"`
	// Applied says what was written to ServiceNow ("resolved, comment,
	// work note"), or why nothing was ("job cancelled").
	Applied string `dynamodbav:"applied,omitempty"`
}

// jobPrefix keys the job index items: JOB#<job id> → the ticket's key, so
// the writer finds a result's ticket with one strongly consistent read.
const jobPrefix = "JOB#"

// jobIndex is a job index item.
type jobIndex struct {
	PK        string    `dynamodbav:"pk"`
	JobID     string    `dynamodbav:"job_id"`
	GatewayID string    `dynamodbav:"gateway_id"`
	Table     string    `dynamodbav:"table"`
	SysID     string    `dynamodbav:"sys_id"`
	CreatedAt time.Time `dynamodbav:"created_at"`
}

// IndexJob records which ticket a job belongs to. The processor calls it
// before it sends the job's job.created, so a result can never arrive for
// a job the writer cannot find. It is idempotent (a re-sent job.created
// writes the same item) and refuses to point a job id at another ticket.
func (s *Store) IndexJob(ctx context.Context, jobID string, k Key) error {
	item, err := attributevalue.MarshalMap(jobIndex{
		PK: jobPrefix + jobID, JobID: jobID, GatewayID: k.GatewayID, Table: k.Table, SysID: k.SysID, CreatedAt: s.now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("encode job %s: %w", jobID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR (#gw = :gw AND #t = :t AND #id = :id)"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrPK, "#gw": "gateway_id", "#t": "table", "#id": "sys_id"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":gw": str(k.GatewayID), ":t": str(k.Table), ":id": str(k.SysID)},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return fmt.Errorf("index job %s: the id belongs to another ticket", jobID)
	}
	if err != nil {
		return fmt.Errorf("index job %s: %w", jobID, err)
	}
	return nil
}

// JobTicketKey returns the key of the ticket a job belongs to, or
// ErrNotFound for a job id no processor created.
func (s *Store) JobTicketKey(ctx context.Context, jobID string) (Key, error) {
	j, err := s.IndexedJob(ctx, jobID)
	return j.Key, err
}

// IndexedJob is a job index item: the job's ticket, and when the job was
// indexed.
type IndexedJob struct {
	Key       Key
	CreatedAt time.Time
}

// IndexedJob reads a job's index item, or ErrNotFound for a job id no
// processor created. Index items never expire (see Store.WithTicketTTL).
func (s *Store) IndexedJob(ctx context.Context, jobID string) (IndexedJob, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            pkKey(jobPrefix + jobID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return IndexedJob{}, fmt.Errorf("get job %s: %w", jobID, err)
	}
	if out.Item == nil {
		return IndexedJob{}, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	var j jobIndex
	if err := attributevalue.UnmarshalMap(out.Item, &j); err != nil {
		return IndexedJob{}, fmt.Errorf("decode job %s: %w", jobID, err)
	}
	return IndexedJob{Key: Key{GatewayID: j.GatewayID, Table: j.Table, SysID: j.SysID}, CreatedAt: j.CreatedAt}, nil
}
