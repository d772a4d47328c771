package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// MaxBatch is the most entries SQS takes in one SendMessageBatch call.
const MaxBatch = 10

// batchAttempts is how often SendBatch offers an entry that SQS reported
// failed (without blaming the sender) before giving up on it. The SDK
// already retries whole calls that fail in transit.
const batchAttempts = 3

// ErrNoSource is returned for an intake message without a source.
var ErrNoSource = errors.New("intake message has no source")

// Sender sends messages to one SQS queue.
type Sender struct {
	sqs *sqs.Client
	url string
}

// NewSender returns a Sender for the queue at url.
func NewSender(client *sqs.Client, url string) *Sender {
	return &Sender{sqs: client, url: url}
}

// Send puts one intake message on the queue, with its source as the
// "source" message attribute.
func (s *Sender) Send(ctx context.Context, m IntakeMessage) error {
	body, err := intakeBody(m)
	if err != nil {
		return err
	}
	_, err = s.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(s.url),
		MessageBody:       aws.String(body),
		MessageAttributes: stringAttrs(map[string]string{AttrSource: m.Source}),
	})
	if err != nil {
		return fmt.Errorf("send %s: %w", describe(m), err)
	}
	return nil
}

// SendJSON puts one message with a JSON body and string attributes on the
// queue (the processor's job requests on the dispatch queue).
func (s *Sender) SendJSON(ctx context.Context, body any, attrs map[string]string) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	_, err = s.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(s.url),
		MessageBody:       aws.String(string(b)),
		MessageAttributes: stringAttrs(attrs),
	})
	if err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	return nil
}

// Failure is one message SendBatch could not send, and why.
type Failure struct {
	Message IntakeMessage
	Reason  string
}

// BatchError lists the messages SendBatch could not send; the others were sent.
type BatchError struct {
	Total  int
	Failed []Failure
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "send batch: %d of %d messages not sent", len(e.Failed), e.Total)
	const shown = 5
	for i, f := range e.Failed {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-shown)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", describe(f.Message), f.Reason)
	}
	return b.String()
}

// SendBatch sends messages in chunks of MaxBatch. Entries that SQS reports
// failed through no fault of the sender are offered again, up to three
// times in all. Every chunk is attempted even when an earlier one failed,
// so that as much as possible gets through; the error, a *BatchError,
// names each message that did not.
func (s *Sender) SendBatch(ctx context.Context, msgs []IntakeMessage) error {
	var failed []Failure
	for start := 0; start < len(msgs); start += MaxBatch {
		chunk := msgs[start:min(start+MaxBatch, len(msgs))]
		failed = append(failed, s.sendChunk(ctx, chunk)...)
	}
	if len(failed) > 0 {
		return &BatchError{Total: len(msgs), Failed: failed}
	}
	return nil
}

func (s *Sender) sendChunk(ctx context.Context, chunk []IntakeMessage) []Failure {
	var failed []Failure
	// pending maps the entry id (the index in chunk) to the entry.
	pending := make(map[string]sqstypes.SendMessageBatchRequestEntry, len(chunk))
	for i, m := range chunk {
		body, err := intakeBody(m)
		if err != nil {
			failed = append(failed, Failure{Message: m, Reason: err.Error()})
			continue
		}
		id := strconv.Itoa(i)
		pending[id] = sqstypes.SendMessageBatchRequestEntry{
			Id:                aws.String(id),
			MessageBody:       aws.String(body),
			MessageAttributes: stringAttrs(map[string]string{AttrSource: m.Source}),
		}
	}
	reasons := map[string]string{}
	for attempt := 1; len(pending) > 0 && attempt <= batchAttempts; attempt++ {
		if attempt > 1 {
			if err := backoff(ctx, attempt); err != nil {
				break
			}
		}
		entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, len(pending))
		for _, e := range pending {
			entries = append(entries, e)
		}
		sort.Slice(entries, func(i, j int) bool { return idIndex(entries[i].Id) < idIndex(entries[j].Id) })
		out, err := s.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.url), Entries: entries})
		if err != nil {
			// The SDK has retried the call already: record and move on.
			for id := range pending {
				reasons[id] = err.Error()
			}
			break
		}
		for _, ok := range out.Successful {
			delete(pending, aws.ToString(ok.Id))
		}
		for _, f := range out.Failed {
			id := aws.ToString(f.Id)
			reasons[id] = fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				// The same entry would fail again.
				delete(pending, id)
				failed = append(failed, Failure{Message: chunk[idIndex(&id)], Reason: reasons[id]})
			}
		}
	}
	for id := range pending {
		reason := reasons[id]
		if reason == "" {
			reason = "not sent"
			if err := ctx.Err(); err != nil {
				reason = err.Error()
			}
		}
		failed = append(failed, Failure{Message: chunk[idIndex(&id)], Reason: reason})
	}
	return failed
}

func intakeBody(m IntakeMessage) (string, error) {
	if m.Source == "" {
		return "", fmt.Errorf("%s: %w", describe(m), ErrNoSource)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", describe(m), err)
	}
	return string(b), nil
}

// describe names a message in errors: where it is from and which record.
func describe(m IntakeMessage) string {
	return fmt.Sprintf("%s %s/%s/%s", m.Source, m.GatewayID, m.Table, m.SysID)
}

func stringAttrs(attrs map[string]string) map[string]sqstypes.MessageAttributeValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]sqstypes.MessageAttributeValue, len(attrs))
	for k, v := range attrs {
		if v == "" {
			continue // SQS rejects empty attribute values
		}
		out[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}

func idIndex(id *string) int {
	n, _ := strconv.Atoi(aws.ToString(id))
	return n
}

func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt*attempt) * 50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
