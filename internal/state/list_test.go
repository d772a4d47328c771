package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// TestListProjection: the gateway index holds what a listing shows and
// filters on (status, the job's state, the update time, the number, the
// version, the reason, the last outcome) and projects only those; Full
// reads the listed tickets whole, the same as Get.
func TestListProjection(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newStore(t).WithClock(clk.now)
	for i, id := range []string{"p1", "p2"} {
		clk.t = clk.t.Add(time.Minute)
		c := claim(id, 1, "Router down")
		c.Mirror.Description = "a long description the index does not keep"
		if _, err := s.Claim(ctx, c); err != nil {
			t.Fatal(err)
		}
		r := state.Result{Version: 1, Status: state.StatusAccepted, Reason: "new record", JobID: "job-" + id, JobOpen: true,
			Job: &state.Job{ID: "job-" + id, State: state.JobOpen, Episode: 1, Sequence: 1, OpenedAt: clk.t}}
		if i == 1 {
			r.Job.State = state.JobSucceeded
		}
		if err := s.Finish(ctx, c.Key, c.Token, r); err != nil {
			t.Fatal(err)
		}
	}
	listed, err := s.List(ctx, state.ListOptions{GatewayID: gtw, JobState: state.JobOpen})
	if err != nil || len(listed) != 1 || listed[0].SysID != "p1" {
		t.Fatalf("List(job state open) = %v, %v; want p1", listed, err)
	}
	full, err := s.List(ctx, state.ListOptions{GatewayID: gtw, Full: true})
	if err != nil || len(full) != 2 {
		t.Fatalf("List(Full) = %v, %v; want 2 tickets", full, err)
	}
	for _, tk := range full {
		got, err := s.Get(ctx, tk.Key())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, tk); diff != "" {
			t.Errorf("List(Full) differs from Get (-get +list):\n%s", diff)
		}
	}
	summary, err := s.List(ctx, state.ListOptions{GatewayID: gtw})
	if err != nil || len(summary) != 2 {
		t.Fatalf("List = %v, %v", summary, err)
	}
	for i, tk := range summary {
		w := full[i]
		shown := func(t state.Ticket) []any {
			return []any{t.GatewayID, t.Table, t.SysID, t.Number, t.SysModCount, t.Status, t.Reason, t.LastOutcome, t.Job, t.JobID, t.UpdatedAt}
		}
		if diff := cmp.Diff(shown(w), shown(tk)); diff != "" {
			t.Errorf("listed ticket %s lacks what a listing shows (-whole +listed):\n%s", w.SysID, diff)
		}
	}

	// The index as the table has it (the embedded emulator returns every
	// attribute whatever the projection, so the items cannot show it).
	r := awstest.Resources(t)
	out, err := dynamodb.NewFromConfig(awstest.Config(t)).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.StateTable)})
	if err != nil {
		t.Fatal(err)
	}
	var proj *ddbtypes.Projection
	for _, ix := range out.Table.GlobalSecondaryIndexes {
		if aws.ToString(ix.IndexName) == schema.IndexByGateway {
			proj = ix.Projection
		}
	}
	if proj == nil || proj.ProjectionType != ddbtypes.ProjectionTypeInclude {
		t.Fatalf("index %s projection %+v, want INCLUDE", schema.IndexByGateway, proj)
	}
	if diff := cmp.Diff(schema.TicketListAttributes, proj.NonKeyAttributes, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("index %s projects (-want +got):\n%s", schema.IndexByGateway, diff)
	}
}
