package pipeline_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// sqsMaxMessage is SQS's limit on a message (body and attributes).
const sqsMaxMessage = 256 << 10

// TestOversizedRecord: an incident with a 1 MiB description, of the
// characters JSON escapes the longest, gets its job like any other: the
// job.created fits in an SQS message, carries the description cut to its
// cap with the full text's hash, and the ticket stores the cut text. An
// edit past the cap is a job.updated naming the description, and a
// 1 MiB comment mentioning the gateway is a follow-up within its cap.
func TestOversizedRecord(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	e.setGateway(registry.Gateway{Name: "ops", Active: true})
	big := strings.Repeat("<&>\x01", 1<<18)
	fields := incident("Router down")
	fields["description"] = big + "first"
	sysID := e.insert("incident", fields)
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v\n%s", failed, e.logs)
	}
	created := e.rawEvents()
	if len(created) != 1 || created[0].ev.Type != queue.EventJobCreated {
		t.Fatalf("events %v, want one job.created", created)
	}
	ev := created[0].ev
	if created[0].size > sqsMaxMessage/2 || ev.Ticket.DescriptionSHA256 == "" || !strings.HasPrefix(big, ev.Ticket.Description) || ev.Ticket.Description == "" {
		t.Errorf("job.created of %d bytes, description %d bytes, hash %q; want well under %d, cut, hashed",
			created[0].size, len(ev.Ticket.Description), ev.Ticket.DescriptionSHA256, sqsMaxMessage)
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusAccepted || tk.Description != ev.Ticket.Description || tk.DescriptionSHA256 != ev.Ticket.DescriptionSHA256 {
		t.Errorf("ticket %s, description %d bytes, hash %q; want accepted with the event's cut description", tk.Status, len(tk.Description), tk.DescriptionSHA256)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"description": big + "second"}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	updated := e.rawEvents()
	if len(updated) != 1 || updated[0].ev.Type != queue.EventJobUpdated || !slices.Contains(updated[0].ev.ChangedFields, servicenow.FieldDescription) {
		t.Fatalf("events after an edit past the cap %+v, want a job.updated naming the description", updated)
	}
	if u := updated[0].ev.Ticket; u.Description != ev.Ticket.Description || u.DescriptionSHA256 == ev.Ticket.DescriptionSHA256 {
		t.Errorf("updated description same %v, hash same %v; want the same beginning, a new hash",
			u.Description == ev.Ticket.Description, u.DescriptionSHA256 == ev.Ticket.DescriptionSHA256)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"comments": "@2501 " + big}); err != nil {
		t.Fatal(err)
	}
	if failed := e.invoke(ctx, message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v", failed)
	}
	follow := e.rawEvents()
	if len(follow) != 1 || follow[0].ev.Type != queue.EventJobFollowUp || follow[0].ev.Message == nil {
		t.Fatalf("events after a long comment %+v, want a job.follow_up", follow)
	}
	if m := follow[0].ev.Message; m.TextSHA256 == "" || !strings.HasPrefix(m.Text, "@2501 ") || follow[0].size > sqsMaxMessage/2 {
		t.Errorf("follow-up of %d bytes, text %d bytes, hash %q; want cut and hashed", follow[0].size, len(m.Text), m.TextSHA256)
	}
}

type rawEvent struct {
	ev   queue.JobEvent
	size int // body and attributes, as SQS counts them
}

// rawEvents drains the dispatch queue with each message's size.
func (e *env) rawEvents() []rawEvent {
	e.t.Helper()
	var out []rawEvent
	for _, m := range awstest.Drain(e.t, e.sqs, e.res.DispatchQueueURL) {
		body := aws.ToString(m.Body)
		size := len(body)
		for k, v := range m.MessageAttributes {
			size += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
		}
		var ev queue.JobEvent
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			e.t.Fatalf("dispatch message: %v", err)
		}
		out = append(out, rawEvent{ev: ev, size: size})
	}
	return out
}
