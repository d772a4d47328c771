package ingest_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
)

var duplicate = response{Status: http.StatusOK, Header: map[string]string{"Content-Type": "application/json"}, Body: `{"status":"duplicate"}`}

// TestReplay: a signed request sent again within the tolerance (a replay,
// or the ECC queue sending a call twice) is answered 200 duplicate and
// queues nothing; another message id is a new message; once the timestamp
// has left the tolerance the request is refused on its timestamp. A
// static secret carries no message id: its repeats are accepted.
func TestReplay(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	c := &clock{t: now}
	var logs bytes.Buffer
	h := e.handler(t, c, ingest.Options{Replays: e.replays(), Logger: jsonLogger(&logs)})
	first := req{path: hmacPath, signed: signed(t, signingKey, "msg_r1", now, minimalBody), body: minimalBody}
	steps := []struct {
		name  string
		at    time.Duration // after now
		req   req
		want  int
		queue int
	}{
		{"first", 0, first, 202, 1},
		{"sent again", 0, first, 200, 0},
		{"sent again 14 minutes later", 14 * time.Minute, first, 200, 0},
		{"another message id", 14 * time.Minute, req{path: hmacPath, signed: signed(t, signingKey, "msg_r2", now, minimalBody), body: minimalBody}, 202, 1},
		{"past the tolerance", ingest.DefaultTolerance + time.Second, first, 401, 0},
		{"static secret, twice", 0, req{secret: testSecret, body: minimalBody}, 202, 1},
		{"static secret, again", 0, req{secret: testSecret, body: minimalBody}, 202, 1},
	}
	for _, st := range steps {
		c.Set(now.Add(st.at))
		got := responseOf(st.req.do(t, h))
		if got.Status != st.want {
			t.Errorf("%s: status %d %s, want %d", st.name, got.Status, got.Body, st.want)
		}
		if st.want == 200 {
			if diff := cmp.Diff(duplicate, got); diff != "" {
				t.Errorf("%s: response (-want +got):\n%s", st.name, diff)
			}
		}
		if n := len(e.drain(t)); n != st.queue {
			t.Errorf("%s: intake queue holds %d messages, want %d", st.name, n, st.queue)
		}
	}
	if !strings.Contains(logs.String(), `"outcome":"duplicate","status":200`) || !strings.Contains(logs.String(), `"message_id":"msg_r1"`) {
		t.Errorf("log %s does not tie the duplicates to their message", logs.String())
	}
}

// TestReplayTolerance: the marker lives as long as the timestamp is
// accepted, under a configured tolerance too: a repeat at the window's
// last second is still a duplicate, never a second message.
func TestReplayTolerance(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	c := &clock{t: now}
	h := e.handler(t, c, ingest.Options{Replays: e.replays(), Tolerance: 40 * time.Minute})
	r := req{path: hmacPath, signed: signed(t, signingKey, "msg_t1", now.Add(-39*time.Minute), minimalBody), body: minimalBody}
	if got := r.do(t, h).Code; got != 202 {
		t.Fatalf("39 minutes old under a 40 minute tolerance: %d, want 202", got)
	}
	c.Set(now.Add(time.Minute))
	if got := r.do(t, h).Code; got != 200 {
		t.Errorf("repeat at the window's end: %d, want 200", got)
	}
	c.Set(now.Add(time.Minute + time.Second))
	if got := r.do(t, h).Code; got != 401 {
		t.Errorf("repeat past the window: %d, want 401", got)
	}
	if n := len(e.drain(t)); n != 1 {
		t.Errorf("intake queue holds %d messages, want 1", n)
	}
}

// TestReplayStoreDown: when the replay store cannot be written, an
// authenticated change is queued anyway (ServiceNow would not send it
// again), logged as an error and counted; a duplicate costs less than a
// lost change.
func TestReplayStoreDown(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	var logs, emf bytes.Buffer
	h := e.handler(t, &clock{t: now}, ingest.Options{
		Replays: replay.New(e.ddb, e.res.StateTable+"-missing"), Logger: jsonLogger(&logs), Metrics: emitter(&emf),
	})
	r := req{path: hmacPath, signed: signed(t, signingKey, "msg_d1", now, minimalBody), body: minimalBody}
	for i := range 2 {
		if got := r.do(t, h).Code; got != 202 {
			t.Errorf("request %d with the store down: %d, want 202", i+1, got)
		}
	}
	if n := len(e.drain(t)); n != 2 {
		t.Errorf("intake queue holds %d messages, want 2", n)
	}
	if !strings.Contains(logs.String(), `replay_unchecked"`) || !strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("log %q does not record the unchecked request as an error", logs.String())
	}
	if got := counts(t, &emf); got[ingest.MetricReplayUnchecked+"/"+hmacWebhook] != 2 {
		t.Errorf("metrics %v, want %s = 2 for %s", got, ingest.MetricReplayUnchecked, hmacWebhook)
	}
}

// TestReplayForgottenAfterFailedEnqueue: a message remembered but not
// queued (503) is forgotten, so the same call sent again once the queue is
// back is queued, not dropped as a duplicate.
func TestReplayForgottenAfterFailedEnqueue(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	store := e.replays()
	broken := ingest.New(registry.New(e.ddb, e.res.RegistryTable), e.secrets,
		queue.NewSender(sqs.NewFromConfig(awstest.Config(t)), e.res.IntakeQueueURL+"-missing"),
		ingest.Options{Now: (&clock{t: now}).Now, Replays: store})
	r := req{path: hmacPath, signed: signed(t, signingKey, "msg_f1", now, minimalBody), body: minimalBody}
	if got := r.do(t, broken).Code; got != 503 {
		t.Fatalf("with the queue missing: %d, want 503", got)
	}
	h := e.handler(t, &clock{t: now}, ingest.Options{Replays: store})
	if got := r.do(t, h).Code; got != 202 {
		t.Errorf("sent again with the queue back: %d, want 202", got)
	}
	if got := r.do(t, h).Code; got != 200 {
		t.Errorf("and once more: %d, want 200", got)
	}
	if n := len(e.drain(t)); n != 1 {
		t.Errorf("intake queue holds %d messages, want 1", n)
	}
}
