package cli_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
)

// newQueueHarness is a harness whose environment names this test's queues.
func newQueueHarness(t *testing.T) (*harness, provision.Resources) {
	t.Helper()
	res := awstest.Resources(t)
	h := &harness{t: t, cfg: awstest.Config(t), table: res.RegistryTable, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h.env = res.Env()
	h.env[schema.EnvStack] = awstest.UniqueName("nostack-")
	return h, res
}

// sqsMessage is a message as the tests send and compare it: body and
// message attributes as "DataType=value".
type sqsMessage struct {
	Body  string
	Attrs map[string]string
}

func (h *harness) sqs() *sqs.Client { return sqs.NewFromConfig(h.cfg) }

// send puts messages straight on a queue, the way SQS moves them to a DLQ.
func (h *harness) send(url string, msgs ...sqsMessage) {
	h.t.Helper()
	for _, m := range msgs {
		attrs := map[string]sqstypes.MessageAttributeValue{}
		for k, v := range m.Attrs {
			typ, val, _ := strings.Cut(v, "=")
			attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String(typ), StringValue: aws.String(val)}
		}
		_, err := h.sqs().SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(m.Body), MessageAttributes: attrs})
		if err != nil {
			h.t.Fatalf("send to %s: %v", url, err)
		}
	}
}

// drain receives and deletes everything on a queue, sorted by body.
func (h *harness) drain(url string) []sqsMessage {
	h.t.Helper()
	ctx := context.Background()
	got := []sqsMessage{}
	for {
		out, err := h.sqs().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			h.t.Fatalf("receive from %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			attrs := map[string]string{}
			for k, a := range m.MessageAttributes {
				attrs[k] = aws.ToString(a.DataType) + "=" + aws.ToString(a.StringValue)
			}
			got = append(got, sqsMessage{Body: aws.ToString(m.Body), Attrs: attrs})
			if _, err := h.sqs().DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				h.t.Fatalf("delete from %s: %v", url, err)
			}
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Body < got[j].Body })
	return got
}

func intakeBody(t *testing.T, gatewayID, sysID string) string {
	t.Helper()
	b, err := json.Marshal(queue.IntakeMessage{GatewayID: gatewayID, Table: "incident", SysID: sysID, Source: queue.SourceWebhook, ReceivedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listed is the part of a listed message the tests compare.
type listed struct {
	Source  string `json:"source"`
	Summary string `json:"summary"`
	Body    string `json:"body"`
}

func TestDLQListAndRedrive(t *testing.T) {
	h, res := newQueueHarness(t)
	const gw = "gtw_00000000-0000-4000-8000-000000000001"
	dead := []sqsMessage{
		{Body: intakeBody(t, gw, "1111aaaa"), Attrs: map[string]string{queue.AttrSource: "String=webhook"}},
		{Body: intakeBody(t, gw, "2222bbbb"), Attrs: map[string]string{queue.AttrSource: "String=reconcile", "attempt": "Number=3"}},
		{Body: "not json{", Attrs: map[string]string{queue.AttrSource: "String=webhook"}},
	}
	wantListed := []listed{
		{Source: "webhook", Summary: gw + " incident 1111aaaa", Body: dead[0].Body},
		{Source: "reconcile", Summary: gw + " incident 2222bbbb", Body: dead[1].Body},
		{Source: "webhook", Summary: "unparseable (9 bytes)", Body: "not json{"},
	}
	sort.Slice(wantListed, func(i, j int) bool { return wantListed[i].Body < wantListed[j].Body })
	sort.Slice(dead, func(i, j int) bool { return dead[i].Body < dead[j].Body })
	h.send(res.IntakeDLQURL, dead...)
	start := time.Now()
	list := func() []listed {
		t.Helper()
		var got []struct {
			listed
			MessageID    string    `json:"message_id"`
			SentAt       time.Time `json:"sent_at"`
			ReceiveCount int       `json:"receive_count"`
		}
		h.json(&got, "", "infra", "dlq", "list")
		out := []listed{}
		for _, m := range got {
			if m.MessageID == "" || m.ReceiveCount < 1 || m.SentAt.Before(start.Add(-time.Minute)) || m.SentAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("listed message %+v: want an id, a receive count and a sent time of now", m)
			}
			out = append(out, m.listed)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Body < out[j].Body })
		return out
	}

	// Listing twice in a row shows everything both times: the first
	// listing gave the messages back at once.
	for i := range 2 {
		if diff := cmp.Diff(wantListed, list()); diff != "" {
			t.Fatalf("dlq list #%d (-want +got):\n%s", i+1, diff)
		}
	}
	out := h.ok("", "infra", "dlq", "list")
	for _, want := range []string{"RECEIVES", "SOURCE", "reconcile", gw + " incident 2222bbbb", "unparseable (9 bytes)", "3 messages in the intake DLQ.\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list text lacks %q:\n%s", want, out)
		}
	}
	out = h.ok("", "infra", "dlq", "list", "--max", "2")
	if n := strings.Count(out, gw) + strings.Count(out, "unparseable"); n != 2 || !strings.Contains(out, "2 messages shown, the --max limit") {
		t.Errorf("dlq list --max 2 shows %d messages:\n%s", n, out)
	}

	// A dry run moves nothing.
	var dry struct {
		DryRun   bool     `json:"dry_run"`
		Moved    int      `json:"moved"`
		Messages []listed `json:"messages"`
	}
	h.json(&dry, "", "infra", "dlq", "redrive", "--dry-run")
	if !dry.DryRun || dry.Moved != 0 || len(dry.Messages) != 3 {
		t.Errorf("redrive --dry-run = %+v, want a dry run listing 3 messages", dry)
	}
	out = h.ok("", "infra", "dlq", "redrive", "--dry-run")
	if !strings.Contains(out, "Dry run: would move 3 messages to the intake queue; nothing was moved.") {
		t.Errorf("redrive --dry-run text:\n%s", out)
	}
	if got := h.drain(res.IntakeQueueURL); len(got) != 0 {
		t.Errorf("intake queue after a dry run holds %v, want nothing", got)
	}

	// The real thing: every message back on the intake queue as it was.
	var rep struct {
		Moved      int `json:"moved"`
		Failed     int `json:"failed"`
		NotDeleted int `json:"not_deleted"`
	}
	h.json(&rep, "", "infra", "dlq", "redrive")
	if rep.Moved != 3 || rep.Failed != 0 || rep.NotDeleted != 0 {
		t.Errorf("redrive = %+v, want 3 moved and nothing failed", rep)
	}
	if diff := cmp.Diff(dead, h.drain(res.IntakeQueueURL)); diff != "" {
		t.Errorf("intake queue after redrive (-want +got):\n%s", diff)
	}
	if out := h.ok("", "infra", "dlq", "list"); out != "The intake DLQ is empty.\n" {
		t.Errorf("dlq list after redrive = %q, want the empty line", out)
	}
	if got := h.drain(res.IntakeDLQURL); len(got) != 0 {
		t.Errorf("intake DLQ after redrive holds %v, want nothing", got)
	}
	if out := h.ok("", "infra", "dlq", "redrive"); out != "Moved 0 messages from the intake DLQ to the intake queue; 0 failed.\n" {
		t.Errorf("redrive of an empty DLQ = %q", out)
	}
}

func TestDLQRedriveMax(t *testing.T) {
	h, res := newQueueHarness(t)
	for _, id := range []string{"a1", "b2", "c3"} {
		h.send(res.IntakeDLQURL, sqsMessage{Body: intakeBody(t, "gtw_x", id), Attrs: map[string]string{queue.AttrSource: "String=webhook"}})
	}
	out := h.ok("", "infra", "dlq", "redrive", "--max", "2")
	if !strings.Contains(out, "Moved 2 messages") {
		t.Errorf("redrive --max 2:\n%s", out)
	}
	if got := len(h.drain(res.IntakeQueueURL)); got != 2 {
		t.Errorf("intake queue holds %d messages after redrive --max 2, want 2", got)
	}
	if got := len(h.drain(res.IntakeDLQURL)); got != 1 {
		t.Errorf("intake DLQ holds %d messages after redrive --max 2, want 1", got)
	}
}

func TestDLQDispatch(t *testing.T) {
	h, res := newQueueHarness(t)
	job, err := json.Marshal(queue.JobEvent{JobID: "job1", GatewayID: "gtw_x", Table: "change_request", SysID: "5555eeee", Number: "CHG0001"})
	if err != nil {
		t.Fatal(err)
	}
	msg := sqsMessage{Body: string(job), Attrs: map[string]string{queue.AttrJobID: "String=job1", queue.AttrTable: "String=change_request"}}
	h.send(res.DispatchDLQURL, msg)

	out := h.ok("", "infra", "dlq", "list", "--queue", "dispatch")
	if !strings.Contains(out, "gtw_x change_request 5555eeee (CHG0001)") || !strings.Contains(out, "1 message in the dispatch DLQ.") {
		t.Errorf("dlq list --queue dispatch:\n%s", out)
	}
	if out := h.ok("", "infra", "dlq", "list"); out != "The intake DLQ is empty.\n" {
		t.Errorf("intake DLQ listing = %q, want empty", out)
	}
	h.ok("", "infra", "dlq", "redrive", "--queue", "dispatch")
	if diff := cmp.Diff([]sqsMessage{msg}, h.drain(res.DispatchQueueURL)); diff != "" {
		t.Errorf("dispatch queue after redrive (-want +got):\n%s", diff)
	}
	if got := h.drain(res.IntakeQueueURL); len(got) != 0 {
		t.Errorf("intake queue holds %v, want nothing", got)
	}
}

// TestDLQResults: a dead-lettered job result is listed by its job and
// result, and redriven to the results queue for the writer.
func TestDLQResults(t *testing.T) {
	h, res := newQueueHarness(t)
	msg := sqsMessage{Body: `{"job_id":"job1","result_id":"r1","status":"succeeded","sumary":"typo"}`, Attrs: map[string]string{}}
	h.send(res.ResultsDLQURL, msg)

	out := h.ok("", "infra", "dlq", "list", "--queue", "results")
	if !strings.Contains(out, "job job1 result r1 (succeeded)") || !strings.Contains(out, "1 message in the results DLQ.") {
		t.Errorf("dlq list --queue results:\n%s", out)
	}
	h.ok("", "infra", "dlq", "redrive", "--queue", "results")
	if diff := cmp.Diff([]sqsMessage{msg}, h.drain(res.ResultsQueueURL)); diff != "" {
		t.Errorf("results queue after redrive (-want +got):\n%s", diff)
	}
}

// A redrive whose sends fail deletes nothing: the messages stay in the DLQ,
// visible at once.
func TestDLQRedriveLosesNothing(t *testing.T) {
	h, res := newQueueHarness(t)
	msg := sqsMessage{Body: intakeBody(t, "gtw_x", "a1"), Attrs: map[string]string{queue.AttrSource: "String=webhook"}}
	h.send(res.IntakeDLQURL, msg)
	h.env[schema.EnvIntakeQueueURL] = res.IntakeQueueURL + "-gone"

	// Depending on the emulator the whole SendMessageBatch call fails or
	// each of its entries does; either way the command fails.
	r := h.run("", "infra", "dlq", "redrive")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "2501: dlq redrive: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("redrive to a missing queue: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "Moved 0 messages from the intake DLQ to the intake queue; 1 failed.\n") {
		t.Errorf("redrive to a missing queue printed %q, want 0 moved and 1 failed", r.stdout)
	}
	if diff := cmp.Diff([]sqsMessage{msg}, h.drain(res.IntakeDLQURL)); diff != "" {
		t.Errorf("intake DLQ after a failed redrive (-want +got):\n%s", diff)
	}
}

func TestDLQBadInput(t *testing.T) {
	h, _ := newQueueHarness(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "list: unknown queue", args: []string{"infra", "dlq", "list", "--queue", "outbox"}, stderr: `2501: dlq list: --queue "outbox": want intake, dispatch or results`},
		{name: "redrive: unknown queue", args: []string{"infra", "dlq", "redrive", "--queue", "outbox"}, stderr: `2501: dlq redrive: --queue "outbox": want intake, dispatch or results`},
		{name: "list: zero max", args: []string{"infra", "dlq", "list", "--max", "0"}, stderr: "--max must be at least 1"},
		{name: "redrive: negative max", args: []string{"infra", "dlq", "redrive", "--max", "-1"}, stderr: "--max must not be negative"},
		{name: "no command", args: []string{"infra", "dlq"}, stderr: "choose a command: list, redrive"},
		{name: "unreachable SQS", args: []string{"infra", "dlq", "list", "--endpoint-url", "http://127.0.0.1:9"}, code: 1, stderr: "2501: dlq list: cannot reach http://127.0.0.1:9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run("", tc.args...)
			if tc.code == 0 {
				tc.code = 2
			}
			if r.code != tc.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want one line containing %q", r.stderr, tc.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}
