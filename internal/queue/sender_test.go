package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/queue"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// received is a message as read back from the queue.
type received struct {
	Body  string
	Attrs map[string]string
}

// drain reads every message on the queue until it stays empty.
func drain(t *testing.T, client *sqs.Client, url string) []received {
	t.Helper()
	var out []received
	for _, m := range awstest.Drain(t, client, url) {
		r := received{Body: aws.ToString(m.Body), Attrs: map[string]string{}}
		for k, v := range m.MessageAttributes {
			r.Attrs[k] = aws.ToString(v.StringValue)
		}
		out = append(out, r)
	}
	return out
}

func intake(i int) queue.IntakeMessage {
	n := 3
	return queue.IntakeMessage{
		GatewayID:   "gtw_1",
		Table:       "incident",
		SysID:       fmt.Sprintf("%032x", i),
		Source:      queue.SourceReconcile,
		ReceivedAt:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		SysModCount: &n,
	}
}

func decodeIntake(t *testing.T, got []received) []queue.IntakeMessage {
	t.Helper()
	var msgs []queue.IntakeMessage
	for _, r := range got {
		var m queue.IntakeMessage
		if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
			t.Fatalf("message body %q: %v", r.Body, err)
		}
		if r.Attrs[queue.AttrSource] != m.Source {
			t.Errorf("attribute source = %q, body source = %q", r.Attrs[queue.AttrSource], m.Source)
		}
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].SysID < msgs[j].SysID })
	return msgs
}

func TestSend(t *testing.T) {
	r := awstest.Resources(t)
	client := sqs.NewFromConfig(awstest.Config(t))
	s := queue.NewSender(client, r.IntakeQueueURL)
	want := intake(1)
	want.Source = queue.SourceWebhook
	if err := s.Send(context.Background(), want); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if diff := cmp.Diff([]queue.IntakeMessage{want}, decodeIntake(t, drain(t, client, r.IntakeQueueURL))); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
}

func TestSendRejects(t *testing.T) {
	r := awstest.Resources(t)
	client := sqs.NewFromConfig(awstest.Config(t))
	m := intake(1)
	m.Source = ""
	if err := queue.NewSender(client, r.IntakeQueueURL).Send(context.Background(), m); !errors.Is(err, queue.ErrNoSource) {
		t.Errorf("Send without source = %v, want ErrNoSource", err)
	}
	if err := queue.NewSender(client, r.IntakeQueueURL+"-missing").Send(context.Background(), intake(2)); err == nil {
		t.Errorf("Send to a missing queue = nil, want an error")
	}
	if got := drain(t, client, r.IntakeQueueURL); len(got) != 0 {
		t.Errorf("queue holds %d messages, want 0", len(got))
	}
}

func TestSendBatch(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{"none", 0},
		{"one", 1},
		{"exactly one chunk", 10},
		{"three chunks", 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := awstest.Resources(t)
			client := sqs.NewFromConfig(awstest.Config(t))
			var want []queue.IntakeMessage
			for i := range tt.n {
				want = append(want, intake(i))
			}
			if err := queue.NewSender(client, r.IntakeQueueURL).SendBatch(context.Background(), want); err != nil {
				t.Fatalf("SendBatch: %v", err)
			}
			got := decodeIntake(t, drain(t, client, r.IntakeQueueURL))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("queue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendBatchNamesWhatWasNotSent(t *testing.T) {
	r := awstest.Resources(t)
	client := sqs.NewFromConfig(awstest.Config(t))
	msgs := []queue.IntakeMessage{intake(1), intake(2), intake(3)}
	msgs[1].Source = "" // cannot be sent: the others still are

	err := queue.NewSender(client, r.IntakeQueueURL).SendBatch(context.Background(), msgs)
	var be *queue.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch = %v, want a *BatchError", err)
	}
	if len(be.Failed) != 1 || be.Failed[0].Message.SysID != msgs[1].SysID || be.Total != 3 {
		t.Errorf("BatchError = %+v, want only message 2 of 3 failed", be)
	}
	if !strings.Contains(err.Error(), msgs[1].SysID) {
		t.Errorf("error %q does not name the sys_id %s", err, msgs[1].SysID)
	}
	got := decodeIntake(t, drain(t, client, r.IntakeQueueURL))
	if diff := cmp.Diff([]queue.IntakeMessage{msgs[0], msgs[2]}, got); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}

	// A queue that does not exist: every message is named.
	err = queue.NewSender(client, r.IntakeQueueURL+"-missing").SendBatch(context.Background(), []queue.IntakeMessage{intake(1), intake(2)})
	if !errors.As(err, &be) || len(be.Failed) != 2 {
		t.Fatalf("SendBatch to a missing queue = %v, want a BatchError naming 2 messages", err)
	}
}

func TestSendJSON(t *testing.T) {
	r := awstest.Resources(t)
	client := sqs.NewFromConfig(awstest.Config(t))
	body := map[string]any{"job_id": "j1", "sys_mod_count": 4.0}
	attrs := map[string]string{queue.AttrJobID: "j1", queue.AttrTable: "incident"}
	if err := queue.NewSender(client, r.DispatchQueueURL).SendJSON(context.Background(), body, attrs); err != nil {
		t.Fatalf("SendJSON: %v", err)
	}
	got := drain(t, client, r.DispatchQueueURL)
	if len(got) != 1 {
		t.Fatalf("dispatch queue holds %d messages, want 1", len(got))
	}
	var gotBody map[string]any
	if err := json.Unmarshal([]byte(got[0].Body), &gotBody); err != nil {
		t.Fatalf("body %q: %v", got[0].Body, err)
	}
	if diff := cmp.Diff(body, gotBody); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(attrs, got[0].Attrs); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if err := queue.NewSender(client, r.DispatchQueueURL).SendJSON(context.Background(), func() {}, nil); err == nil {
		t.Errorf("SendJSON(func) = nil, want an encoding error")
	}
}
