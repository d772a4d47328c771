package pipeline_test

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
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// pacing gives the test's processor the intake queue to pace failed
// messages on, with policy p and clock now (nil: the real one).
func (e *env) pacing(p redelivery.Policy, now func() time.Time) {
	deps, cfg := e.deps, e.cfg
	deps.Queue, cfg.QueueURL, cfg.Retry, cfg.Now = e.sqs, e.res.IntakeQueueURL, p, now
	e.p = pipeline.New(deps, cfg)
}

// enqueue sends an intake message for a record through the real queue,
// with a message attribute as ingest sets one.
func (e *env) enqueue(body string) {
	e.t.Helper()
	if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(e.res.IntakeQueueURL), MessageBody: aws.String(body),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"webhook_id": {DataType: aws.String("String"), StringValue: aws.String("whk_test")},
		},
	}); err != nil {
		e.t.Fatal(err)
	}
}

// receiveIntake receives what is visible on the intake queue now, as the
// event source hands it to the function.
func (e *env) receiveIntake() []events.SQSMessage {
	e.t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(e.res.IntakeQueueURL), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var msgs []events.SQSMessage
	for _, m := range out.Messages {
		rec := events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: m.Attributes, MessageAttributes: map[string]events.SQSMessageAttribute{}, EventSource: "aws:sqs",
		}
		for k, a := range m.MessageAttributes {
			rec.MessageAttributes[k] = events.SQSMessageAttribute{DataType: aws.ToString(a.DataType), StringValue: a.StringValue}
		}
		msgs = append(msgs, rec)
	}
	return msgs
}

// awaitIntake receives until a message is visible again, for at most
// limit: a message hidden for the queue's visibility timeout (3 min) would
// not be.
func (e *env) awaitIntake(limit time.Duration) []events.SQSMessage {
	e.t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if msgs := e.receiveIntake(); len(msgs) > 0 {
			return msgs
		}
	}
	return nil
}

// processed is the "message processed" log line of a message.
func (e *env) processed(messageID string) map[string]any {
	e.t.Helper()
	var last map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "message processed" && m["message_id"] == messageID {
			last = m
		}
	}
	if last == nil {
		e.t.Fatalf("no log line for message %s:\n%s", messageID, e.logs.String())
	}
	return last
}

func intakeBody(t *testing.T, gw, sysID string) string {
	t.Helper()
	b, err := json.Marshal(queue.IntakeMessage{GatewayID: gw, Table: "incident", SysID: sysID, Source: queue.SourceWebhook, ReceivedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTransientFailureBacksOff: a message that fails transiently (the
// instance answers 500) is reported failed with its visibility set to the
// backoff, not left to the queue's three-minute visibility timeout: it is
// hidden at once and back after the backoff, on its second receive.
func TestTransientFailureBacksOff(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	e.pacing(redelivery.Policy{Base: 2 * time.Second, Cap: 2 * time.Second, Jitter: func(n int64) int64 { return n - 1 }}, nil)
	sysID := e.insert("incident", incident("Backoff"))
	e.enqueue(intakeBody(t, e.gw, sysID))
	msgs := e.receiveIntake()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}

	e.sim.Sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	if failed := e.invoke(context.Background(), msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message", failed)
	}
	if got := e.processed(msgs[0].MessageId)["retry_in_s"]; got != 2.0 {
		t.Errorf("retry_in_s = %v, want 2 (the backoff at the long end of its jitter)", got)
	}
	if again := e.receiveIntake(); len(again) != 0 {
		t.Fatal("the failed message is visible at once")
	}

	e.sim.Sim.SetFaults(snowsim.Faults{})
	again := e.awaitIntake(30 * time.Second)
	if len(again) != 1 {
		t.Fatal("the failed message did not come back after its backoff")
	}
	if got := again[0].Attributes["ApproximateReceiveCount"]; got != "2" {
		t.Errorf("ApproximateReceiveCount = %s, want 2", got)
	}
	if failed := e.invoke(context.Background(), again...); len(failed) != 0 {
		t.Fatalf("second delivery: batch failures %v; logs:\n%s", failed, e.logs.String())
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs, want 1", len(jobs))
	}
}

// TestRetryAfter: a 429 whose Retry-After (an hour) is longer than the
// backoff hides the message for the Retry-After, within the policy's
// MaxWait.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		want    float64 // retry_in_s
		back    bool    // visible again within a few seconds
	}{
		{name: "honoured", want: 3600},
		{name: "capped", maxWait: 2 * time.Second, want: 2, back: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pipeline.Config{})
			e.pacing(redelivery.Policy{Base: time.Second, Cap: time.Second, MaxWait: tt.maxWait, Jitter: func(int64) int64 { return 0 }}, nil)
			sysID := e.insert("incident", incident("Throttled"))
			e.enqueue(intakeBody(t, e.gw, sysID))
			msgs := e.receiveIntake()
			if len(msgs) != 1 {
				t.Fatalf("received %d messages, want 1", len(msgs))
			}
			e.sim.Sim.SetFaults(snowsim.Faults{Status429Rate: 1, RetryAfter: time.Hour})
			if failed := e.invoke(context.Background(), msgs...); len(failed) != 1 {
				t.Fatalf("batch failures %v, want the message", failed)
			}
			if got := e.processed(msgs[0].MessageId)["retry_in_s"]; got != tt.want {
				t.Errorf("retry_in_s = %v, want %v", got, tt.want)
			}
			// Three times the backoff: the message is back by then only if
			// the Retry-After was capped.
			if got := e.awaitIntake(3*time.Second) != nil; got != tt.back {
				t.Errorf("visible again within 3 s: %v, want %v", got, tt.back)
			}
		})
	}
}

// deadLetter delivers the intake queue's messages to the processor, each
// receive at once, until the queue's redrive policy has moved them, and
// returns the number of deliveries.
func (e *env) deadLetter(limit int) int {
	e.t.Helper()
	n := 0
	for {
		msgs := e.receiveIntake()
		if len(msgs) == 0 {
			return n
		}
		if n++; n > limit {
			e.t.Fatalf("delivered %d times, past the queue's maximum receives", n)
		}
		if failed := e.invoke(context.Background(), msgs...); len(failed) != len(msgs) {
			e.t.Fatalf("delivery %d: batch failures %v, want every message", n, failed)
		}
	}
}

// dlqHolds checks that the intake DLQ holds exactly the message sent,
// body and attributes unchanged.
func (e *env) dlqHolds(body string) {
	e.t.Helper()
	dead := awstest.Drain(e.t, e.sqs, e.res.IntakeDLQURL)
	if len(dead) != 1 {
		e.t.Fatalf("dead-letter queue holds %d messages, want 1", len(dead))
	}
	if got := aws.ToString(dead[0].Body); got != body {
		e.t.Errorf("dead-lettered body %q, want %q", got, body)
	}
	attrs := map[string]string{}
	for k, a := range dead[0].MessageAttributes {
		attrs[k] = aws.ToString(a.DataType) + ":" + aws.ToString(a.StringValue)
	}
	if diff := cmp.Diff(map[string]string{"webhook_id": "String:whk_test"}, attrs); diff != "" {
		e.t.Errorf("dead-lettered attributes (-want +got):\n%s", diff)
	}
}

// TestPastTheHorizonIsDeadLettered: a message older than the retry horizon
// (a clock a day ahead) that fails is given up: made visible at once and
// reported failed, without work, on every receive, until the intake
// queue's redrive policy moves it, unchanged, to the dead-letter queue —
// even though ServiceNow works again after the first failure.
func TestPastTheHorizonIsDeadLettered(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	e.pacing(redelivery.Policy{}, func() time.Time { return time.Now().Add(schema.RetryHorizon + time.Hour) })
	sysID := e.insert("incident", incident("Too old"))
	body := intakeBody(t, e.gw, sysID)
	e.enqueue(body)

	e.sim.Sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	msgs := e.receiveIntake()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	if failed := e.invoke(context.Background(), msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message", failed)
	}
	if got := e.processed(msgs[0].MessageId)["dead_letter"]; got != true {
		t.Errorf("dead_letter = %v, want true", got)
	}
	e.sim.Sim.SetFaults(snowsim.Faults{})

	if n := e.deadLetter(schema.Intake.MaxReceiveCount); n != schema.Intake.MaxReceiveCount-1 {
		t.Errorf("delivered %d more times, want %d (the receives the redrive count leaves)", n, schema.Intake.MaxReceiveCount-1)
	}
	e.dlqHolds(body)
	if jobs := e.jobs(); len(jobs) != 0 {
		t.Errorf("dispatched %d jobs, want none: a message past the horizon is not processed again", len(jobs))
	}
}

// TestYoungFailureIsNotDeadLettered: the same failure within the horizon
// keeps the message out of the dead-letter queue.
func TestYoungFailureIsNotDeadLettered(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	e.pacing(redelivery.Policy{}, nil)
	sysID := e.insert("incident", incident("Young"))
	e.enqueue(intakeBody(t, e.gw, sysID))
	e.sim.Sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	msgs := e.receiveIntake()
	if failed := e.invoke(context.Background(), msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message", failed)
	}
	if got, ok := e.processed(msgs[0].MessageId)["retry_in_s"].(float64); !ok || got < 30 || got > 60 {
		t.Errorf("retry_in_s = %v, want the first backoff (30 to 60 s)", got)
	}
	if dead := awstest.Drain(t, e.sqs, e.res.IntakeDLQURL); len(dead) != 0 {
		t.Errorf("dead-letter queue holds %d messages, want none", len(dead))
	}
}

// TestPoisonIsDeadLettered: a message that is not an intake message goes
// to the dead-letter queue unchanged, through the redrive policy, without
// waiting out a visibility timeout per receive.
func TestPoisonIsDeadLettered(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	e.pacing(redelivery.Policy{}, nil)
	const body = `{"gateway_id": "not json`
	e.enqueue(body)
	if n := e.deadLetter(schema.Intake.MaxReceiveCount); n != schema.Intake.MaxReceiveCount {
		t.Errorf("delivered %d times, want %d", n, schema.Intake.MaxReceiveCount)
	}
	e.dlqHolds(body)
}
