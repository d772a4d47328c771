package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// TestExpiredTicketComesBack: an incident's job is cancelled when a person
// resolves it, and its ticket, final, gets the TTL; an open job's ticket
// has none. Once DynamoDB has deleted the ticket, the incident reopened
// months later gets a job of the next episode, never the first one's job
// id or event ids again: the job index outlives the ticket.
func TestExpiredTicketComesBack(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	e.setGateway(registry.Gateway{Name: "ops", Active: true})
	sysID := e.insert("incident", incident("Router down"))
	e.invoke(ctx, message(e.gw, "incident", sysID))
	first := e.events()
	if len(first) != 1 || first[0].Type != queue.EventJobCreated || first[0].Episode != 1 {
		t.Fatalf("events %v, want the first job.created", types(first))
	}
	if tk := e.ticket("incident", sysID); tk.ExpiresAt != 0 {
		t.Errorf("ticket with an open job expires at %d, want never", tk.ExpiresAt)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"state": "6"}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	e.invoke(ctx, message(e.gw, "incident", sysID))
	if evs := e.events(); len(evs) != 1 || evs[0].Type != queue.EventJobCancelled {
		t.Fatalf("events %v, want job.cancelled", types(evs))
	}
	tk := e.ticket("incident", sysID)
	if lo, hi := before.Add(state.DefaultTicketTTL).Unix(), time.Now().Add(state.DefaultTicketTTL).Unix(); tk.Status != state.StatusOutOfScope || tk.ExpiresAt < lo || tk.ExpiresAt > hi {
		t.Errorf("resolved ticket %s expires at %d, want out_of_scope expiring in [%d, %d]", tk.Status, tk.ExpiresAt, lo, hi)
	}

	// The TTL runs out and DynamoDB deletes the ticket; months later a
	// person reopens the incident.
	if _, err := e.ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.res.StateTable),
		Key: map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: tk.Key().PK()}}}); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(state.DefaultTicketTTL + 24*time.Hour) }
	deps := e.deps
	deps.Tickets = e.tickets.WithClock(later)
	p := pipeline.New(deps, pipeline.Config{Now: later, Logger: e.cfg.Logger})
	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"state": "2"}); err != nil {
		t.Fatal(err)
	}
	e.p = p
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v\n%s", failed, e.logs)
	}
	again := e.events()
	if len(again) != 1 || again[0].Type != queue.EventJobCreated {
		t.Fatalf("events %v, want a job.created", types(again))
	}
	if again[0].Episode != 2 || again[0].JobID == first[0].JobID || again[0].EventID == first[0].EventID {
		t.Errorf("job.created episode %d, job %s (first %s), event %s (first %s); want episode 2 with new ids",
			again[0].Episode, again[0].JobID, first[0].JobID, again[0].EventID, first[0].EventID)
	}
	if tk := e.ticket("incident", sysID); tk.ExpiresAt != 0 || tk.Job == nil || tk.Job.Episode != 2 {
		t.Errorf("ticket expires at %d, job %+v; want never, episode 2", tk.ExpiresAt, tk.Job)
	}
}
