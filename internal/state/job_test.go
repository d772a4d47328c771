package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/state"
)

func openJob(id string) *state.Job {
	return &state.Job{ID: id, State: state.JobOpen, Episode: 1, Sequence: 1, OpenedAt: time.Now().UTC().Truncate(time.Second),
		Events: []state.JobEventRecord{{Type: "job.created", Sequence: 1, EventID: "ev1", At: time.Now().UTC().Truncate(time.Second)}}}
}

// TestClaimWhenJournalMatters: a newer version with the same mirrored
// fields is claimed when a comment on it can matter, and recorded
// unchanged otherwise.
func TestClaimWhenJournalMatters(t *testing.T) {
	tests := []struct {
		name    string
		result  state.Result
		wantErr error
	}{
		{name: "open job", result: state.Result{Status: state.StatusAccepted, JobID: "j", Job: openJob("j"), JobOpen: true}},
		{name: "awaiting a mention", result: state.Result{Status: state.StatusAwaitingMention}},
		{name: "deduplicated", result: state.Result{Status: state.StatusDeduplicated, DuplicateOf: "b", DuplicateOfNumber: "INC2"}},
		{name: "job ended, in scope", result: func() state.Result {
			j := openJob("j")
			j.State = state.JobSucceeded
			return state.Result{Status: state.StatusAccepted, JobID: "j", Job: j}
		}()},
		{name: "job ended, out of scope", result: func() state.Result {
			j := openJob("j")
			j.State = state.JobCancelled
			return state.Result{Status: state.StatusOutOfScope, JobID: "j", Job: j}
		}(), wantErr: state.ErrUnchanged},
		{name: "out of scope, never a job", result: state.Result{Status: state.StatusOutOfScope}, wantErr: state.ErrUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			c := claim("a", 1, "disk full")
			if _, err := s.Claim(ctx, c); err != nil {
				t.Fatal(err)
			}
			r := tt.result
			r.Version = 1
			r.Prior = &state.Prior{Status: r.Status, Mirror: c.Mirror, ContentHash: c.Mirror.Hash()}
			if err := s.Finish(ctx, c.Key, c.Token, r); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			next := claim("a", 2, "disk full")
			next.Token = "second"
			_, err := s.Claim(ctx, next)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Claim(same content, newer) = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			// While that claim is live, another same-content version may
			// carry a comment its journal read came too early for: busy.
			third := claim("a", 3, "disk full")
			third.Token = "third"
			if _, err := s.Claim(ctx, third); !errors.Is(err, state.ErrBusy) {
				t.Errorf("Claim during a live claim = %v, want ErrBusy", err)
			}
		})
	}
}

// TestFinishKeepsTheWritersPart: a result the writer stored between the
// claim and Finish stays, with the writer's job state; the processor's
// event is appended to the job as it now is.
func TestFinishKeepsTheWritersPart(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	res := awstest.Resources(t)
	db := dynamodb.NewFromConfig(cfg)
	s := state.New(db, res.StateTable)
	c := claim("a", 1, "disk full")
	prev, err := s.Claim(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	_ = prev
	if err := s.Finish(ctx, c.Key, c.Token, state.Result{Version: 1, Status: state.StatusAccepted, JobID: "j", Job: openJob("j"), JobOpen: true}); err != nil {
		t.Fatal(err)
	}
	next := claim("a", 2, "disk full, and more")
	next.Token = "second"
	base, err := s.Claim(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	// The writer applies a final result meanwhile.
	j := *base.Job
	j.State = state.JobSucceeded
	j.Results = []state.JobResultRecord{{ResultID: "r1", Status: "succeeded", At: time.Now().UTC().Truncate(time.Second), Applied: "resolved"}}
	av, err := attributevalue.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(res.StateTable), Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: c.PK()}},
		UpdateExpression: aws.String("SET #job = :j"), ExpressionAttributeNames: map[string]string{"#job": "job"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":j": av},
	}); err != nil {
		t.Fatal(err)
	}
	ev := state.JobEventRecord{Type: "job.cancelled", Sequence: 2, EventID: "ev2", At: time.Now().UTC().Truncate(time.Second)}
	if err := s.Finish(ctx, c.Key, next.Token, state.Result{Version: 2, Status: state.StatusOutOfScope, JobID: "j",
		Base: base.Job, Events: []state.JobEventRecord{ev}, EndJob: state.JobCancelled}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	got, err := s.Get(ctx, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Job.State != state.JobSucceeded || len(got.Job.Results) != 1 || got.Job.Sequence != 2 ||
		!cmp.Equal(got.Job.Events[len(got.Job.Events)-1], ev) || len(got.Job.Events) != 2 {
		t.Errorf("job %+v; want the writer's state and result, and the cancellation appended", got.Job)
	}
}

// TestOpenJobsIndex: a ticket is in the open-job index while its job is
// open, and leaves it with the decision that ends it.
func TestOpenJobsIndex(t *testing.T) {
	ctx := context.Background()
	res := awstest.Resources(t)
	db := dynamodb.NewFromConfig(awstest.Config(t))
	s := state.New(db, res.StateTable)
	c := claim("a", 1, "disk full")
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, c.Key, c.Token, state.Result{Version: 1, Status: state.StatusAccepted, JobID: "j", Job: openJob("j"), JobOpen: true}); err != nil {
		t.Fatal(err)
	}
	open, err := s.OpenJobs(ctx, gtw)
	if err != nil || len(open) != 1 || open[0].SysID != "a" || open[0].SysModCount != 1 {
		t.Fatalf("OpenJobs = %+v, %v; want ticket a at version 1", open, err)
	}
	// The writer ends a second ticket's job: it is left out, and leaves
	// the index.
	c2 := claim("b", 1, "fan")
	if _, err := s.Claim(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, c2.Key, c2.Token, state.Result{Version: 1, Status: state.StatusAccepted, JobID: "j2", Job: openJob("j2"), JobOpen: true}); err != nil {
		t.Fatal(err)
	}
	ended := openJob("j2")
	ended.State = state.JobSucceeded
	av, err := attributevalue.Marshal(ended)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(res.StateTable), Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: c2.PK()}},
		UpdateExpression: aws.String("SET #job = :j"), ExpressionAttributeNames: map[string]string{"#job": "job"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":j": av},
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if open, err := s.OpenJobs(ctx, gtw); err != nil || len(open) != 1 || open[0].SysID != "a" {
			t.Fatalf("OpenJobs = %+v, %v; want ticket a only", open, err)
		}
	}
	raw, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(res.StateTable), Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: c2.PK()}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Item["open_pk"]; ok {
		t.Errorf("ticket b still in the open-job index after its job ended")
	}
	if other, err := s.OpenJobs(ctx, "gtw_00000000-0000-4000-8000-000000000002"); err != nil || len(other) != 0 {
		t.Errorf("another gateway's OpenJobs = %+v, %v; want none", other, err)
	}
	next := claim("a", 2, "closed")
	next.Token = "second"
	base, err := s.Claim(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, c.Key, next.Token, state.Result{Version: 2, Status: state.StatusOutOfScope, JobID: "j", Base: base.Job,
		Events: []state.JobEventRecord{{Type: "job.cancelled", Sequence: 2, EventID: "ev2"}}, EndJob: state.JobCancelled}); err != nil {
		t.Fatal(err)
	}
	if open, err := s.OpenJobs(ctx, gtw); err != nil || len(open) != 0 {
		t.Errorf("OpenJobs after the cancellation = %+v, %v; want none", open, err)
	}
}

// TestBasisAfterRelease: the attempt after a failed one decides against
// what the failed one was based on, not against its claim.
func TestBasisAfterRelease(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	c := claim("a", 1, "disk full")
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, c.Key, c.Token, state.Result{Version: 1, Status: state.StatusOutOfScope, Reason: "resolved",
		Prior: &state.Prior{Status: state.StatusOutOfScope, Reason: "resolved", Mirror: c.Mirror, ContentHash: c.Mirror.Hash()}}); err != nil {
		t.Fatal(err)
	}
	next := claim("a", 2, "reopened")
	next.Token = "second"
	prev, err := s.Claim(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	basis := prev.Basis()
	if err := s.Release(ctx, c.Key, next.Token, "dispatch: throttled", state.PriorOf(basis)); err != nil {
		t.Fatal(err)
	}
	next.Token = "third"
	prev, err = s.Claim(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Status != state.StatusRetrying {
		t.Fatalf("claim found %s, want retrying", prev.Status)
	}
	if b := prev.Basis(); b.Status != state.StatusOutOfScope || b.Mirror != c.Mirror || b.ContentHash != c.Mirror.Hash() {
		t.Errorf("basis %s %+v, want out_of_scope with the first version's mirror", b.Status, b.Mirror)
	}
}
