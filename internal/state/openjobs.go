package state

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// JournalMatters reports whether a newer version of the ticket with the
// same mirrored fields may still be news: a comment or work note on it can
// be a follow-up (open job), create a job (semi-automatic ticket awaiting
// a mention, or a ticket whose job ended while in scope) or unlink a
// deduplicated ticket. Claim admits such versions instead of recording
// them unchanged; the processor then reads the journal.
func (t Ticket) JournalMatters() bool {
	switch {
	case t.Status == StatusAwaitingMention, t.Status == StatusDeduplicated:
		return true
	case t.Job.Open():
		return true
	default:
		return t.Job != nil && t.Status == StatusAccepted
	}
}

// Prior is what a decision was based on: the ticket's status, reason and
// mirror as the last finished decision (or the writer) left them. A claim
// overwrites those with "processing" and the new version, so Finish and
// Release keep them under "prior" for the attempt after a failure or a
// crash, which would otherwise see only its predecessor's claim.
type Prior struct {
	Status      string `dynamodbav:"status"`
	Reason      string `dynamodbav:"reason"`
	Mirror      Mirror `dynamodbav:"mirror"`
	ContentHash string `dynamodbav:"content_hash"`
}

// Basis is the ticket a decision on a claimed version starts from: the
// ticket as the claim found it, or, when that was an unfinished attempt
// (processing or retrying), with the status, reason and mirror that
// attempt was based on. When that attempt was about to end a job (Ending:
// its job.cancelled may have reached the engine), the basis is what it
// was deciding: that job ended, with its status and reason, so the next
// decision never sends news to a job the engine has ended, and a ticket
// back in scope gets a new episode. The job then differs from the stored
// one (EndedByAttempt): the decision sends that job.cancelled again (the
// attempt may have failed to) and stores the job whole.
func (t Ticket) Basis() Ticket {
	if t.Status != StatusProcessing && t.Status != StatusRetrying {
		return t
	}
	if t.Prior != nil {
		t.Status, t.Reason, t.Mirror, t.ContentHash = t.Prior.Status, t.Prior.Reason, t.Prior.Mirror, t.Prior.ContentHash
	}
	// A job the writer ended meanwhile keeps the writer's state (and
	// results); the job.cancelled is still sent again.
	if e := t.Ending; e != nil && (t.Job == nil || t.Job.Episode < e.Job.Episode || t.Job.ID == e.Job.ID && t.Job.Open()) {
		j := e.Job
		t.Job = &j
		t.Status, t.Reason = e.Status, e.Reason
	}
	return t
}

// EndedByAttempt reports whether the basis's job is the one an unfinished
// attempt ended (see Basis), which the ticket has not stored.
func (t Ticket) EndedByAttempt() bool {
	e := t.Ending
	return e != nil && t.Job != nil && t.Job.ID == e.Job.ID && t.Job.State == e.Job.State && t.Job.Sequence == e.Job.Sequence
}

// Ending is what an attempt records, under its claim, before it sends the
// job.cancelled that ends a job (Store.MarkEnding): the job as it will be
// (whole, the event included) and the status the decision gives the
// ticket.
type Ending struct {
	Job    Job    `dynamodbav:"job"`
	Status string `dynamodbav:"status"`
	Reason string `dynamodbav:"reason"`
	// Why is the job.cancelled's reason, for a re-send.
	Why string `dynamodbav:"why"`
}

// MarkEnding records, under the caller's claim, that it is about to send
// the event that ends the ticket's open job; Finish clears it. Should the
// attempt not finish, the next one decides from the job as ended (Basis).
// ErrClaimLost: the claim is not the caller's any more.
func (s *Store) MarkEnding(ctx context.Context, k Key, token string, e Ending) error {
	av, err := attributevalue.Marshal(e)
	if err != nil {
		return fmt.Errorf("mark ending %s: %w", k.PK(), err)
	}
	u := newUpdate()
	u.set("ending", av)
	u.values[":token"] = str(token)
	u.names["#claim_token"] = "claim_token"
	u.cond = "#claim_token = :token"
	return s.ifClaimed(ctx, k, "mark ending", u)
}

// PriorOf is the Prior to keep for a decision: its outcome (Finish) or
// its basis (Release).
func PriorOf(t Ticket) *Prior {
	return &Prior{Status: t.Status, Reason: t.Reason, Mirror: t.Mirror, ContentHash: t.ContentHash}
}

// journalCond is JournalMatters as a condition expression; journalValues
// declares its names and values.
const journalCond = "#status = :awaiting OR #status = :deduplicated OR #job.#jstate = :jopen" +
	" OR (attribute_exists(#job) AND #status = :accepted)"

func journalValues(u *update) {
	u.names["#status"] = "status"
	u.names["#job"] = "job"
	u.names["#jstate"] = "state"
	u.values[":awaiting"] = str(StatusAwaitingMention)
	u.values[":deduplicated"] = str(StatusDeduplicated)
	u.values[":accepted"] = str(StatusAccepted)
	u.values[":jopen"] = str(JobOpen)
}

// OpenJobs returns the gateway's tickets whose job is open, from the sparse
// schema.IndexOpenJobs: the processor puts a ticket in when it creates a
// job and takes it out when a decision finds the job ended. A ticket whose
// job the writer ended since is left out, and taken out of the index here
// (conditionally, best effort: a failure is tried again by the next call),
// so the index stays as small as the number of open jobs. The read costs
// one Query per gateway, whatever the number of tickets.
func (s *Store) OpenJobs(ctx context.Context, gatewayID string) ([]Ticket, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(schema.IndexOpenJobs),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrOpenPK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(openPrefix + gatewayID)},
	}
	tickets, err := s.query(ctx, in, 0)
	if err != nil {
		return nil, fmt.Errorf("open jobs of %s: %w", gatewayID, err)
	}
	open := tickets[:0]
	for _, t := range tickets {
		if t.Job.Open() {
			open = append(open, t)
			continue
		}
		s.leaveOpenJobs(ctx, t.Key())
	}
	return open, nil
}

// leaveOpenJobs takes a ticket whose job is no longer open out of the
// open-job index, unless a new job opened in between.
func (s *Store) leaveOpenJobs(ctx context.Context, k Key) {
	u := newUpdate()
	u.remove(schema.AttrOpenPK, schema.AttrOpenSK)
	u.names["#job"], u.names["#jstate"] = "job", "state"
	u.values[":jopen"] = str(JobOpen)
	u.cond = "attribute_exists(#job) AND #job.#jstate <> :jopen"
	_, _ = s.db.UpdateItem(ctx, u.input(s.table, k.PK(), ddbtypes.ReturnValueNone))
}
