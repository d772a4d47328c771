package demoengine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/queue"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// rig is a dispatch queue and a results queue of the test's own, and an
// engine between them.
type rig struct {
	sqs                     *sqs.Client
	dispatchURL, resultsURL string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	res := awstest.Resources(t)
	return &rig{sqs: sqs.NewFromConfig(awstest.Config(t)), dispatchURL: res.DispatchQueueURL, resultsURL: res.ResultsQueueURL}
}

// start runs an engine until the test ends and waits for Run to return.
func (r *rig) start(t *testing.T, delay time.Duration) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &demoengine.Engine{
		SQS: r.sqs, DispatchURL: r.dispatchURL, ResultsURL: r.resultsURL,
		Delay: delay, WaitTime: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func (r *rig) send(t *testing.T, ev queue.JobEvent) {
	t.Helper()
	attrs := map[string]string{queue.AttrEventType: ev.Type, queue.AttrEventID: ev.EventID, queue.AttrJobID: ev.JobID}
	if err := queue.NewSender(r.sqs, r.dispatchURL).SendJSON(context.Background(), ev, attrs); err != nil {
		t.Fatal(err)
	}
}

// counts returns the dispatch queue's visible and in-flight messages.
func (r *rig) counts(t *testing.T) (visible, inFlight int) {
	t.Helper()
	out, err := r.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.dispatchURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight
}

// waitHandled waits until the engine deleted every dispatch message: it
// deletes one only after sending all its results, so the results queue
// then holds everything the events call for.
func (r *rig) waitHandled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, f := r.counts(t)
		if v == 0 && f == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatch queue still holds %d visible and %d in-flight messages", v, f)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) results(t *testing.T) []queue.JobResult {
	t.Helper()
	return awstest.DrainJSON[queue.JobResult](t, r.sqs, r.resultsURL)
}

func event(typ, jobID, short string) queue.JobEvent {
	return queue.JobEvent{
		Type: typ, SchemaVersion: queue.EventSchemaVersion,
		EventID: queue.EventIDFor("gtw_test", "incident", "sys-"+jobID, 1, 3, typ, ""),
		JobID:   jobID, Sequence: 1, Episode: 1, GatewayID: "gtw_test", GatewayName: "test",
		Table: "incident", SysID: "sys-" + jobID, Number: "INC-" + jobID, SysModCount: 3,
		Source: queue.SourceWebhook, OccurredAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Ticket: queue.JobTicket{Number: "INC-" + jobID, State: "1", ShortDescription: short, Active: true},
	}
}

type answer struct {
	ResultID, Status string
}

func TestAnswers(t *testing.T) {
	updated := event(queue.EventJobUpdated, "job-updated", "Disk full on db-01")
	updated.ChangedFields = []string{"priority", "state"}
	updated.Sequence = 2
	followUp := event(queue.EventJobFollowUp, "job-follow-up", "Disk full on db-01")
	followUp.Message = &queue.JournalMessage{Field: "comments", Text: "@2501 please also clear /tmp", Author: "abel.tuter",
		EnteredAt: time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC), EntryID: "j1"}
	followUp.EventID = queue.EventIDFor("gtw_test", "incident", "sys-job-follow-up", 1, 4, followUp.Type, "j1")
	cancelled := event(queue.EventJobCancelled, "job-cancelled", "Disk full on db-01")
	cancelled.Reason = "closed by a person"

	tests := []struct {
		name  string
		event queue.JobEvent
		want  []answer
		// notes holds a text each answer's work note must contain, in order.
		notes []string
	}{
		{
			name:  "created succeeds",
			event: event(queue.EventJobCreated, "job-ok", "Checkout API returns 502"),
			want:  []answer{{"started", queue.ResultInProgress}, {"final", queue.ResultSucceeded}},
			notes: []string{"started job job-ok", "succeeded"},
		},
		{
			name:  "created fails",
			event: event(queue.EventJobCreated, "job-fail", "Checkout API returns 502 [fail]"),
			want:  []answer{{"started", queue.ResultInProgress}, {"final", queue.ResultFailed}},
			notes: []string{"started", "failed"},
		},
		{
			name:  "created partly done",
			event: event(queue.EventJobCreated, "job-partial", "[partial] Rotate the certificates"),
			want:  []answer{{"started", queue.ResultInProgress}, {"final", queue.ResultPartial}},
			notes: []string{"started", "part of the work"},
		},
		{
			name:  "created held open",
			event: event(queue.EventJobCreated, "job-hold", "Wait for the vendor [hold]"),
			want:  []answer{{"started", queue.ResultInProgress}},
			notes: []string{"started"},
		},
		{
			name:  "marker in capitals",
			event: event(queue.EventJobCreated, "job-caps", "Checkout down [FAIL]"),
			want:  []answer{{"started", queue.ResultInProgress}, {"final", queue.ResultFailed}},
			notes: []string{"started", "failed"},
		},
		{
			name:  "updated is acknowledged",
			event: updated,
			want:  []answer{{"ack", queue.ResultInProgress}},
			notes: []string{"noted the change of priority, state"},
		},
		{
			name:  "follow-up is acknowledged",
			event: followUp,
			want:  []answer{{"ack", queue.ResultInProgress}},
			notes: []string{`abel.tuter: "@2501 please also clear /tmp"`},
		},
		{name: "cancelled gets no answer", event: cancelled},
		{name: "unknown type is ignored", event: event("job.renamed", "job-unknown", "x")},
	}
	r := newRig(t)
	r.start(t, 100*time.Millisecond)
	for _, tt := range tests {
		r.send(t, tt.event)
	}
	r.waitHandled(t)
	byJob := map[string][]queue.JobResult{}
	for _, res := range r.results(t) {
		if err := res.Validate(); err != nil {
			t.Errorf("result %+v: %v", res, err)
		}
		byJob[res.JobID] = append(byJob[res.JobID], res)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := byJob[tt.event.JobID]
			// Final after started, as the engine sends them; the order
			// of receipt from a standard queue is not guaranteed.
			sort.Slice(got, func(i, j int) bool { return rank(got[i]) < rank(got[j]) })
			var gotAnswers []answer
			for _, res := range got {
				gotAnswers = append(gotAnswers, answer{res.ResultID, res.Status})
			}
			var want []answer
			for _, a := range tt.want {
				want = append(want, answer{demoengine.ResultIDFor(tt.event.EventID, a.ResultID), a.Status})
			}
			if diff := cmp.Diff(want, gotAnswers); diff != "" {
				t.Fatalf("results for %s (-want +got):\n%s", tt.event.Type, diff)
			}
			for i, note := range tt.notes {
				if !strings.Contains(got[i].WorkNote, note) {
					t.Errorf("result %d work note = %q, want it to contain %q", i, got[i].WorkNote, note)
				}
			}
			for _, res := range got {
				if res.Status == queue.ResultSucceeded && res.Summary == "" {
					t.Errorf("succeeded result without a summary: %+v", res)
				}
			}
		})
	}
}

func rank(r queue.JobResult) int {
	if r.Status == queue.ResultInProgress {
		return 0
	}
	return 1
}

// An event delivered twice is answered twice with the same result ids,
// which the writer drops as already applied.
func TestRedeliveredEventSameResultIDs(t *testing.T) {
	r := newRig(t)
	r.start(t, 50*time.Millisecond)
	created := event(queue.EventJobCreated, "job-twice", "Checkout API returns 502")
	updated := event(queue.EventJobUpdated, "job-twice", "Checkout API returns 502")
	updated.ChangedFields = []string{"priority"}
	for range 2 {
		r.send(t, created)
		r.send(t, updated)
	}
	r.waitHandled(t)
	count := map[string]int{}
	for _, res := range r.results(t) {
		count[res.ResultID]++
	}
	want := map[string]int{
		demoengine.ResultIDFor(created.EventID, demoengine.KindStarted): 2,
		demoengine.ResultIDFor(created.EventID, demoengine.KindFinal):   2,
		demoengine.ResultIDFor(updated.EventID, demoengine.KindAck):     2,
	}
	if diff := cmp.Diff(want, count); diff != "" {
		t.Errorf("result ids sent (-want +got):\n%s", diff)
	}
}

// While a job's final result is pending its event stays on the dispatch
// queue, out of sight; an engine stopped then has lost nothing: the event
// comes back and is answered again.
func TestPendingFinalKeepsTheEvent(t *testing.T) {
	r := newRig(t)
	stop := r.start(t, time.Hour)
	created := event(queue.EventJobCreated, "job-long", "Rebuild the index")
	r.send(t, created)

	out, err := r.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(r.resultsURL), WaitTimeSeconds: 20, MaxNumberOfMessages: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("%d results after job.created, want the in_progress one", len(out.Messages))
	}
	var res queue.JobResult
	if err := json.Unmarshal([]byte(aws.ToString(out.Messages[0].Body)), &res); err != nil {
		t.Fatal(err)
	}
	if want := demoengine.ResultIDFor(created.EventID, demoengine.KindStarted); res.ResultID != want || res.Status != queue.ResultInProgress {
		t.Errorf("first result = %s %s, want %s in_progress", res.ResultID, res.Status, want)
	}
	// The in_progress result is sent after the visibility change, so the
	// event is in flight now, and stays so for the hour.
	if v, f := r.counts(t); v != 0 || f != 1 {
		t.Errorf("dispatch queue: %d visible, %d in flight; want the event in flight", v, f)
	}
	stop()
	if v, f := r.counts(t); v+f != 1 {
		t.Errorf("dispatch queue after the engine stopped: %d visible, %d in flight; want the event kept", v, f)
	}
	if got := r.results(t); len(got) != 0 {
		t.Errorf("results after the engine stopped: %+v, want no final result", got)
	}
}

// A message that is not a job event is left on the queue for its redrive
// policy to dead-letter, never deleted unread.
func TestMalformedEventLeftOnQueue(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not JSON", "not json"},
		{"no event id", `{"type":"job.created","job_id":"j1"}`},
		{"no job id", `{"type":"job.created","event_id":"e1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ctx := context.Background()
			if _, err := r.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.dispatchURL), MessageBody: aws.String(tt.body)}); err != nil {
				t.Fatal(err)
			}
			out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.dispatchURL), WaitTimeSeconds: 5})
			if err != nil || len(out.Messages) != 1 {
				t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
			}
			e := &demoengine.Engine{SQS: r.sqs, DispatchURL: r.dispatchURL, ResultsURL: r.resultsURL,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := e.Handle(ctx, out.Messages[0]); !errors.Is(err, demoengine.ErrMalformedEvent) {
				t.Errorf("Handle(%q) = %v, want ErrMalformedEvent", tt.body, err)
			}
			if v, f := r.counts(t); v+f != 1 {
				t.Errorf("dispatch queue holds %d messages, want the malformed one kept", v+f)
			}
			if got := r.results(t); len(got) != 0 {
				t.Errorf("results = %+v, want none", got)
			}
		})
	}
}

func TestRunNeedsQueues(t *testing.T) {
	e := &demoengine.Engine{}
	if err := e.Run(context.Background()); err == nil {
		t.Error("Run without queues = nil, want an error")
	}
}

func TestResultIDFor(t *testing.T) {
	a, b := demoengine.ResultIDFor("e1", demoengine.KindStarted), demoengine.ResultIDFor("e1", demoengine.KindFinal)
	if a == b || a != demoengine.ResultIDFor("e1", demoengine.KindStarted) || a == demoengine.ResultIDFor("e2", demoengine.KindStarted) {
		t.Errorf("ResultIDFor: started %s, final %s: want stable ids, distinct per event and kind", a, b)
	}
}

// A job cancelled while it runs ends at once, without its final result;
// one cancelled before its job.created arrived is not started at all.
func TestCancelledJobGetsNoFinal(t *testing.T) {
	r := newRig(t)
	r.start(t, time.Hour)
	running := event(queue.EventJobCreated, "job-running", "Rebuild the index")
	r.send(t, running)
	out, err := r.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(r.resultsURL), WaitTimeSeconds: 20, MaxNumberOfMessages: 10,
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("results after job.created: %v, %d messages; want the in_progress one", err, len(out.Messages))
	}
	r.send(t, event(queue.EventJobCancelled, "job-running", "Rebuild the index"))

	// Out of order: the cancellation first.
	r.send(t, event(queue.EventJobCancelled, "job-early", "Rebuild the index"))
	r.waitHandled(t)
	r.send(t, event(queue.EventJobCreated, "job-early", "Rebuild the index"))

	// With an hour's delay, an empty dispatch queue means the running job
	// ended on its cancellation.
	r.waitHandled(t)
	if got := r.results(t); len(got) != 0 {
		t.Errorf("results after the cancellations: %+v, want none", got)
	}
}
