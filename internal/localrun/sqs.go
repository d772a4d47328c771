package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is what the event source needs of an SQS client.
type SQSAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Invoker is what the drivers need of a Lambda client.
type Invoker interface {
	Invoke(context.Context, *lambda.InvokeInput, ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// SQSSource is Lambda's SQS event source mapping for one queue and function,
// with ReportBatchItemFailures on: it long polls the queue, invokes the
// function with batches in the events.SQSEvent shape, deletes the messages
// the function handled and leaves the failures (all of them when the
// invocation fails) to become visible again, so the queue's redrive policy
// moves a message that keeps failing to the dead-letter queue, as in AWS.
//
// Like the mapping, which adds pollers while the queue has a backlog, up to
// its maximum concurrency, it runs up to Concurrency pollers, each gathering
// and delivering batches on its own, so that many batches can be in flight
// at once (the function needs as many execution environments to run them
// side by side). With a batching window, one poller is always active; a
// receive that finds a full batch already waiting (a backlog) activates one
// more, and a batch the window closed on before it filled lets one go idle.
// Without that, pollers would split a trickle into small batches that each
// wait out the window. Without a window (SQS's default, and the stack's),
// every poller long polls, as Lambda's do: a receive answers as soon as a
// message is there, and its batch goes to the function at once with what
// that receive got, so a message never waits for a poller to be free
// unless all of them are busy.
type SQSSource struct {
	SQS    SQSAPI
	Lambda Invoker
	Log    *slog.Logger

	QueueURL string
	Function string
	Region   string
	// BatchSize is at most 10 (the default).
	BatchSize int
	// Window is how long to gather a batch once a first message arrived
	// (MaximumBatchingWindowInSeconds); zero sends what one receive got.
	Window time.Duration
	// WaitTime is the long-poll wait, 20s (what Lambda uses) when zero.
	WaitTime time.Duration
	// Concurrency is the most batches in flight at once, the mapping's
	// ScalingConfig.MaximumConcurrency (1 when zero).
	Concurrency int
}

// Run polls until ctx is done; it returns early only when the queue cannot
// be found.
func (s *SQSSource) Run(ctx context.Context) error {
	attrs, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(s.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("get ARN of queue %s: %w", s.QueueURL, err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	sc := &scaler{max: int32(max(s.Concurrency, 1))}
	sc.active.Store(1)
	if s.Window <= 0 {
		sc.active.Store(sc.max)
	}
	var wg sync.WaitGroup
	for i := range sc.max {
		wg.Go(func() { s.poll(ctx, arn, sc, i) })
	}
	wg.Wait()
	return nil
}

// scaler counts the active pollers: pollers 0 to active-1 poll, the others
// wait to be needed.
type scaler struct {
	max    int32
	active atomic.Int32
}

// observe adjusts the active pollers after a batch was gathered: backlog
// when its first receive found it full, short when the window closed first.
func (sc *scaler) observe(backlog, short bool) {
	for {
		cur := sc.active.Load()
		next := cur
		switch {
		case backlog && cur < sc.max:
			next = cur + 1
		case short && cur > 1:
			next = cur - 1
		}
		if next == cur || sc.active.CompareAndSwap(cur, next) {
			return
		}
	}
}

// idleCheck is how often an idle poller looks whether it is needed.
const idleCheck = 20 * time.Millisecond

// poll is poller i: while active, it gathers a batch, invokes the function
// with it and waits for the result before it gathers the next, until ctx is
// done.
func (s *SQSSource) poll(ctx context.Context, arn string, sc *scaler, i int32) {
	for ctx.Err() == nil {
		if i >= sc.active.Load() {
			sleep(ctx, idleCheck)
			continue
		}
		msgs, backlog, err := s.gather(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Error("receive from queue", "queue", s.QueueURL, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		if s.Window > 0 {
			sc.observe(backlog, int32(len(msgs)) < s.batchSize())
		}
		s.deliver(ctx, arn, msgs)
	}
}

func (s *SQSSource) batchSize() int32 {
	if s.BatchSize <= 0 || s.BatchSize > 10 {
		return 10
	}
	return int32(s.BatchSize)
}

// gather long polls for a first message, then keeps receiving until the
// batch is full or the batching window has passed. backlog reports that the
// first receive already filled the batch: messages were waiting.
func (s *SQSSource) gather(ctx context.Context) (msgs []sqstypes.Message, backlog bool, err error) {
	wait := s.WaitTime
	if wait <= 0 {
		wait = 20 * time.Second
	}
	msgs, err = s.receive(ctx, s.batchSize(), int32(wait/time.Second))
	backlog = int32(len(msgs)) >= s.batchSize()
	if err != nil || len(msgs) == 0 || s.Window <= 0 {
		return msgs, backlog, err
	}
	deadline := time.Now().Add(s.Window)
	for int32(len(msgs)) < s.batchSize() && time.Now().Before(deadline) {
		// Short receives only: cancelling a long poll could lose messages
		// the queue already handed out until their visibility times out.
		more, err := s.receive(ctx, s.batchSize()-int32(len(msgs)), 0)
		if err != nil {
			if ctx.Err() == nil {
				// The batch goes out with what it has; a receive whose
				// answer did not arrive may have taken messages, which
				// come back after the visibility timeout.
				s.Log.Warn("receive more messages for a batch", "queue", s.QueueURL, "messages", len(msgs), "error", err)
			}
			return msgs, backlog, nil
		}
		msgs = append(msgs, more...)
		if len(more) == 0 {
			sleep(ctx, min(50*time.Millisecond, time.Until(deadline)))
		}
	}
	return msgs, backlog, nil
}

func (s *SQSSource) receive(ctx context.Context, n, waitSeconds int32) ([]sqstypes.Message, error) {
	out, err := s.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(s.QueueURL),
		MaxNumberOfMessages:         n,
		WaitTimeSeconds:             waitSeconds,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", s.QueueURL, err)
	}
	return out.Messages, nil
}

// deliver invokes the function with one batch and deletes what it handled.
func (s *SQSSource) deliver(ctx context.Context, arn string, msgs []sqstypes.Message) {
	event := SQSEvent(msgs, arn, s.Region)
	payload, err := json.Marshal(event)
	if err != nil {
		s.Log.Error("encode SQS event", "error", err)
		return
	}
	out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(s.Function),
		Payload:      payload,
	})
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error("invoke function with SQS batch; the batch will be retried",
				"function", s.Function, "messages", len(msgs), "error", err)
		}
		return
	}
	if out.FunctionError != nil {
		s.Log.Warn("function failed on SQS batch; the batch will be retried",
			"function", s.Function, "messages", len(msgs),
			"error", aws.ToString(out.FunctionError), "payload", string(out.Payload))
		return
	}
	failed, all := BatchFailures(event, out.Payload)
	if all {
		s.Log.Warn("invalid batch response; the batch will be retried",
			"function", s.Function, "messages", len(msgs), "payload", string(out.Payload))
		return
	}
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for _, m := range msgs {
		if failed[aws.ToString(m.MessageId)] {
			continue
		}
		entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{
			Id: m.MessageId, ReceiptHandle: m.ReceiptHandle,
		})
	}
	if len(failed) > 0 {
		s.Log.Info("function reported failed messages; they will be retried",
			"function", s.Function, "failed", len(failed), "messages", len(msgs))
	}
	if len(entries) == 0 {
		return
	}
	res, err := s.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(s.QueueURL), Entries: entries,
	})
	if err != nil {
		s.Log.Error("delete handled messages", "queue", s.QueueURL, "error", err)
		return
	}
	for _, f := range res.Failed {
		s.Log.Error("delete handled message", "queue", s.QueueURL,
			"message_id", aws.ToString(f.Id), "error", aws.ToString(f.Message))
	}
}

// SQSEvent is the event Lambda builds for a batch received from the queue
// with the given ARN.
func SQSEvent(msgs []sqstypes.Message, queueARN, region string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             m.Attributes,
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSourceARN:         queueARN,
			EventSource:            "aws:sqs",
			AWSRegion:              region,
		}
		if rec.Attributes == nil {
			rec.Attributes = map[string]string{}
		}
		for name, a := range m.MessageAttributes {
			rec.MessageAttributes[name] = events.SQSMessageAttribute{
				StringValue:      a.StringValue,
				BinaryValue:      a.BinaryValue,
				StringListValues: orEmpty(a.StringListValues),
				BinaryListValues: orEmpty(a.BinaryListValues),
				DataType:         aws.ToString(a.DataType),
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// orEmpty makes nil lists encode as [] the way Lambda sends them.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// BatchFailures reads a function's events.SQSEventResponse. all is true
// when Lambda would treat the whole batch as failed: a response it cannot
// parse, or an item identifier that is empty or not in the batch. A response
// without batchItemFailures (null, {} or an empty list) means all succeeded.
func BatchFailures(event events.SQSEvent, payload []byte) (failed map[string]bool, all bool) {
	failed = map[string]bool{}
	trimmed := strings.TrimSpace(string(payload))
	if trimmed == "" || trimmed == "null" {
		return failed, false
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, true
	}
	inBatch := make(map[string]bool, len(event.Records))
	for _, r := range event.Records {
		inBatch[r.MessageId] = true
	}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == "" || !inBatch[f.ItemIdentifier] {
			return nil, true
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, false
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
