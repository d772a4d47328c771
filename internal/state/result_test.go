package state_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// resultWorld is a store with a ticket whose job is open, as the
// processor leaves it.
type resultWorld struct {
	s     *state.Store
	db    *dynamodb.Client
	table string
	k     state.Key
	v     state.Claim
}

func newResultWorld(t *testing.T) *resultWorld {
	t.Helper()
	ctx := context.Background()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Resources(t).StateTable
	w := &resultWorld{s: state.New(db, table), db: db, table: table}
	w.v = claim("r1", 3, "Router down")
	w.k = w.v.Key
	if _, err := w.s.Claim(ctx, w.v); err != nil {
		t.Fatal(err)
	}
	if err := w.s.Finish(ctx, w.k, w.v.Token, state.Result{Version: 3, Status: state.StatusAccepted, JobID: "job-1"}); err != nil {
		t.Fatal(err)
	}
	job, err := attributevalue.MarshalMap(state.Job{ID: "job-1", State: state.JobOpen, Episode: 1, Sequence: 2,
		Events: []state.JobEventRecord{{Type: "job.created", Sequence: 1, EventID: "e1"}, {Type: "job.updated", Sequence: 2, EventID: "e2"}}})
	if err != nil {
		t.Fatal(err)
	}
	// An attribute of the processor's that this package does not know.
	job["processor_note"] = &ddbtypes.AttributeValueMemberS{Value: "kept"}
	w.update(t, "SET #job = :job", map[string]string{"#job": "job"}, map[string]ddbtypes.AttributeValue{":job": &ddbtypes.AttributeValueMemberM{Value: job}})
	return w
}

func (w *resultWorld) update(t *testing.T, expr string, names map[string]string, values map[string]ddbtypes.AttributeValue) {
	t.Helper()
	if _, err := w.db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(w.table), Key: map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: w.k.PK()}},
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	}); err != nil {
		t.Fatal(err)
	}
}

func (w *resultWorld) ticket(t *testing.T) state.ResultTicket {
	t.Helper()
	tk, err := w.s.TicketForResult(context.Background(), w.k)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func finish(rid, jobState string) state.ResultFinish {
	return state.ResultFinish{JobID: "job-1", Record: state.JobResultRecord{ResultID: rid, Status: "in_progress", Applied: "work note"}, JobState: jobState}
}

// TestFinishResultConcurrent: results of one job finished at once are all
// recorded, and none loses the processor's part of the job.
func TestFinishResultConcurrent(t *testing.T) {
	skipOnMoto(t)
	w := newResultWorld(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = w.s.FinishResult(context.Background(), w.k, finish(fmt.Sprintf("res-%d", i), "")) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("FinishResult(res-%d) = %v", i, err)
		}
	}
	tk := w.ticket(t)
	if len(tk.Job.Results) != n || len(tk.ResultIDs) != n {
		t.Errorf("results %d, ids %d, want %d each", len(tk.Job.Results), len(tk.ResultIDs), n)
	}
	if tk.Job.State != state.JobOpen || len(tk.Job.Events) != 2 || tk.Job.Sequence != 2 {
		t.Errorf("job = %+v, want it open with its 2 events", tk.Job)
	}
	out, err := w.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(w.table),
		Key: map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: w.k.PK()}}})
	if err != nil {
		t.Fatal(err)
	}
	if j, ok := out.Item["job"].(*ddbtypes.AttributeValueMemberM); !ok || j.Value["processor_note"] == nil {
		t.Errorf("the job map lost an attribute of the processor's: %v", out.Item["job"])
	}
}

// TestFinishResultStates walks a job through its results.
func TestFinishResultStates(t *testing.T) {
	w := newResultWorld(t)
	ctx := context.Background()
	steps := []struct {
		name      string
		f         state.ResultFinish
		wantSet   string
		wantErr   error
		wantState string
	}{
		{name: "in progress leaves it open", f: finish("a", ""), wantState: state.JobOpen},
		{name: "succeeded ends it", f: finish("b", state.JobSucceeded), wantSet: state.JobSucceeded, wantState: state.JobSucceeded},
		{name: "a later failure is recorded, the state stays", f: finish("c", state.JobFailed), wantState: state.JobSucceeded},
		{name: "the same id again", f: finish("b", state.JobSucceeded), wantErr: state.ErrResultApplied, wantState: state.JobSucceeded},
		{name: "another job's result", f: state.ResultFinish{JobID: "job-0", Record: state.JobResultRecord{ResultID: "d"}},
			wantErr: state.ErrJobChanged, wantState: state.JobSucceeded},
		{name: "another job's result, recorded anyway", f: state.ResultFinish{JobID: "job-0", Record: state.JobResultRecord{ResultID: "d"}, AnyJob: true},
			wantState: state.JobSucceeded},
	}
	for _, st := range steps {
		set, err := w.s.FinishResult(ctx, w.k, st.f)
		if !errors.Is(err, st.wantErr) || set != st.wantSet {
			t.Errorf("%s: FinishResult = %q, %v; want %q, %v", st.name, set, err, st.wantSet, st.wantErr)
		}
		if got := w.ticket(t).Job.State; got != st.wantState {
			t.Errorf("%s: job state %q, want %q", st.name, got, st.wantState)
		}
	}
	tk := w.ticket(t)
	var ids []string
	for _, r := range tk.Job.Results {
		ids = append(ids, r.ResultID)
	}
	if fmt.Sprint(ids) != "[a b c d]" || tk.Job.EndedAt.IsZero() {
		t.Errorf("results %v, ended %v; want [a b c d] and an end time", ids, tk.Job.EndedAt)
	}
}

// TestFinishResultCancelled: a job cancelled meanwhile keeps its state.
func TestFinishResultCancelled(t *testing.T) {
	w := newResultWorld(t)
	tk := w.ticket(t)
	j := *tk.Job
	j.State = state.JobCancelled
	av, _ := attributevalue.Marshal(j)
	w.update(t, "SET #job = :job", map[string]string{"#job": "job"}, map[string]ddbtypes.AttributeValue{":job": av})
	set, err := w.s.FinishResult(context.Background(), w.k, finish("x", state.JobSucceeded))
	if err != nil || set != "" {
		t.Fatalf("FinishResult = %q, %v; want no state set", set, err)
	}
	if got := w.ticket(t); got.Job.State != state.JobCancelled || !got.Applied("x") {
		t.Errorf("job %q, applied %v; want cancelled with x recorded", got.Job.State, got.ResultIDs)
	}
}

// TestRecordOwnWrite: the writer's version is recorded only when nothing
// the processor has not seen lies between.
func TestRecordOwnWrite(t *testing.T) {
	hash := claim("r1", 3, "Router down").Mirror.Hash()
	resolved := claim("r1", 4, "Router down").Mirror
	resolved.State = "6"
	tests := []struct {
		name    string
		w       state.OwnWrite
		want    bool
		wantMod int
	}{
		{name: "journal write right after", w: state.OwnWrite{Before: 3, BeforeHash: hash, After: 4}, want: true, wantMod: 4},
		{name: "field update right after", w: state.OwnWrite{Before: 3, BeforeHash: hash, After: 4,
			Version: &state.Version{Mirror: resolved, SysModCount: 4, SysUpdatedOn: "2026-01-01 10:05:00"}}, want: true, wantMod: 4},
		// The processor would find that version unchanged (the echo of its
		// acknowledgement note, typically).
		{name: "an unseen version of known content before ours", w: state.OwnWrite{Before: 4, BeforeHash: hash, After: 5}, want: true, wantMod: 5},
		{name: "someone else wrote between our read and our write", w: state.OwnWrite{Before: 3, BeforeHash: hash, After: 5}, wantMod: 3},
		{name: "content the ticket does not know", w: state.OwnWrite{Before: 3, BeforeHash: "other", After: 4}, wantMod: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newResultWorld(t)
			got, err := w.s.RecordOwnWrite(context.Background(), w.k, tt.w)
			if err != nil || got != tt.want {
				t.Fatalf("RecordOwnWrite = %v, %v; want %v", got, err, tt.want)
			}
			tk := w.ticket(t)
			if tk.SysModCount != tt.wantMod || tk.DecidedVersion == nil || *tk.DecidedVersion != tt.wantMod {
				t.Errorf("sys_mod_count %d, decided %v; want %d", tk.SysModCount, tk.DecidedVersion, tt.wantMod)
			}
			if tt.w.Version != nil && (tk.ContentHash != resolved.Hash() || tk.State != "6") {
				t.Errorf("mirror not recorded: state %q, hash %s", tk.State, tk.ContentHash)
			}
			if tk.ClaimToken != "" || tk.ClaimExpires != 0 {
				t.Errorf("claim touched: %q %d", tk.ClaimToken, tk.ClaimExpires)
			}
			// The processor's claim of our version is stale now.
			c := claim("r1", tt.w.After, "Router down")
			if tt.w.Version != nil {
				c.Mirror = resolved
			}
			_, err = w.s.Claim(context.Background(), c)
			if stale := errors.Is(err, state.ErrStale); stale != tt.want {
				t.Errorf("Claim(version %d) = %v, want stale %v", tt.w.After, err, tt.want)
			}
		})
	}
}

// TestStartResult: while a delivery holds a result, another is told to
// come back when its lease ends; once it is given back, a second start
// resumes the first with its start time and steps.
func TestStartResult(t *testing.T) {
	w := newResultWorld(t)
	ctx := context.Background()
	p, err := w.s.StartResult(ctx, "job-1", "r")
	if err != nil || p.Resumed || len(p.Steps) != 0 {
		t.Fatalf("StartResult = %+v, %v; want a new one", p, err)
	}
	if err := w.s.ResultStepDone(ctx, "job-1", "r", "comment"); err != nil {
		t.Fatal(err)
	}
	var busy *state.ResultBusyError
	if _, err := w.s.StartResult(ctx, "job-1", "r"); !errors.As(err, &busy) || busy.Until.Before(time.Now()) {
		t.Fatalf("StartResult while held = %v, want busy until the lease ends", err)
	}
	if err := w.s.ReleaseResult(ctx, p); err != nil {
		t.Fatal(err)
	}
	again, err := w.s.StartResult(ctx, "job-1", "r")
	if err != nil || !again.Resumed || !again.Done("comment") || again.Done("resolve") || !again.StartedAt.Equal(p.StartedAt.Truncate(time.Nanosecond)) {
		t.Errorf("StartResult again = %+v, %v; want the first resumed with its comment done", again, err)
	}
}
