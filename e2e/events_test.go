package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/contract"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
)

// relay moves every message of one queue to another, recording each body
// on the way. The dispatch and results queues each have one consumer in
// real life (the engine, the writer); a relay lets the suite see what
// travels on them and still hand every message to that consumer.
//
// A relay forwards a message before it deletes it, so nothing is lost; a
// message it receives again (a delete that failed) is forwarded again but
// recorded once, by its message id.
type relay struct {
	name     string
	sqs      *sqs.Client
	from, to string
	log      *slog.Logger
	// check validates a body; a failure is kept for the test to report.
	check func([]byte) error

	mu   sync.Mutex
	seen map[string]bool // message ids recorded
	msgs []relayed
	// rounds counts the receives done; empty the consecutive empty ones
	// among the last.
	rounds, empty int
	problems      []string
}

// relayed is one message as the relay received it.
type relayed struct {
	messageID string
	body      []byte
	// at is when the relay first received it.
	at time.Time
}

func (r *relay) run(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(r.from), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("relay: receive", "relay", r.name, "error", err)
				sleep(ctx, 200*time.Millisecond)
			}
			continue
		}
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for _, m := range out.Messages {
			if r.to != "" {
				if _, err := r.sqs.SendMessage(ctx, &sqs.SendMessageInput{
					QueueUrl: aws.String(r.to), MessageBody: m.Body, MessageAttributes: m.MessageAttributes,
				}); err != nil {
					// Left on the queue: it comes back after its visibility timeout.
					r.log.Warn("relay: forward", "relay", r.name, "message_id", aws.ToString(m.MessageId), "error", err)
					continue
				}
			}
			r.record(aws.ToString(m.MessageId), []byte(aws.ToString(m.Body)))
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			if _, err := r.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.from), Entries: del}); err != nil && ctx.Err() == nil {
				r.log.Warn("relay: delete", "relay", r.name, "error", err)
			}
		}
		r.mu.Lock()
		r.rounds++
		if len(out.Messages) == 0 {
			r.empty++
		} else {
			r.empty = 0
		}
		r.mu.Unlock()
	}
}

func (r *relay) record(id string, body []byte) {
	var problem error
	if r.check != nil {
		problem = r.check(body)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		return
	}
	r.seen[id] = true
	r.msgs = append(r.msgs, relayed{messageID: id, body: body, at: time.Now()})
	if problem != nil {
		r.problems = append(r.problems, fmt.Sprintf("%s message %s: %v: %s", r.name, id, problem, body))
	}
}

// drained waits until the queue has been found empty by the last two
// receives, the later of them begun after the call, and returns everything
// recorded so far: every message sent before the call, unless it is in
// flight elsewhere.
func (r *relay) drained(t testing.TB, s *system) []relayed {
	t.Helper()
	r.mu.Lock()
	start := r.rounds
	r.mu.Unlock()
	s.eventually(t, "the "+r.name+" queue to be empty", time.Minute, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.rounds >= start+2 && r.empty >= 2, fmt.Sprintf("%d receives since, the last %d empty", r.rounds-start, r.empty)
	})
	return r.all()
}

func (r *relay) all() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *relay) problemList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.problems)
}

// strictDecode decodes body into v, refusing fields v does not have.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// checkEvent validates a dispatch queue message against the published job
// event schema (docs/schemas/events), then checks what a schema cannot:
// that it decodes into queue.JobEvent, and that each type carries its
// part.
func checkEvent(body []byte) error {
	if err := contract.ValidateEvent(body); err != nil {
		return err
	}
	var ev queue.JobEvent
	if err := strictDecode(body, &ev); err != nil {
		return fmt.Errorf("not a job event: %w", err)
	}
	var problems []string
	if !slices.Contains(queue.EventTypes, ev.Type) {
		problems = append(problems, fmt.Sprintf("type %q", ev.Type))
	}
	if ev.SchemaVersion != queue.EventSchemaVersion {
		problems = append(problems, fmt.Sprintf("schema_version %d", ev.SchemaVersion))
	}
	if ev.EventID == "" || ev.JobID == "" || ev.GatewayID == "" || ev.SysID == "" || ev.Table == "" {
		problems = append(problems, "event_id, job_id, gateway_id, table or sys_id empty")
	}
	if ev.Sequence < 1 || ev.Episode < 1 {
		problems = append(problems, fmt.Sprintf("sequence %d, episode %d", ev.Sequence, ev.Episode))
	}
	if ev.Type == queue.EventJobFollowUp && (ev.Message == nil || ev.Message.Text == "") {
		problems = append(problems, "a follow-up without its message")
	}
	if ev.Type == queue.EventJobUpdated && len(ev.ChangedFields) == 0 {
		problems = append(problems, "an update without changed fields")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkResult validates a results queue message against the published
// job result schema (docs/schemas/results) and the writer's own check.
func checkResult(body []byte) error {
	if err := contract.ValidateResult(body); err != nil {
		return err
	}
	var r queue.JobResult
	if err := strictDecode(body, &r); err != nil {
		return fmt.Errorf("not a job result: %w", err)
	}
	return r.Validate()
}

// event is a job event the suite saw on the dispatch queue.
type event struct {
	queue.JobEvent
	raw []byte
}

// result is a job result: one the engine sent, or one of the test's own.
type result struct {
	queue.JobResult
	raw []byte
}

// decodeEvents decodes the relayed job events (one that does not decode
// is reported by the relay's check).
func decodeEvents(msgs []relayed) []event {
	out := make([]event, 0, len(msgs))
	for _, m := range msgs {
		var ev event
		if err := json.Unmarshal(m.body, &ev.JobEvent); err != nil {
			continue
		}
		ev.raw = m.body
		out = append(out, ev)
	}
	return out
}

// events waits until the dispatch queue is empty and returns every job
// event of the gateway seen so far, in the order they were received.
func (s *system) events(t testing.TB, gatewayID string) []event {
	t.Helper()
	var out []event
	for _, ev := range decodeEvents(s.dispatch.drained(t, s)) {
		if ev.GatewayID == gatewayID {
			out = append(out, ev)
		}
	}
	return out
}

// results waits until the engine's results have all been handed to the
// writer and returns those of the given jobs (all when none are given).
func (s *system) results(t testing.TB, jobIDs ...string) []result {
	t.Helper()
	var out []result
	for _, m := range s.engineOut.drained(t, s) {
		var r result
		if json.Unmarshal(m.body, &r.JobResult) != nil {
			continue
		}
		r.raw = m.body
		if len(jobIDs) == 0 || slices.Contains(jobIDs, r.JobID) {
			out = append(out, r)
		}
	}
	return out
}

// logCounts logs the counts of the gateway's traffic: events per type,
// results the engine sent, results applied, and the duplicates dropped
// along the way (events sent again with a known id, results the writer
// had applied already, intake messages the processor found stale).
func (s *system) logCounts(t *testing.T, gatewayID string) {
	t.Helper()
	all := s.events(t, gatewayID)
	evs, resent := distinct(all)
	jobs := map[string]bool{}
	for _, ev := range evs {
		jobs[ev.JobID] = true
	}
	sent := 0
	for _, r := range s.results(t) {
		if jobs[r.JobID] {
			sent++
		}
	}
	recorded := 0
	for _, tk := range s.tickets(t, gatewayID) {
		recorded += len(tk.resultIDs())
	}
	line := fmt.Sprintf("counts: events %v (%d sent again with a known id); results: %d from the engine, %d from the test, %d recorded on the tickets' current jobs",
		countTypes(evs), resent, sent, len(s.sent), recorded)
	if s.logs != nil {
		w := s.logs.count("result processed", map[string]string{"gateway_id": gatewayID}, "outcome")
		p := s.logs.count("message processed", map[string]string{"gateway_id": gatewayID}, "status")
		line += fmt.Sprintf("; writer: %d applied, %d duplicates dropped (outcomes %v); processor: %d stale, %d unchanged (statuses %v)",
			w["applied"], w["duplicate"], w, p["stale"], p["unchanged"], p)
	}
	t.Log(line)
}

// ofRecord keeps a record's events, each id once (see distinct), ordered
// by episode and sequence.
func ofRecord(evs []event, sysID string) []event {
	var out []event
	evs, _ = distinct(evs)
	for _, ev := range evs {
		if ev.SysID == sysID {
			out = append(out, ev)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Episode != out[j].Episode {
			return out[i].Episode < out[j].Episode
		}
		return out[i].Sequence < out[j].Sequence
	})
	return out
}

// ofType keeps the events of one type.
func ofType(evs []event, typ string) []event {
	var out []event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// distinct drops the events whose id was seen before (a processor's
// re-send after a crash carries the same id; the engine drops it) and
// returns how many it dropped.
func distinct(evs []event) ([]event, int) {
	seen := map[string]bool{}
	var out []event
	for _, ev := range evs {
		if seen[ev.EventID] {
			continue
		}
		seen[ev.EventID] = true
		out = append(out, ev)
	}
	return out, len(evs) - len(out)
}

// eventSummary is what the tests compare of an event.
type eventSummary struct {
	Type     string
	JobID    string
	Sequence int
	Episode  int
}

func summarize(evs []event) []eventSummary {
	var out []eventSummary
	for _, ev := range evs {
		out = append(out, eventSummary{ev.Type, ev.JobID, ev.Sequence, ev.Episode})
	}
	return out
}

// countTypes counts events per type, every type present.
func countTypes(evs []event) map[string]int {
	m := map[string]int{}
	for _, typ := range queue.EventTypes {
		m[typ] = 0
	}
	for _, ev := range evs {
		m[ev.Type]++
	}
	return m
}

// eventContent is what an event says about the record, without the update
// time: two events with equal content carry the same record state.
func eventContent(ev event) string {
	tk := ev.Ticket
	tk.SysUpdatedOn = ""
	b, _ := json.Marshal(tk)
	return ev.Table + "/" + ev.SysID + " " + string(b)
}

// sameContent returns the record states that more than one distinct event
// carried.
func sameContent(evs []event) []string {
	seen := map[string][]string{}
	for _, ev := range evs {
		c := eventContent(ev)
		seen[c] = append(seen[c], ev.Type)
	}
	var dup []string
	for c, types := range seen {
		if len(types) > 1 {
			dup = append(dup, fmt.Sprintf("%v %s", types, c))
		}
	}
	sort.Strings(dup)
	return dup
}

// resend puts results on the results queue again, as SQS redelivers a
// message or an engine re-sends a report.
func (s *system) resend(t testing.TB, rs ...result) {
	t.Helper()
	for _, r := range rs {
		if _, err := s.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{
			QueueUrl: aws.String(s.queue(schema.EnvResultsQueueURL)), MessageBody: aws.String(string(r.raw)),
		}); err != nil {
			t.Fatalf("send result %s again: %v", r.ResultID, err)
		}
	}
}

// sendResult sends a result of the test's own, as an engine does.
func (s *system) sendResult(t testing.TB, r queue.JobResult) result {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	out := result{JobResult: r, raw: b}
	s.sent[r.ResultID] = out
	s.resend(t, out)
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}
