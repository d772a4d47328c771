package writer_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/writer"
)

// pacing rebuilds the writer with policy p and clock now (nil: the real one).
func (e *env) pacing(p redelivery.Policy, now func() time.Time) {
	cfg := e.cfg
	cfg.Retry, cfg.Now = p, now
	e.w = writer.New(e.deps, cfg)
}

// send puts a result on the results queue, with a message attribute.
func (e *env) send(r queue.JobResult) string {
	e.t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(e.results), MessageBody: aws.String(string(b)),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"engine": {DataType: aws.String("String"), StringValue: aws.String("demo")},
		},
	}); err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// receiveResults receives what is visible on the results queue now, as the
// event source hands it to the function.
func (e *env) receiveResults() []events.SQSMessage {
	e.t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(e.results), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var msgs []events.SQSMessage
	for _, m := range out.Messages {
		msgs = append(msgs, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: m.Attributes, EventSource: "aws:sqs",
		})
	}
	return msgs
}

// logged is the "result processed" log line of a message.
func (e *env) logged(messageID string) map[string]any {
	e.t.Helper()
	var last map[string]any
	for line := range strings.SplitSeq(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "result processed" && m["message_id"] == messageID {
			last = m
		}
	}
	if last == nil {
		e.t.Fatalf("no log line for message %s:\n%s", messageID, e.logs.String())
	}
	return last
}

// TestTransientFailureBacksOff: a result whose write fails (the instance
// answers 500) is hidden for the backoff, then back on its second receive
// and applied.
func TestTransientFailureBacksOff(t *testing.T) {
	e := newEnv(t)
	e.pacing(redelivery.Policy{Base: 2 * time.Second, Cap: 2 * time.Second, Jitter: func(n int64) int64 { return n - 1 }}, nil)
	sysID, jobID := e.openJob("incident", incident())
	e.send(result(jobID, queue.ResultInProgress))
	msgs := e.receiveResults()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	e.sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	if failed := e.invoke(msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message", failed)
	}
	if got := e.logged(msgs[0].MessageId)["retry_in_s"]; got != 2.0 {
		t.Errorf("retry_in_s = %v, want 2", got)
	}
	if again := e.receiveResults(); len(again) != 0 {
		t.Fatal("the failed message is visible at once")
	}
	e.sim.SetFaults(snowsim.Faults{})
	var again []events.SQSMessage
	for end := time.Now().Add(30 * time.Second); len(again) == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		again = e.receiveResults()
	}
	if len(again) != 1 || again[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after the backoff received %+v, want the message on its second receive", again)
	}
	if failed := e.invoke(again...); len(failed) != 0 {
		t.Fatalf("second delivery: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 1 {
		t.Errorf("work notes %q, want one", got.WorkNotes)
	}
}

// TestPastTheHorizonIsDeadLettered: a result older than the retry horizon
// (a clock a day ahead) whose write fails is given up and reaches the
// dead-letter queue through the redrive policy, body and attributes
// unchanged, without being applied on the receives in between.
func TestPastTheHorizonIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.pacing(redelivery.Policy{}, func() time.Time { return time.Now().Add(schema.RetryHorizon + time.Hour) })
	sysID, jobID := e.openJob("incident", incident())
	body := e.send(result(jobID, queue.ResultInProgress))

	e.sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	msgs := e.receiveResults()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	if failed := e.invoke(msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message", failed)
	}
	if got := e.logged(msgs[0].MessageId)["dead_letter"]; got != true {
		t.Errorf("dead_letter = %v, want true", got)
	}
	e.sim.SetFaults(snowsim.Faults{})

	deliveries := 1
	for {
		msgs := e.receiveResults()
		if len(msgs) == 0 {
			break
		}
		if deliveries++; deliveries > schema.Results.MaxReceiveCount {
			t.Fatalf("delivered %d times, past the queue's maximum receives", deliveries)
		}
		if failed := e.invoke(msgs...); len(failed) != 1 {
			t.Fatalf("delivery %d: batch failures %v, want the message", deliveries, failed)
		}
	}
	if deliveries != schema.Results.MaxReceiveCount {
		t.Errorf("delivered %d times, want %d", deliveries, schema.Results.MaxReceiveCount)
	}
	dead := awstest.Drain(t, e.sqs, e.resultsDLQ)
	if len(dead) != 1 || aws.ToString(dead[0].Body) != body {
		t.Fatalf("dead-letter queue holds %d messages, want the result unchanged", len(dead))
	}
	attrs := map[string]string{}
	for k, a := range dead[0].MessageAttributes {
		attrs[k] = aws.ToString(a.StringValue)
	}
	if diff := cmp.Diff(map[string]string{"engine": "demo"}, attrs); diff != "" {
		t.Errorf("dead-lettered attributes (-want +got):\n%s", diff)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 0 {
		t.Errorf("work notes %q written past the horizon, want none", got.WorkNotes)
	}
}
