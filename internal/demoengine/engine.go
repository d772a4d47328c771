// Package demoengine is make dev's stand-in for the automation engine: it
// consumes the job events on the dispatch queue and answers them on the
// results queue, the way an engine built on the contracts would (the
// events and results of docs/schemas), so the whole loop — a change in
// ServiceNow, a job, a result, the ticket resolved or escalated — runs on
// one machine.
//
// What it answers is steered by markers in the ticket's short description:
//
//	job.created      an in_progress result at once, then after Delay a final one:
//	                 failed for "[fail]", partial for "[partial]", none for "[hold]"
//	                 (the job stays open), succeeded otherwise
//	job.updated      an in_progress work note naming the changed fields
//	job.follow_up    an in_progress work note quoting the message
//	job.cancelled    nothing; a job still running ends without its final result
//
// Delivery. A result's id is derived from the event id and the result's
// kind (ResultIDFor), so an event delivered twice is answered with the same
// result ids, which the writer drops. A dispatch message is deleted only
// once every result it calls for is on the results queue; until then it
// stays invisible: for a job.created the engine extends the message's
// visibility to cover Delay before it waits, so a message whose final
// result is pending is neither handed to another receive nor lost when the
// engine stops (it comes back when its visibility ends, and is answered
// again with the same ids).
package demoengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/queue"
)

// Markers in a ticket's short description that choose the final result of
// its job.
const (
	MarkerFail    = "[fail]"
	MarkerPartial = "[partial]"
	MarkerHold    = "[hold]"
)

// NotePrefix begins every work note the engine writes, so its notes are
// told apart from the gateway's own on the ticket.
const NotePrefix = "Demo engine: "

// DefaultDelay is how long a job runs before its final result.
const DefaultDelay = 2 * time.Second

// Result kinds, the second half of a result id's derivation.
const (
	// KindStarted is the in_progress answer to a job.created.
	KindStarted = "started"
	// KindFinal is the final result of a job.created.
	KindFinal = "final"
	// KindAck is the in_progress answer to a job.updated or job.follow_up.
	KindAck = "ack"
)

// resultNamespace scopes result ids (UUID v5).
var resultNamespace = uuid.MustParse("6f1d2c3b-8a4e-4b5f-9c7d-2e3f4a5b6c7d")

// ResultIDFor derives the id of the result of a kind that answers an event.
func ResultIDFor(eventID, kind string) string {
	return uuid.NewSHA1(resultNamespace, []byte(eventID+"\n"+kind)).String()
}

// visibilitySlack is added to Delay when a job.created's message is kept
// invisible, so sending the results and deleting the message fit in.
const visibilitySlack = 30 * time.Second

// maxVisibility is the longest visibility timeout SQS allows.
const maxVisibility = 12 * time.Hour

// Engine answers job events. Set the fields, then call Run.
type Engine struct {
	SQS *sqs.Client
	// DispatchURL is the queue the events come from; ResultsURL the one
	// results go to.
	DispatchURL string
	ResultsURL  string
	// Delay is how long a job runs before its final result; DefaultDelay
	// when zero.
	Delay time.Duration
	// WaitTime is the long-poll wait, 20s when zero.
	WaitTime time.Duration
	Log      *slog.Logger

	mu sync.Mutex
	// cancelled holds a channel per job id that job.cancelled closes, so a
	// job waiting out its delay ends at once, without a final result.
	cancelled map[string]chan struct{}
}

// cancelSignal returns the channel that is closed once the job is
// cancelled.
func (e *Engine) cancelSignal(jobID string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancelled == nil {
		e.cancelled = map[string]chan struct{}{}
	}
	c, ok := e.cancelled[jobID]
	if !ok {
		c = make(chan struct{})
		e.cancelled[jobID] = c
	}
	return c
}

// cancel marks a job cancelled; a second cancellation changes nothing.
func (e *Engine) cancel(jobID string) {
	c := e.cancelSignal(jobID)
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

func (e *Engine) isCancelled(jobID string) bool {
	select {
	case <-e.cancelSignal(jobID):
		return true
	default:
		return false
	}
}

// Run consumes the dispatch queue until ctx is done. Each message is
// handled on its own, so a job waiting out its delay holds up no other.
// Run returns once every handler has returned.
func (e *Engine) Run(ctx context.Context) error {
	if e.SQS == nil || e.DispatchURL == "" || e.ResultsURL == "" {
		return errors.New("demo engine: an SQS client, a dispatch queue URL and a results queue URL are needed")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wait := e.WaitTime
	if wait <= 0 {
		wait = 20 * time.Second
	}
	for ctx.Err() == nil {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(e.DispatchURL),
			MaxNumberOfMessages:   10,
			WaitTimeSeconds:       int32(wait / time.Second),
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			e.log().Error("receive job events", "queue", e.DispatchURL, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		for _, m := range out.Messages {
			wg.Go(func() {
				err := e.Handle(ctx, m)
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, ErrMalformedEvent):
					e.log().Error("not a job event: left on the queue, whose redrive policy dead-letters it",
						"message_id", aws.ToString(m.MessageId), "error", err)
				default:
					e.log().Error("job event not answered; it will be delivered again",
						"message_id", aws.ToString(m.MessageId), "error", err)
				}
			})
		}
	}
	return nil
}

// ErrMalformedEvent is returned by Handle for a message that is not a job
// event. The message is left on the queue, so the queue's redrive policy
// moves it to the dead-letter queue, where an operator sees it.
var ErrMalformedEvent = errors.New("malformed job event")

// Handle answers one dispatch message and deletes it once every result it
// calls for was sent. On an error the message is left to be delivered
// again.
func (e *Engine) Handle(ctx context.Context, m sqstypes.Message) error {
	var ev queue.JobEvent
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if ev.EventID == "" || ev.JobID == "" {
		return fmt.Errorf("%w: event_id or job_id is empty", ErrMalformedEvent)
	}
	log := e.log().With("event", ev.Type, "event_id", ev.EventID, "job_id", ev.JobID, "number", ev.Number)
	switch ev.Type {
	case queue.EventJobCreated:
		if e.isCancelled(ev.JobID) {
			// Its job.cancelled came first: the job is over before it began.
			log.Info("job cancelled before it started; nothing to answer")
			break
		}
		final, hasFinal := finalResult(ev)
		if hasFinal {
			// Keep the message out of sight while the job runs.
			if err := e.hide(ctx, m, e.delay()+visibilitySlack); err != nil {
				return err
			}
		}
		if err := e.send(ctx, started(ev)); err != nil {
			return err
		}
		if hasFinal {
			log.Info("job started; final result after the delay", "status", final.Status, "delay", e.delay().String())
			t := time.NewTimer(e.delay())
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-e.cancelSignal(ev.JobID):
				t.Stop()
				log.Info("job cancelled while it ran; no final result")
			case <-t.C:
				if err := e.send(ctx, final); err != nil {
					return err
				}
				log.Info("job finished", "status", final.Status)
			}
		} else {
			log.Info("job started and held open (" + MarkerHold + ")")
		}
	case queue.EventJobUpdated, queue.EventJobFollowUp:
		if err := e.send(ctx, acknowledgement(ev)); err != nil {
			return err
		}
		log.Info("news for the job acknowledged")
	case queue.EventJobCancelled:
		e.cancel(ev.JobID)
		log.Info("job cancelled; nothing to answer", "reason", ev.Reason)
	default:
		// An engine ignores event types it does not know, so that new
		// ones can be added without breaking it.
		log.Warn("unknown job event type ignored")
	}
	_, err := e.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(e.DispatchURL), ReceiptHandle: m.ReceiptHandle})
	if err != nil {
		return fmt.Errorf("delete job event %s: %w", ev.EventID, err)
	}
	return nil
}

func (e *Engine) hide(ctx context.Context, m sqstypes.Message, d time.Duration) error {
	d = min(d, maxVisibility)
	_, err := e.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(e.DispatchURL), ReceiptHandle: m.ReceiptHandle,
		VisibilityTimeout: int32(d / time.Second),
	})
	if err != nil {
		return fmt.Errorf("keep job event invisible for %s: %w", d, err)
	}
	return nil
}

func (e *Engine) send(ctx context.Context, r queue.JobResult) error {
	if err := r.Validate(); err != nil {
		// A programming error in this package, never the event's fault.
		return fmt.Errorf("result %s: %w", r.ResultID, err)
	}
	err := queue.NewSender(e.SQS, e.ResultsURL).SendJSON(ctx, r, map[string]string{queue.AttrJobID: r.JobID})
	if err != nil {
		return fmt.Errorf("send %s result %s of job %s: %w", r.Status, r.ResultID, r.JobID, err)
	}
	return nil
}

func (e *Engine) delay() time.Duration {
	if e.Delay <= 0 {
		return DefaultDelay
	}
	return e.Delay
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// started is the in_progress answer to a job.created.
func started(ev queue.JobEvent) queue.JobResult {
	return queue.JobResult{
		JobID: ev.JobID, ResultID: ResultIDFor(ev.EventID, KindStarted), Status: queue.ResultInProgress,
		WorkNote: fmt.Sprintf(NotePrefix+"started job %s on %s (%s).", ev.JobID, ev.Number, ev.Ticket.ShortDescription),
	}
}

// finalResult is the result a job.created ends with, chosen by the
// markers in the short description; false for a job held open.
func finalResult(ev queue.JobEvent) (queue.JobResult, bool) {
	desc := strings.ToLower(ev.Ticket.ShortDescription)
	r := queue.JobResult{JobID: ev.JobID, ResultID: ResultIDFor(ev.EventID, KindFinal)}
	switch {
	case strings.Contains(desc, MarkerHold):
		return queue.JobResult{}, false
	case strings.Contains(desc, MarkerFail):
		r.Status = queue.ResultFailed
		r.Summary = fmt.Sprintf("The automation could not fix %s.", ev.Number)
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s failed (the short description asks for it with %s). "+
			"Nothing was changed; a person needs to look at %s.", ev.JobID, MarkerFail, ev.Number)
	case strings.Contains(desc, MarkerPartial):
		r.Status = queue.ResultPartial
		r.Summary = fmt.Sprintf("The automation fixed part of %s.", ev.Number)
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s did part of the work (the short description asks for it with %s); "+
			"the rest needs a person.", ev.JobID, MarkerPartial)
		r.PublicComment = "Part of this was fixed automatically; a person from the support team will finish it."
	default:
		r.Status = queue.ResultSucceeded
		r.Summary = fmt.Sprintf("Fixed automatically by job %s: %s.", ev.JobID, ev.Ticket.ShortDescription)
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s succeeded on %s.", ev.JobID, ev.Number)
		r.PublicComment = "This was fixed automatically."
	}
	return r, true
}

// quoteMax bounds the quoted message in an acknowledgement, so the note
// stays well within a journal entry's length.
const quoteMax = 1000

// acknowledgement is the in_progress answer to a job.updated or
// job.follow_up.
func acknowledgement(ev queue.JobEvent) queue.JobResult {
	r := queue.JobResult{JobID: ev.JobID, ResultID: ResultIDFor(ev.EventID, KindAck), Status: queue.ResultInProgress}
	switch {
	case ev.Type == queue.EventJobFollowUp && ev.Message != nil:
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s received the follow-up from %s: %q", ev.JobID,
			orSomeone(ev.Message.Author), truncate(ev.Message.Text, quoteMax))
	case ev.Type == queue.EventJobFollowUp:
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s received a follow-up without a message.", ev.JobID)
	case len(ev.ChangedFields) > 0:
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s noted the change of %s (event %d).", ev.JobID,
			strings.Join(ev.ChangedFields, ", "), ev.Sequence)
	default:
		r.WorkNote = fmt.Sprintf(NotePrefix+"job %s noted an update (event %d).", ev.JobID, ev.Sequence)
	}
	return r
}

func orSomeone(author string) string {
	if author == "" {
		return "someone"
	}
	return author
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
