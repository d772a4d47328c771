package state_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/state"
)

var (
	modelSeed  = flag.Uint64("model.seed", 0, "run the claim model with this seed only (0: the default seeds)")
	modelSteps = flag.Int("model.steps", 300, "random steps per seed of the claim model")
)

// TestClaimModel checks the claim state machine against a model of the
// world around it: a ServiceNow instance whose records change (new
// content, a comment that changes no mirrored field, open and closed),
// webhooks that are lost or fire twice, an intake queue that redelivers
// after a visibility timeout and dead-letters after one to three receives (by seed),
// processors that fail after their claim (release) or vanish (their claim
// expires on the fake clock), and reconciliation runs (the watermark pass
// over recent changes, and the stuck index). Steps interleave at random,
// one at a time (seeded: -model.seed=N replays a failure), each actor
// going through the processor's steps: cheap check, fetch, claim, send,
// finish. Then failures stop and the world drains: every message is
// processed and the reconciler runs until it has nothing to send.
//
// Invariants: no version lost (every record's decided version is the one
// ServiceNow holds, and its job is open exactly when the record is), and
// at most one job.created per episode (re-sends after a crash carry the
// same event id; episodes count up by one).
func TestClaimModel(t *testing.T) {
	// One step at a time, so moto (whose conditional writes are not
	// isolated) serves too; it is slower, so it runs fewer seeds.
	seeds := []uint64{1, 2, 3, 4, 5}
	if awstest.Kind() == awstest.Moto {
		seeds = seeds[:3]
	}
	if *modelSeed != 0 {
		seeds = []uint64{*modelSeed}
	}
	s := newStore(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			w := newWorld(t, s, seed)
			w.run(*modelSteps)
			w.drain()
			w.check()
			t.Logf("seed %d: %s", seed, w.summary())
			if t.Failed() {
				t.Logf("replay with: go test ./internal/state -run 'TestClaimModel/seed=%d' -model.seed=%d\ntrace:\n%s", seed, seed, strings.Join(w.trace, "\n"))
			}
		})
	}
}

const (
	modelRecords = 6
	modelLease   = time.Minute
	// modelTimeout is the invocation's limit: an actor past it is killed
	// (the lease outlives any invocation, as Config.Lease requires).
	modelTimeout    = modelLease / 2
	modelVisibility = 3 * time.Minute
	modelQueuedFor  = 10 * time.Minute
	modelOverlap    = 2 * time.Minute
	modelSchedule   = 2 * time.Minute
)

// snRecord is a record as the instance holds it.
type snRecord struct {
	version   int
	open      bool
	desc      int
	changedAt time.Time
}

// delivery is a message on the intake queue.
type delivery struct {
	rec       int
	hint      *int
	visibleAt time.Time
	receives  int
}

// actor is a processor working on one message.
type actor struct {
	msg   delivery
	step  int // 0 cheap check, 1 fetch, 2 claim, 3 send, 4 finish
	seen  snRecord
	token string
	// claimedAt is when the actor's invocation claimed.
	claimedAt time.Time
	// resend is the end an unfinished attempt recorded (Ticket.Ending).
	resend *state.Ending
	prev   state.Ticket
	res    state.Result
}

type sent struct {
	rec, episode int
	eventID      string
}

type world struct {
	t      *testing.T
	rng    *rand.Rand
	clk    *clock
	s      *state.Store
	prefix string
	sn     []snRecord
	queue  []delivery
	actors []*actor
	tokens int
	// created and cancelled log every job.created and job.cancelled sent.
	created, cancelled []sent
	lastRecon          time.Time
	faults             bool
	// receives is how many receives a message gets before the DLQ.
	receives int
	// stuckSent counts the messages the stuck index gave.
	stuckSent int
	trace     []string
}

func newWorld(t *testing.T, s *state.Store, seed uint64) *world {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), clk: clk, s: s.WithClock(clk.now),
		prefix: fmt.Sprintf("m%d-", seed), faults: true, lastRecon: clk.t, receives: 1 + int(seed%3)}
	for range modelRecords {
		w.sn = append(w.sn, snRecord{open: true, changedAt: clk.t})
		w.webhook(len(w.sn) - 1)
	}
	return w
}

func (w *world) logf(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf("%s ", w.clk.t.Format("15:04:05"))+fmt.Sprintf(format, args...))
}

func (w *world) key(rec int) state.Key {
	return state.Key{GatewayID: gtw, Table: "incident", SysID: fmt.Sprintf("%s%d", w.prefix, rec)}
}

func (w *world) mirror(r snRecord) state.Mirror {
	m := state.Mirror{Number: "INC", State: "2", ShortDescription: fmt.Sprint("desc ", r.desc), Active: r.open}
	if !r.open {
		m.State = "7"
	}
	return m
}

// webhook delivers the record's current version: lost one time in five,
// fired twice one time in five.
func (w *world) webhook(rec int) {
	v := w.sn[rec].version
	switch n := w.rng.IntN(5); {
	case n == 0 && w.faults:
		w.logf("r%d v%d: webhook lost", rec, v)
		return
	case n == 1:
		w.queue = append(w.queue, delivery{rec: rec, hint: &v, visibleAt: w.clk.t})
	}
	w.queue = append(w.queue, delivery{rec: rec, hint: &v, visibleAt: w.clk.t})
}

func (w *world) run(steps int) {
	for range steps {
		switch n := w.rng.IntN(100); {
		case n < 8:
			w.change(w.rng.IntN(len(w.sn)))
		case n < 35:
			w.receive()
		case n < 80:
			if len(w.actors) > 0 {
				w.advance(w.rng.IntN(len(w.actors)))
			} else {
				w.receive()
			}
		default:
			w.clk.t = w.clk.t.Add(time.Duration(w.rng.IntN(60)) * time.Second)
		}
		// The schedule: a run every two minutes.
		if !w.clk.t.Before(w.lastRecon.Add(modelSchedule)) {
			w.reconcile()
		}
	}
}

// change is a person's edit: new content, a comment (no mirrored field),
// or closing / reopening the record.
func (w *world) change(rec int) {
	r := &w.sn[rec]
	r.version++
	r.changedAt = w.clk.t
	switch w.rng.IntN(3) {
	case 0:
		r.desc++
	case 1: // a comment: same content
	default:
		r.open = !r.open
	}
	w.logf("r%d v%d: changed (open %v, desc %d)", rec, r.version, r.open, r.desc)
	w.webhook(rec)
}

// receive hands a visible message to a new actor.
func (w *world) receive() {
	i := slices.IndexFunc(w.queue, func(d delivery) bool { return !d.visibleAt.After(w.clk.t) })
	if i < 0 {
		return
	}
	d := w.queue[i]
	w.queue = slices.Delete(w.queue, i, i+1)
	d.receives++
	w.tokens++
	w.actors = append(w.actors, &actor{msg: d, token: fmt.Sprint("tok", w.tokens)})
}

// requeue gives a failed message back to the queue, or drops it when it
// is out of receives (the dead-letter queue, which nobody redrives here).
func (w *world) requeue(a *actor, why string) {
	if a.msg.receives >= w.receives && w.faults {
		w.logf("r%d: %s; message dead-lettered", a.msg.rec, why)
		return
	}
	a.msg.visibleAt = w.clk.t.Add(modelVisibility)
	w.queue = append(w.queue, a.msg)
	w.logf("r%d: %s; message back on the queue", a.msg.rec, why)
}

// advance runs actor i's next step.
func (w *world) advance(i int) {
	ctx := context.Background()
	a := w.actors[i]
	done := func() { w.actors = slices.Delete(w.actors, i, i+1) }
	k := w.key(a.msg.rec)
	if a.step >= 3 && (w.faults && w.rng.IntN(6) == 0 || w.clk.t.After(a.claimedAt.Add(modelTimeout))) {
		done()
		w.requeue(a, fmt.Sprintf("processor vanished at step %d", a.step))
		return
	}
	switch a.step {
	case 0:
		if a.msg.hint != nil {
			d, ok, err := w.s.DecidedVersion(ctx, k)
			if err != nil {
				w.t.Fatal(err)
			}
			if ok && *a.msg.hint <= d {
				w.logf("r%d v%d: cheap stale (decided %d)", a.msg.rec, *a.msg.hint, d)
				done()
				return
			}
		}
	case 1:
		if w.faults && w.rng.IntN(8) == 0 {
			if err := w.s.RecordFailure(ctx, k, "fetch record: 429", false, "webhook"); err != nil {
				w.t.Fatal(err)
			}
			done()
			w.requeue(a, "fetch failed")
			return
		}
		a.seen = w.sn[a.msg.rec]
	case 2:
		prev, err := w.s.Claim(ctx, state.Claim{Key: k, Mirror: w.mirror(a.seen), SysModCount: a.seen.version,
			SysUpdatedOn: "2026-03-01 12:00:00", Source: "webhook", Token: a.token, Lease: modelLease})
		switch {
		case errors.Is(err, state.ErrStale), errors.Is(err, state.ErrUnchanged):
			w.logf("r%d v%d: claim %v", a.msg.rec, a.seen.version, err)
			done()
			return
		case errors.Is(err, state.ErrBusy):
			done()
			w.requeue(a, "busy")
			return
		case err != nil:
			w.t.Fatal(err)
		}
		a.prev, a.claimedAt = prev.Basis(), w.clk.t
		if prev.Status == state.StatusProcessing || prev.Status == state.StatusRetrying {
			a.resend = prev.Ending
		}
		a.res = w.decide(a.msg.rec, prev, a.seen)
		w.logf("r%d v%d: claimed (%s)", a.msg.rec, a.seen.version, a.res.Status)
	case 3:
		// As the processor does before it sends: the job indexed, the end
		// recorded; then the sends, which may fail (nothing left) and
		// release the claim.
		ended := w.ending(a)
		if ended != nil {
			if err := w.s.MarkEnding(ctx, k, a.token, state.Ending{Job: *ended, Status: a.res.Status, Reason: a.res.Reason}); err != nil {
				w.t.Fatal(err)
			}
		}
		created := a.res.Job != nil && a.res.Job.State == state.JobOpen
		if created {
			if err := w.s.IndexJob(ctx, a.res.Job.ID, k); err != nil {
				w.t.Fatal(err)
			}
		}
		if w.faults && w.rng.IntN(5) == 0 {
			if err := w.s.Release(ctx, k, a.token, "dispatch: denied", state.PriorOf(a.prev)); err != nil && !errors.Is(err, state.ErrClaimLost) {
				w.t.Fatal(err)
			}
			done()
			w.requeue(a, "dispatch failed, released")
			return
		}
		if a.resend != nil {
			// The end an unfinished attempt recorded, sent again.
			w.cancelled = append(w.cancelled, sent{rec: a.msg.rec, episode: a.resend.Job.Episode})
			w.logf("r%d v%d: job.cancelled episode %d again", a.msg.rec, a.seen.version, a.resend.Job.Episode)
		}
		if created {
			w.created = append(w.created, sent{rec: a.msg.rec, episode: a.res.Job.Episode, eventID: a.res.Job.ID})
			w.logf("r%d v%d: job.created episode %d", a.msg.rec, a.seen.version, a.res.Job.Episode)
		}
		if ended != nil {
			w.cancelled = append(w.cancelled, sent{rec: a.msg.rec, episode: ended.Episode})
			w.logf("r%d v%d: job.cancelled episode %d", a.msg.rec, a.seen.version, ended.Episode)
		}
	case 4:
		err := w.s.Finish(ctx, k, a.token, a.res)
		switch {
		case errors.Is(err, state.ErrClaimLost):
			w.logf("r%d v%d: finish: claim lost", a.msg.rec, a.seen.version)
		case err != nil:
			w.t.Fatal(err)
		default:
			w.logf("r%d v%d: finished %s", a.msg.rec, a.seen.version, a.res.Status)
		}
		done()
		return
	}
	a.step++
}

// ending is the job the actor's decision cancels, as it will be stored;
// nil when it cancels none.
func (w *world) ending(a *actor) *state.Job {
	switch {
	case a.res.Job != nil && a.res.Job.State == state.JobCancelled && (a.prev.Job == nil || a.res.Job.ID != a.prev.Job.ID):
		return a.res.Job
	case a.res.EndJob != "":
		j := a.res.After(w.clk.t)
		return &j
	}
	return nil
}

// decide is the lifecycle decision, reduced to what the claim protects:
// a job is created when the record is open and the ticket has none open,
// cancelled when the record closed, updated when the content changed. As
// the processor does (pendingJob), a claim over an unfinished attempt
// looks for the job that attempt may have created: closed, it is
// cancelled and stored whole.
func (w *world) decide(rec int, claimed state.Ticket, r snRecord) state.Result {
	prev := claimed.Basis()
	m := w.mirror(r)
	res := state.Result{Version: r.version, Status: state.StatusOutOfScope, Reason: "closed"}
	next := 1
	if prev.Job != nil {
		next = prev.Job.Episode + 1
	}
	pendingID := fmt.Sprintf("%s-episode-%d", w.key(rec).SysID, next)
	unfinished := claimed.Status == state.StatusProcessing || claimed.Status == state.StatusRetrying
	if unfinished && !prev.Job.Open() && !r.open {
		if _, err := w.s.JobTicketKey(context.Background(), pendingID); err == nil {
			res.JobID = pendingID
			res.Job = &state.Job{ID: pendingID, State: state.JobCancelled, Episode: next, Sequence: 2, Events: []state.JobEventRecord{
				{Type: "job.created", Sequence: 1, EventID: pendingID}, {Type: "job.cancelled", Sequence: 2, EventID: "cancel"}}}
		} else if !errors.Is(err, state.ErrNotFound) {
			w.t.Fatal(err)
		}
	}
	switch {
	case res.Job != nil:
	case prev.EndedByAttempt() && !r.open:
		// Still closed: the end an unfinished attempt sent is stored.
		res.Job, res.JobID = prev.Job, prev.Job.ID
	case prev.Job.Open() && !r.open:
		res.Base, res.EndJob = prev.Job, state.JobCancelled
		res.Events = []state.JobEventRecord{{Type: "job.cancelled", Sequence: prev.Job.Sequence + 1, EventID: "cancel"}}
	case prev.Job.Open() && prev.ContentHash != m.Hash():
		res.Status, res.Reason, res.JobOpen, res.Base = state.StatusAccepted, "updated", true, prev.Job
		res.Events = []state.JobEventRecord{{Type: "job.updated", Sequence: prev.Job.Sequence + 1, EventID: fmt.Sprint("upd", r.version)}}
	case prev.Job.Open():
		res.Status, res.Reason, res.Outcome, res.JobOpen = prev.Status, prev.Reason, state.OutcomeUnchanged, true
	case r.open:
		episode, id := next, pendingID
		res.Status, res.Reason, res.JobOpen, res.JobID = state.StatusAccepted, "new", true, id
		res.Job = &state.Job{ID: id, State: state.JobOpen, Episode: episode, Sequence: 1,
			Events: []state.JobEventRecord{{Type: "job.created", Sequence: 1, EventID: id}}}
	}
	after := state.Ticket{Status: res.Status, Reason: res.Reason, Mirror: m, ContentHash: m.Hash()}
	if res.Outcome != "" {
		after.Status, after.Reason = prev.Status, prev.Reason
	}
	res.Prior = state.PriorOf(after)
	return res
}

// reconcile is one reconciliation run as the reconciler makes it: the
// watermark pass over the records changed since the last run (minus the
// overlap), enqueueing what is neither decided nor queued; then the stuck
// index; each record once per run, marked queued before it is sent.
func (w *world) reconcile() {
	ctx := context.Background()
	now := w.clk.t
	var ids []string
	var recent []int
	for i, r := range w.sn {
		if !r.changedAt.Before(w.lastRecon.Add(-modelOverlap)) {
			ids = append(ids, w.key(i).SysID)
			recent = append(recent, i)
		}
	}
	w.lastRecon = now
	known, err := w.s.Versions(ctx, gtw, "incident", ids)
	if err != nil {
		w.t.Fatal(err)
	}
	sentNow := map[int]bool{}
	var marks []state.Enqueued
	var out []delivery
	for _, i := range recent {
		v := w.sn[i].version
		if k, ok := known[w.key(i).SysID]; ok && k.Handled(v, now) {
			continue
		}
		sentNow[i] = true
		marks = append(marks, state.Enqueued{Key: w.key(i), Version: v})
		out = append(out, delivery{rec: i, hint: &v, visibleAt: now})
	}
	stuck, err := w.s.StuckTickets(ctx, gtw, now, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	fromStuck := 0
	for _, tk := range stuck {
		i := slices.IndexFunc(ids2recs(w), func(id string) bool { return id == tk.SysID })
		if i < 0 || sentNow[i] || tk.Queued(tk.SysModCount, now) {
			continue
		}
		sentNow[i] = true
		fromStuck++
		w.stuckSent++
		marks = append(marks, state.Enqueued{Key: tk.Key(), Version: tk.SysModCount})
		out = append(out, delivery{rec: i, visibleAt: now})
	}
	if len(out) == 0 {
		return
	}
	if err := w.s.MarkQueued(ctx, marks, now.Add(modelQueuedFor)); err != nil {
		w.t.Fatal(err)
	}
	w.queue = append(w.queue, out...)
	w.logf("reconcile: enqueued %d (%d stuck)", len(out), fromStuck)
}

// drain stops the faults and lets the system settle: every message is
// processed to its end, time passes (leases expire, markers too, stuck
// tickets come due) and the reconciler runs, until a run sends nothing
// and the queue is empty.
func (w *world) drain() {
	w.faults = false
	for round := 0; ; round++ {
		if round == 50 {
			w.t.Fatalf("the world did not settle in %d rounds: queue %d, actors %d", round, len(w.queue), len(w.actors))
		}
		for len(w.actors) > 0 || len(w.queue) > 0 {
			for len(w.actors) > 0 {
				w.advance(0)
			}
			// Everything on the queue becomes visible.
			w.clk.t = w.clk.t.Add(modelVisibility)
			for len(w.queue) > 0 {
				w.receive()
				for len(w.actors) > 0 {
					w.advance(0)
				}
			}
		}
		w.clk.t = w.clk.t.Add(modelQueuedFor + state.StuckAfter + modelLease)
		// A scheduled run: the changes since the last one, and the stuck
		// index; only when it sends nothing is the world settled.
		before := len(w.queue)
		w.reconcile()
		if len(w.queue) == before {
			return
		}
	}
}

func (w *world) check() {
	ctx := context.Background()
	for i, r := range w.sn {
		tk, err := w.s.Get(ctx, w.key(i))
		if err != nil {
			w.t.Errorf("r%d: %v", i, err)
			continue
		}
		if tk.Decided() != r.version {
			w.t.Errorf("r%d: decided version %d, ServiceNow has %d: a version was lost", i, tk.Decided(), r.version)
		}
		if tk.Job.Open() != r.open {
			w.t.Errorf("r%d: job %+v, record open %v", i, tk.Job, r.open)
		}
		if tk.StuckAt != "" || tk.Status == state.StatusRetrying || tk.Status == state.StatusProcessing {
			w.t.Errorf("r%d: left %s, stuck %q", i, tk.Status, tk.StuckAt)
		}
		episodes := map[int][]string{}
		maxEp := 0
		for _, c := range w.created {
			if c.rec == i && !slices.Contains(episodes[c.episode], c.eventID) {
				episodes[c.episode] = append(episodes[c.episode], c.eventID)
				maxEp = max(maxEp, c.episode)
			}
		}
		for ep := 1; ep <= maxEp; ep++ {
			// None is possible: a job indexed, never sent, then cancelled.
			if len(episodes[ep]) > 1 {
				w.t.Errorf("r%d episode %d: job.created %v, want at most one", i, ep, episodes[ep])
			}
		}
		// (One more is fine when it is ended: a job indexed, never sent,
		// then cancelled; the engine ignores the end of a job it never
		// had.)
		if tk.Job != nil && tk.Job.Episode != maxEp && (tk.Job.Episode != maxEp+1 || tk.Job.Open()) {
			w.t.Errorf("r%d: ticket at episode %d, job.created sent up to %d", i, tk.Job.Episode, maxEp)
		}
		// The engine's view: every episode but the last was cancelled, and
		// the last is open exactly when the record is.
		for ep := 1; ep <= maxEp; ep++ {
			ended := slices.ContainsFunc(w.cancelled, func(c sent) bool { return c.rec == i && c.episode == ep })
			if wantEnded := ep < maxEp || !r.open; ended != wantEnded {
				w.t.Errorf("r%d episode %d: cancelled %v, want %v: the engine's job would stay open or end wrongly", i, ep, ended, wantEnded)
			}
		}
	}
}

// ids2recs lists the records' sys_ids, by record.
func ids2recs(w *world) []string {
	out := make([]string, len(w.sn))
	for i := range w.sn {
		out[i] = w.key(i).SysID
	}
	return out
}

// summary counts what the run went through, so that a reader of -v sees
// the model exercised the paths it is about.
func (w *world) summary() string {
	var parts []string
	for _, what := range []string{"webhook lost", "dead-lettered", "vanished", "released", "fetch failed", "cheap stale", "claim lost", "stale version", "unchanged", "reconcile: enqueued", "job.created", "finished"} {
		n := 0
		for _, l := range w.trace {
			if strings.Contains(l, what) {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("%s=%d", strings.ReplaceAll(what, " ", "_"), n))
	}
	parts = append(parts, fmt.Sprint("from_stuck_index=", w.stuckSent))
	return strings.Join(parts, " ")
}
