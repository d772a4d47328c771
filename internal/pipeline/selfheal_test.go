package pipeline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/state"
)

// fakeClock is a settable clock for leases.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// killedAfterSend is a processor killed (its invocation timed out) right
// after it sent an event, while kill is set.
type killedAfterSend struct {
	kill *atomic.Bool
	next pipeline.Dispatcher
}

func (d killedAfterSend) SendJSON(ctx context.Context, body any, attrs map[string]string) error {
	if err := d.next.SendJSON(ctx, body, attrs); err != nil {
		return err
	}
	if d.kill.Load() {
		panic("invocation timed out")
	}
	return nil
}

// TestCrashAfterJobCreatedThenClosed: a processor sends job.created and
// dies before it stores the job; the record is closed before the lease
// runs out. The next attempt finds the job the dead one indexed, and
// cancels it, so the engine's job does not stay open forever.
func TestCrashAfterJobCreatedThenClosed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	clk := &fakeClock{t: time.Now()}
	var kill atomic.Bool
	kill.Store(true)
	deps := e.deps
	deps.Tickets = e.tickets.WithClock(clk.now)
	deps.Dispatch = killedAfterSend{kill: &kill, next: e.deps.Dispatch}
	cfg := e.cfg
	cfg.Now = clk.now
	p := pipeline.New(deps, cfg)
	sysID := e.insert("incident", incident("Crash, then closed"))
	invoke := func() int {
		t.Helper()
		resp, err := p.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{message(e.gw, "incident", sysID)}})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.BatchItemFailures)
	}
	if n := invoke(); n != 1 {
		t.Fatalf("killed invocation: %d failures, want 1", n)
	}
	created := e.events()
	if len(created) != 1 || created[0].Type != queue.EventJobCreated {
		t.Fatalf("events %+v, want job.created", created)
	}
	if tk := e.ticket("incident", sysID); tk.Status != state.StatusProcessing || tk.Job != nil {
		t.Fatalf("ticket %s job %+v, want processing without a job", tk.Status, tk.Job)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"state": "7"}); err != nil {
		t.Fatal(err)
	}
	kill.Store(false)
	clk.add(2 * pipeline.DefaultLease)
	if n := invoke(); n != 0 {
		t.Fatalf("redelivery: %d failures\n%s", n, e.logs.String())
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Type != queue.EventJobCancelled || evs[0].JobID != created[0].JobID || evs[0].Sequence != 2 || evs[0].Episode != 1 {
		t.Fatalf("events %+v, want job.cancelled of job %s, sequence 2, episode 1", evs, created[0].JobID)
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusOutOfScope || tk.Job == nil || tk.Job.ID != created[0].JobID || tk.Job.State != state.JobCancelled || len(tk.Job.Events) != 2 {
		t.Errorf("ticket %s job %+v, want out_of_scope with job %s cancelled, both events recorded", tk.Status, tk.Job, created[0].JobID)
	}
	if open, err := e.tickets.OpenJobs(ctx, e.gw); err != nil || len(open) != 0 {
		t.Errorf("open jobs %d (%v), want none", len(open), err)
	}
}

// TestCrashAfterJobCancelledThenReopened: a processor sends job.cancelled
// and dies before it stores the end; a person reopens the incident before
// the lease runs out. The next attempt decides from the job as the dead
// one ended it: its job.cancelled again (it may not have left), then a
// new episode, never news for the cancelled job.
func TestCrashAfterJobCancelledThenReopened(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, pipeline.Config{})
	clk := &fakeClock{t: time.Now()}
	var kill atomic.Bool
	deps := e.deps
	deps.Tickets = e.tickets.WithClock(clk.now)
	deps.Dispatch = killedAfterSend{kill: &kill, next: e.deps.Dispatch}
	cfg := e.cfg
	cfg.Now = clk.now
	p := pipeline.New(deps, cfg)
	sysID := e.insert("incident", incident("Cancelled, then reopened"))
	invoke := func() int {
		t.Helper()
		resp, err := p.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{message(e.gw, "incident", sysID)}})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.BatchItemFailures)
	}
	if n := invoke(); n != 0 {
		t.Fatalf("first delivery: %d failures", n)
	}
	first := e.events()
	if len(first) != 1 || first[0].Type != queue.EventJobCreated || first[0].Episode != 1 {
		t.Fatalf("events %+v, want job.created of episode 1", first)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"state": "7"}); err != nil {
		t.Fatal(err)
	}
	kill.Store(true)
	if n := invoke(); n != 1 {
		t.Fatalf("killed invocation: %d failures, want 1", n)
	}
	cancelled := e.events()
	if len(cancelled) != 1 || cancelled[0].Type != queue.EventJobCancelled || cancelled[0].JobID != first[0].JobID {
		t.Fatalf("events %+v, want job.cancelled of job %s", cancelled, first[0].JobID)
	}

	if _, err := e.sim.Sim.Update("incident", sysID, map[string]string{"state": "2", "active": "true"}); err != nil {
		t.Fatal(err)
	}
	kill.Store(false)
	clk.add(2 * pipeline.DefaultLease)
	if n := invoke(); n != 0 {
		t.Fatalf("redelivery: %d failures\n%s", n, e.logs.String())
	}
	// The end the dead one recorded, again (it may not have left), then
	// the new episode.
	evs := e.events() // in sequence order: the new job's 1, the old one's 2
	if len(evs) != 2 || evs[1].Type != queue.EventJobCancelled || evs[1].EventID != cancelled[0].EventID ||
		evs[0].Type != queue.EventJobCreated || evs[0].Episode != 2 || evs[0].JobID == first[0].JobID {
		t.Fatalf("events %+v, want job.cancelled again (same id) and job.created of a new job, episode 2", evs)
	}
	evs = evs[:1]
	tk := e.ticket("incident", sysID)
	if tk.Job == nil || tk.Job.ID != evs[0].JobID || !tk.Job.Open() || tk.Status != state.StatusAccepted || tk.Ending != nil {
		t.Errorf("ticket %s job %+v ending %+v, want accepted with job %s open and no ending left", tk.Status, tk.Job, tk.Ending, evs[0].JobID)
	}
}
