package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/queue"
)

// Reading a dead-letter queue is receiving from it: SQS has no way to look
// at a message without hiding it for a while. Both commands hide what they
// read for a visibility timeout long enough that the next receive returns
// new messages (so paging works and nothing is listed twice), and give back
// what they did not delete by setting its visibility to 0 once done, so a
// listing leaves the DLQ as it found it. Should that last call fail, or the
// command be killed, the messages reappear on their own when the timeout
// runs out. Each read adds one to a message's ApproximateReceiveCount; a
// DLQ has no redrive policy of its own, so that moves nothing anywhere.
//
// A receive with 0 s visibility would not do: every receive could return
// the same first ten messages. Nor would 1–2 s: pages slower than that
// bring back messages already listed, and the listing (which stops at a
// page with nothing new) ends short.
const (
	// peekVisibility hides messages while dlq list (or redrive --dry-run)
	// pages through the queue.
	peekVisibility = 30 * time.Second
	// redriveVisibility hides a batch from its receive until its delete,
	// and a message that could not be sent until the end of the run.
	redriveVisibility = 60 * time.Second
	// dlqWait is the long poll of each receive. Short polling (0) samples
	// a subset of SQS's servers and may answer "empty" while messages
	// wait; a long poll asks them all, and costs its wait only once, on
	// the receive that finds the queue drained.
	dlqWait = 1
	// releaseTimeout bounds giving messages back after the command's own
	// context ended (Ctrl-C): they must not stay hidden for nothing.
	releaseTimeout = 10 * time.Second
)

func init() {
	RegisterGroup("infra dlq", "messages the processor or the engine gave up on")
	Register(Command{
		Path:  "infra dlq list",
		Short: "show what sits in a dead-letter queue, leaving it there",
		Usage: "[--queue intake|dispatch|results] [--max 50]",
		Long: "Messages are read and given back once the listing is done: they stay in the DLQ and a redrive still finds them.\n" +
			"While the listing runs (at most " + peekVisibility.String() + " if it is interrupted) they are hidden from other readers.\n" +
			"RECEIVES is SQS's approximate receive count: the failed deliveries plus one per listing.\n" +
			"A body that is not JSON is shown as \"unparseable (N bytes)\"; --output json prints every body in full.",
		Example: "2501 infra dlq list --queue intake --max 20",
		Flags: func(fs *pflag.FlagSet) Action {
			name := fs.String("queue", "intake", "which dead-letter queue: intake, dispatch or results")
			maxN := fs.Int("max", 50, "show at most this many messages")
			return func(ctx context.Context, c *Call) error {
				if *maxN < 1 {
					return Usagef("--max must be at least 1")
				}
				q, err := resolveDLQ(ctx, c, *name)
				if err != nil {
					return err
				}
				msgs, err := peekDLQ(ctx, q, *maxN)
				if msgs == nil {
					return err
				}
				if perr := c.Print(dlqListOutput(msgs), func(w io.Writer) { printDLQ(w, q.name, msgs, *maxN) }); perr != nil {
					return perr
				}
				return err // a failed give-back, after the listing it spoiled nothing of
			}
		},
	})
	Register(Command{
		Path:  "infra dlq redrive",
		Short: "move dead-lettered messages back to their queue (after a fix)",
		Usage: "[--queue intake|dispatch|results] [--max n] [--dry-run]",
		Long: "Each batch of up to ten is received from the DLQ, sent to the queue it came from with the same\n" +
			"body and message attributes, and deleted from the DLQ only once SQS has accepted the send: a\n" +
			"message is never lost, and one whose send failed stays in the DLQ. One that was sent but could\n" +
			"not be deleted is delivered twice; the processor and the engine drop such duplicates.\n" +
			"It runs until the DLQ is empty or --max messages were moved. --dry-run lists what would move.",
		Example: "2501 infra dlq redrive --queue intake --dry-run\n2501 infra dlq redrive --queue intake",
		Flags: func(fs *pflag.FlagSet) Action {
			name := fs.String("queue", "intake", "which dead-letter queue: intake, dispatch or results")
			maxN := fs.Int("max", 0, "move at most this many messages (0: all)")
			dryRun := fs.Bool("dry-run", false, "list what would be moved, move nothing")
			return func(ctx context.Context, c *Call) error {
				if *maxN < 0 {
					return Usagef("--max must not be negative")
				}
				limit := *maxN
				if limit == 0 {
					limit = math.MaxInt
				}
				q, err := resolveDLQ(ctx, c, *name)
				if err != nil {
					return err
				}
				if *dryRun {
					msgs, err := peekDLQ(ctx, q, limit)
					if msgs == nil {
						return err
					}
					rep := redriveReport{Queue: q.name, DryRun: true, Messages: msgs, Failures: []redriveFailure{}, limit: limit}
					if perr := c.Print(dlqRedriveOutput(rep), func(w io.Writer) { printRedrive(w, rep) }); perr != nil {
						return perr
					}
					return err
				}
				rep, err := redrive(ctx, q, limit)
				if perr := c.Print(dlqRedriveOutput(rep), func(w io.Writer) { printRedrive(w, rep) }); perr != nil {
					return perr
				}
				if err != nil && rep.Moved > 0 {
					return fmt.Errorf("after moving %d: %w", rep.Moved, err)
				}
				if err != nil {
					return err
				}
				switch {
				case len(rep.Failures) > 0:
					return fmt.Errorf("%d messages could not be moved and stay in the %s DLQ (see above)", len(rep.Failures), q.name)
				case rep.NotDeleted > 0:
					return fmt.Errorf("%d messages were moved but are still in the %s DLQ too; the next redrive sends them again", rep.NotDeleted, q.name)
				}
				return nil
			}
		},
	})
}

// dlq is a dead-letter queue and the queue it takes messages from.
type dlq struct {
	name   string // intake, dispatch or results
	client *sqs.Client
	url    string
	source string
}

func resolveDLQ(ctx context.Context, c *Call, name string) (dlq, error) {
	var dlqURL, sourceURL func(context.Context) (string, error)
	switch name {
	case "intake":
		dlqURL, sourceURL = c.IntakeDLQURL, c.IntakeQueueURL
	case "dispatch":
		dlqURL, sourceURL = c.DispatchDLQURL, c.DispatchQueueURL
	case "results":
		dlqURL, sourceURL = c.ResultsDLQURL, c.ResultsQueueURL
	default:
		return dlq{}, Usagef("--queue %q: want intake, dispatch or results", name)
	}
	u, err := dlqURL(ctx)
	if err != nil {
		return dlq{}, err
	}
	src, err := sourceURL(ctx)
	if err != nil {
		return dlq{}, err
	}
	client, err := c.SQS(ctx)
	if err != nil {
		return dlq{}, err
	}
	return dlq{name: name, client: client, url: u, source: src}, nil
}

// sqsError is a failed SQS call: its message is the operation and the API
// error, without the SDK's request details; Explain still finds the
// transport error behind it.
type sqsError struct {
	op  string
	err error
}

func (e *sqsError) Error() string {
	var api smithy.APIError
	if errors.As(e.err, &api) {
		return e.op + ": " + api.ErrorCode() + ": " + api.ErrorMessage()
	}
	return e.op + ": " + describeAWSError(e.err)
}
func (e *sqsError) Unwrap() error { return e.err }

// dlqMessage is one message as the commands show it; dlqMessageJSON is
// its JSON form.
type dlqMessage struct {
	MessageID    string
	SentAt       time.Time
	ReceiveCount int
	Source       string
	// Summary names the record: gateway, table and sys_id for a JSON body,
	// "unparseable (N bytes)" for any other.
	Summary   string
	GatewayID string
	Table     string
	SysID     string
	Number    string
	Attrs     map[string]string
	Body      string
}

// record is what intake messages and job events have in common, and what
// names a job result.
type record struct {
	GatewayID string `json:"gateway_id"`
	Table     string `json:"table"`
	SysID     string `json:"sys_id"`
	Number    string `json:"number"`
	JobID     string `json:"job_id"`
	ResultID  string `json:"result_id"`
	Status    string `json:"status"`
}

func viewMessage(m sqstypes.Message) dlqMessage {
	v := dlqMessage{MessageID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body)}
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		v.SentAt = time.UnixMilli(ms).UTC()
	}
	v.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	for k, a := range m.MessageAttributes {
		if v.Attrs == nil {
			v.Attrs = map[string]string{}
		}
		if a.StringValue != nil {
			v.Attrs[k] = *a.StringValue
		} else {
			v.Attrs[k] = fmt.Sprintf("(%s, %d bytes)", aws.ToString(a.DataType), len(a.BinaryValue))
		}
	}
	v.Source = v.Attrs[queue.AttrSource]
	var r record
	if err := json.Unmarshal([]byte(v.Body), &r); err != nil {
		v.Summary = fmt.Sprintf("unparseable (%d bytes)", len(v.Body))
		return v
	}
	v.GatewayID, v.Table, v.SysID, v.Number = r.GatewayID, r.Table, r.SysID, r.Number
	if r.GatewayID == "" && r.ResultID != "" {
		// A job result names its job, not its record.
		v.Summary = "job " + dash(r.JobID) + " result " + r.ResultID + " (" + dash(r.Status) + ")"
		return v
	}
	v.Summary = dash(r.GatewayID) + " " + dash(r.Table) + " " + dash(r.SysID)
	if r.Number != "" {
		v.Summary += " (" + r.Number + ")"
	}
	return v
}

// receive reads up to n (at most 10) messages, hiding them for vis.
func (q dlq) receive(ctx context.Context, n int, vis time.Duration) ([]sqstypes.Message, error) {
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(q.url),
		MaxNumberOfMessages:         int32(min(n, queue.MaxBatch)),
		VisibilityTimeout:           int32(vis / time.Second),
		WaitTimeSeconds:             dlqWait,
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return nil, &sqsError{op: "receive from the " + q.name + " DLQ", err: err}
	}
	return out.Messages, nil
}

// release makes the messages behind the receipt handles visible again. It
// runs even when ctx is done, so an interrupted command does not leave
// messages hidden.
func (q dlq) release(ctx context.Context, handles []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	failed := 0
	for start := 0; start < len(handles); start += queue.MaxBatch {
		chunk := handles[start:min(start+queue.MaxBatch, len(handles))]
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, h := range chunk {
			entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h), VisibilityTimeout: 0}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			failed += len(chunk)
			continue
		}
		failed += len(out.Failed)
	}
	if failed > 0 {
		return fmt.Errorf("%d messages could not be made visible again at once; they reappear in the %s DLQ by themselves within a minute", failed, q.name)
	}
	return nil
}

// peekDLQ returns up to limit messages, oldest first, and gives them all
// back. With messages it may also return the error of giving them back.
func peekDLQ(ctx context.Context, q dlq, limit int) ([]dlqMessage, error) {
	handles := map[string]string{} // message id -> latest receipt handle
	msgs := []dlqMessage{}
	var recvErr error
	for len(msgs) < limit {
		batch, err := q.receive(ctx, limit-len(msgs), peekVisibility)
		if err != nil {
			recvErr = err
			break
		}
		fresh := 0
		for _, m := range batch {
			id := aws.ToString(m.MessageId)
			if _, seen := handles[id]; !seen {
				msgs = append(msgs, viewMessage(m))
				fresh++
			}
			handles[id] = aws.ToString(m.ReceiptHandle)
		}
		if fresh == 0 { // drained, or only messages whose hiding ran out
			break
		}
	}
	all := make([]string, 0, len(handles))
	for _, h := range handles {
		all = append(all, h)
	}
	relErr := q.release(ctx, all)
	if recvErr != nil {
		return nil, recvErr
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].SentAt.Before(msgs[j].SentAt) })
	return msgs, relErr
}

// redriveReport is the outcome of a redrive (or what a dry run would move).
type redriveReport struct {
	Queue  string
	DryRun bool
	// Moved were sent to the source queue and deleted from the DLQ.
	Moved int
	// NotDeleted were sent but are still in the DLQ too.
	NotDeleted int
	Failed     int
	Failures   []redriveFailure
	// Messages are what a dry run would move.
	Messages []dlqMessage

	limit int // of a dry run's listing
}

// redriveFailure is a message that stays in the DLQ, and why.
type redriveFailure struct {
	MessageID string
	Reason    string
}

// redrive moves up to limit messages from the DLQ to its source queue, a
// batch of ten at a time. A message is deleted from the DLQ only after
// SendMessageBatch reported it sent; everything else is given back.
//
// SQS's own StartMessageMoveTask would do the same server-side, but it
// moves everything (no count), runs asynchronously, and the emulators the
// tests and make dev run on do not implement it.
func redrive(ctx context.Context, q dlq, limit int) (redriveReport, error) {
	rep := redriveReport{Queue: q.name, Failures: []redriveFailure{}}
	seen := map[string]bool{}
	var keep []string // receipt handles of messages to give back
	var runErr error
	for rep.Moved+rep.NotDeleted < limit {
		batch, err := q.receive(ctx, limit-rep.Moved-rep.NotDeleted, redriveVisibility)
		if err != nil {
			runErr = err
			break
		}
		// A message seen before (its send failed and its hiding ran out) is
		// not sent again in this run; it goes back with the others.
		var fresh []sqstypes.Message
		for _, m := range batch {
			if seen[aws.ToString(m.MessageId)] {
				keep = append(keep, aws.ToString(m.ReceiptHandle))
				continue
			}
			seen[aws.ToString(m.MessageId)] = true
			fresh = append(fresh, m)
		}
		if len(fresh) == 0 {
			break
		}
		sent, err := q.send(ctx, fresh, &rep)
		if err != nil {
			runErr = err
		}
		for i, m := range fresh {
			if !sent[i] {
				keep = append(keep, aws.ToString(m.ReceiptHandle))
			}
		}
		q.deleteSent(ctx, fresh, sent, &rep)
		// A batch of which nothing could be sent points at the queue (gone,
		// no permission) rather than at its messages: leave the rest.
		if len(sent) == 0 {
			break
		}
	}
	rep.Failed = len(rep.Failures)
	relErr := q.release(ctx, keep)
	return rep, errors.Join(runErr, relErr)
}

// send offers msgs to the source queue with their bodies and attributes
// and reports which were accepted, by index; the others are added to the
// report's failures. After a failed call no message counts as sent, so
// none is deleted (if SQS did take some, they are delivered twice, which
// the consumers tolerate, rather than lost).
func (q dlq) send(ctx context.Context, msgs []sqstypes.Message, rep *redriveReport) (map[int]bool, error) {
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			MessageBody:       m.Body,
			MessageAttributes: m.MessageAttributes,
		}
	}
	out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.source), Entries: entries})
	if err != nil {
		err = &sqsError{op: "send to the " + q.name + " queue", err: err}
		for _, m := range msgs {
			rep.Failures = append(rep.Failures, redriveFailure{MessageID: aws.ToString(m.MessageId), Reason: err.Error()})
		}
		return map[int]bool{}, err
	}
	sent := map[int]bool{}
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i < len(msgs) {
			sent[i] = true
		}
	}
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i >= len(msgs) || sent[i] {
			continue
		}
		rep.Failures = append(rep.Failures, redriveFailure{
			MessageID: aws.ToString(msgs[i].MessageId),
			Reason:    "send: " + aws.ToString(f.Code) + ": " + aws.ToString(f.Message),
		})
	}
	// An entry SQS reports neither way is treated as not sent.
	for i, m := range msgs {
		if !sent[i] && !failedIn(rep.Failures, aws.ToString(m.MessageId)) {
			rep.Failures = append(rep.Failures, redriveFailure{MessageID: aws.ToString(m.MessageId), Reason: "send: no result from SQS"})
		}
	}
	return sent, nil
}

func failedIn(fs []redriveFailure, id string) bool {
	for _, f := range fs {
		if f.MessageID == id {
			return true
		}
	}
	return false
}

// deleteSent deletes from the DLQ the messages that were sent. One that
// cannot be deleted is counted, not retried: it is already in the source
// queue, and it comes back from the DLQ when its hiding runs out.
func (q dlq) deleteSent(ctx context.Context, msgs []sqstypes.Message, sent map[int]bool, rep *redriveReport) {
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		if sent[i] {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(entries) == 0 {
		return
	}
	out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		rep.NotDeleted += len(entries)
		return
	}
	rep.Moved += len(out.Successful)
	rep.NotDeleted += len(entries) - len(out.Successful)
}

func printDLQ(w io.Writer, name string, msgs []dlqMessage, limit int) {
	if len(msgs) == 0 {
		fmt.Fprintf(w, "The %s DLQ is empty.\n", name)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SENT\tMESSAGE ID\tRECEIVES\tSOURCE\tSUMMARY")
	for _, m := range msgs {
		sent := "-"
		if !m.SentAt.IsZero() {
			sent = m.SentAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", sent, m.MessageID, m.ReceiveCount, dash(m.Source), m.Summary)
	}
	tw.Flush()
	if len(msgs) >= limit {
		fmt.Fprintf(w, "%s shown, the --max limit; the %s DLQ may hold more.\n", plural(len(msgs), "message"), name)
		return
	}
	fmt.Fprintf(w, "%s in the %s DLQ.\n", plural(len(msgs), "message"), name)
}

func printRedrive(w io.Writer, rep redriveReport) {
	if rep.DryRun {
		if len(rep.Messages) == 0 {
			fmt.Fprintf(w, "The %s DLQ is empty; nothing to move.\n", rep.Queue)
			return
		}
		printDLQ(w, rep.Queue, rep.Messages, rep.limit)
		fmt.Fprintf(w, "Dry run: would move %s to the %s queue; nothing was moved.\n", plural(len(rep.Messages), "message"), rep.Queue)
		return
	}
	fmt.Fprintf(w, "Moved %s from the %s DLQ to the %s queue; %d failed.\n", plural(rep.Moved, "message"), rep.Queue, rep.Queue, len(rep.Failures))
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  %s: %s\n", f.MessageID, f.Reason)
	}
	if rep.NotDeleted > 0 {
		fmt.Fprintf(w, "%s sent but not deleted from the DLQ.\n", plural(rep.NotDeleted, "message"))
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
