package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/watermark"
)

func TestChangedQuery(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 5, 700e6, time.UTC)
	tests := []struct {
		name string
		gw   registry.Gateway
		want string
	}{
		{"no filters: no active condition", registry.Gateway{},
			"sys_updated_on>=2026-03-01 10:00:05^ORDERBYsys_updated_on^ORDERBYsys_id"},
		{"group names (registered offline) and environment kept", registry.Gateway{AssignmentGroupFilter: "Network,DB", EnvironmentFilter: "prod"},
			"assignment_group.nameINNetwork,DB^u_environmentINprod^sys_updated_on>=2026-03-01 10:00:05^ORDERBYsys_updated_on^ORDERBYsys_id"},
		{"group sys_ids", registry.Gateway{AssignmentGroupFilter: "Network", AssignmentGroupIDs: []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"}},
			"assignment_groupINaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01^sys_updated_on>=2026-03-01 10:00:05^ORDERBYsys_updated_on^ORDERBYsys_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reconcile.ChangedQuery(tc.gw, at); got != tc.want {
				t.Errorf("ChangedQuery() = %q, want %q", got, tc.want)
			}
		})
	}
}

// With every webhook lost, rounds of creates, updates and closures all end
// up processed by the real processor, each version once, and a record
// outside the gateway's assignment group is never read.
func TestLostWebhooksAllProcessedOnce(t *testing.T) {
	e := newEnv(t, envOptions{groups: "Network"})
	e.sim.SetOutbound(false)
	r := e.reconciler(reconcile.Config{PageSize: 7})
	// The filter was resolved at registration: the query names the sys_id.
	if gw, err := registry.New(e.ddb, e.res.RegistryTable).Gateway(context.Background(), e.gatewayID); err != nil ||
		gw.ScopeQuery() != "active=true^assignment_groupINaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01" {
		t.Fatalf("gateway scope = %q (%v), want Network's sys_id", gw.ScopeQuery(), err)
	}

	var ids, closed []string
	// Groups by sys_id (Database, Network), as writes to an instance give them.
	outside := e.insert(map[string]string{"short_description": "not ours", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"})
	for round := range 4 {
		for i := range 9 {
			e.clk.add(time.Duration(i%3) * time.Second) // several per second
			ids = append(ids, e.insert(map[string]string{
				"short_description": fmt.Sprintf("disk full %d.%d", round, i), "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
			}))
		}
		for i, id := range ids[:len(ids)/2] {
			if i%3 == round%3 {
				e.update(id, map[string]string{"priority": fmt.Sprint(1 + round)})
			}
		}
		if round == 2 {
			// Closed after it was processed: active=false from now on.
			e.update(ids[0], map[string]string{"state": "7"})
			closed = append(closed, ids[0])
		}
		e.clk.add(2 * time.Minute)
		res := e.run(r, reconcile.Options{})
		if res.Err != nil || !res.Done {
			t.Fatalf("round %d: result %+v", round, res)
		}
		msgs := e.drain()
		for _, m := range msgs {
			if m.Source != queue.SourceReconcile || m.GatewayID != e.gatewayID || m.WebhookID != e.webhookID {
				t.Errorf("round %d: message %+v", round, m)
			}
		}
		bySysID(t, msgs)
		e.process(msgs)
	}

	// A last run finds nothing new: everything was processed.
	e.clk.add(2 * time.Minute)
	if res := e.run(r, reconcile.Options{}); res.Enqueued != 0 {
		t.Errorf("final run enqueued %d, want 0 (%+v)", res.Enqueued, res)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("final run left %d messages", len(msgs))
	}

	for _, id := range ids {
		tk, err := e.ticket(id)
		if err != nil {
			t.Errorf("ticket %s: %v", id, err)
			continue
		}
		if want := e.version(id); tk.SysModCount != want {
			t.Errorf("ticket %s version %d, want %d", id, tk.SysModCount, want)
		}
		wantStatus := state.StatusAccepted
		if slices.Contains(closed, id) {
			wantStatus = state.StatusOutOfScope
		}
		if tk.Status != wantStatus {
			t.Errorf("ticket %s status %s (%s), want %s", id, tk.Status, tk.Reason, wantStatus)
		}
	}
	if _, err := e.ticket(outside); err == nil {
		t.Errorf("record outside the assignment group has a ticket")
	}
	jobs := map[string]int{}
	for _, j := range e.jobs() {
		jobs[fmt.Sprintf("%s@%d", j.SysID, j.SysModCount)]++
	}
	for k, n := range jobs {
		if n > 1 {
			t.Errorf("job for %s dispatched %d times", k, n)
		}
	}
}

// With webhooks delivered (the processor saw every change), reconciliation
// reads the changes and enqueues none of them.
func TestDeliveredWebhooksEnqueueNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.reconciler(reconcile.Config{PageSize: 4})
	var delivered []queue.IntakeMessage
	for i := range 10 {
		id := e.insert(map[string]string{"short_description": fmt.Sprintf("cpu %d", i)})
		delivered = append(delivered, queue.IntakeMessage{GatewayID: e.gatewayID, WebhookID: e.webhookID,
			Table: registry.TableIncident, SysID: id, Source: queue.SourceWebhook, ReceivedAt: e.clk.now()})
		e.clk.add(time.Second)
	}
	e.update(delivered[3].SysID, map[string]string{"priority": "1"})
	delivered = append(delivered, delivered[3])
	e.process(delivered)

	e.clk.add(2 * time.Minute)
	res := e.run(r, reconcile.Options{})
	if res.Scanned != 10 || res.Enqueued != 0 || res.Skipped != 10 || !res.Done {
		t.Errorf("result scanned %d enqueued %d skipped %d done %v; want 10, 0, 10, true",
			res.Scanned, res.Enqueued, res.Skipped, res.Done)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("intake holds %d messages, want 0", len(msgs))
	}
}

func TestWatermarkEdgeCases(t *testing.T) {
	t.Run("many updates in one second across page boundaries", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		r := e.reconciler(reconcile.Config{PageSize: 5})
		var want []string
		e.clk.add(10 * time.Second)
		for range 23 { // four and a half pages in one second
			want = append(want, e.insert(nil))
		}
		e.clk.add(time.Second)
		for range 3 {
			want = append(want, e.insert(nil))
		}
		e.clk.add(time.Minute)
		res := e.run(r, reconcile.Options{})
		msgs := e.drain()
		got := bySysID(t, msgs)
		if len(got) != len(want) || res.Enqueued != len(want) {
			t.Errorf("enqueued %d distinct of %d records (result %d)", len(got), len(want), res.Enqueued)
		}
		last := e.sim.Records("incident")
		lastRec := slices.MaxFunc(last, func(a, b map[string]string) int {
			return strings.Compare(a["sys_updated_on"]+a["sys_id"], b["sys_updated_on"]+b["sys_id"])
		})
		if m := e.mark(); m.Position.SysID != lastRec["sys_id"] {
			t.Errorf("watermark at %s, want the last record %s", m.Position, lastRec["sys_id"])
		}
	})

	t.Run("record updated during paging", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		r := e.reconciler(reconcile.Config{PageSize: 5})
		var ids []string
		for range 20 {
			e.clk.add(time.Second)
			ids = append(ids, e.insert(nil))
		}
		e.clk.add(time.Second)
		// After the first page was served, a record on it is updated: it
		// moves to the end, and under offset paging the record at the next
		// page's start would slip into the page already read.
		lists := 0
		e.wrap = func(w http.ResponseWriter, req *http.Request, next http.Handler) {
			next.ServeHTTP(w, req)
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/incident") {
				lists++
				if lists == 1 {
					e.update(ids[1], map[string]string{"priority": "1"})
				}
			}
		}
		res := e.run(r, reconcile.Options{})
		msgs := e.drain()
		got := bySysID(t, msgs)
		for _, id := range ids {
			if got[id] == 0 {
				t.Errorf("record %s never enqueued", id)
			}
		}
		if got[ids[1]] != 2 {
			t.Errorf("updated record enqueued %d times, want 2 (both versions)", got[ids[1]])
		}
		if !res.Done || res.Err != nil {
			t.Errorf("result %+v", res)
		}
	})

	t.Run("instance clock 90s behind", func(t *testing.T) {
		e := newEnv(t, envOptions{skew: 90 * time.Second})
		r := e.reconciler(reconcile.Config{})
		// Created right after the webhook, stamped 90s before it.
		first := e.insert(nil)
		e.clk.add(2 * time.Minute)
		res1 := e.run(r, reconcile.Options{})
		msgs := e.drain()
		e.process(msgs)
		second := e.insert(nil)
		e.clk.add(2 * time.Minute)
		res2 := e.run(r, reconcile.Options{})
		msgs2 := e.drain()
		got := bySysID(t, append(msgs, msgs2...))
		if diff := cmp.Diff(map[string]int{first: 1, second: 1}, got); diff != "" {
			t.Errorf("enqueued (-want +got):\n%s", diff)
		}
		if res1.Lag != 0 || res2.Lag != 0 {
			t.Errorf("lag %v, %v; want 0 after complete passes", res1.Lag, res2.Lag)
		}
	})

	t.Run("429 mid-way resumes next run", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		r := e.reconciler(reconcile.Config{PageSize: 4})
		var ids []string
		for range 20 {
			e.clk.add(time.Second)
			ids = append(ids, e.insert(nil))
		}
		e.clk.add(time.Minute)
		lists, throttled := 0, true
		e.wrap = func(w http.ResponseWriter, req *http.Request, next http.Handler) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/incident") {
				lists++
				if lists > 2 && throttled {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusTooManyRequests)
					fmt.Fprint(w, `{"error":{"message":"Too many requests"},"status":"failure"}`)
					return
				}
			}
			next.ServeHTTP(w, req)
		}
		res := e.run(r, reconcile.Options{})
		// Two pages served: 4 records, then a re-query from the 4th record's
		// second that reads it again and 3 more.
		if res.Err == nil || res.Done || res.Enqueued != 7 {
			t.Fatalf("throttled run: enqueued %d done %v err %v; want 7, false, an error", res.Enqueued, res.Done, res.Err)
		}
		if m := e.mark(); m.Position.SysID != ids[6] {
			t.Errorf("watermark at %s, want at the last enqueued record (%s)", m.Position, ids[6])
		}
		if res.Lag <= 0 {
			t.Errorf("lag %v after an incomplete pass, want > 0", res.Lag)
		}
		first := e.drain()
		e.process(first)

		throttled = false
		e.clk.add(2 * time.Minute)
		res = e.run(r, reconcile.Options{})
		if res.Err != nil || !res.Done {
			t.Fatalf("second run: %+v", res)
		}
		got := bySysID(t, append(first, e.drain()...))
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("record %s enqueued %d times, want 1", id, got[id])
			}
		}
	})
}

// A pass out of time stops after the page in hand and the next run
// continues from its watermark.
func TestDeadlineStopsAndResumes(t *testing.T) {
	e := newEnv(t, envOptions{})
	// A one-nanosecond budget: every pass reads exactly one page.
	r := e.reconciler(reconcile.Config{PageSize: 3, GatewayTimeout: time.Nanosecond})
	for range 10 {
		e.clk.add(time.Second)
		e.insert(nil)
	}
	e.clk.add(time.Minute)
	var all []queue.IntakeMessage
	for run := 1; ; run++ {
		res := e.run(r, reconcile.Options{})
		msgs := e.drain()
		e.process(msgs)
		all = append(all, msgs...)
		if res.Done {
			break
		}
		if res.Stopped != reconcile.StoppedDeadline || res.Err != nil {
			t.Fatalf("run %d: %+v", run, res)
		}
		if run > 10 {
			t.Fatalf("no progress after %d runs", run)
		}
	}
	if got := bySysID(t, all); len(got) != 10 {
		t.Errorf("enqueued %d records, want 10", len(got))
	}
}

// The first run of a new webhook starts at its creation time.
func TestFirstRunStartsAtWebhookCreation(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.insert(nil) // before the webhook of the table below
	e.clk.add(10 * time.Minute)
	created := e.clk.now()
	e.addWebhook(registry.TableChangeRequest, created)
	e.clk.add(10 * time.Second)
	rec, err := e.sim.Insert(registry.TableChangeRequest, map[string]string{"short_description": "patch"})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.add(time.Minute)
	r := e.reconciler(reconcile.Config{})
	rep, err := r.Run(t.Context(), reconcile.Options{Table: registry.TableChangeRequest})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Table != registry.TableChangeRequest {
		t.Fatalf("results %+v, want one change_request result", rep.Results)
	}
	if got, want := rep.Results[0].From, created.Add(-reconcile.DefaultOverlap); !got.Equal(want) {
		t.Errorf("From = %v, want %v", got, want)
	}
	got := bySysID(t, e.drain())
	if diff := cmp.Diff(map[string]int{rec["sys_id"]: 1}, got); diff != "" {
		t.Errorf("enqueued (-want +got):\n%s", diff)
	}
	_ = old
}

// A backfill from before the watermark reads older changes and may move the
// watermark; one starting after it must not.
func TestBackfill(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.reconciler(reconcile.Config{})
	a := e.insert(nil)
	e.clk.add(5 * time.Minute)
	b := e.insert(nil)
	e.clk.add(time.Minute)

	// Since 2m: b only, and the watermark stays unset (it would skip a).
	res := e.run(r, reconcile.Options{Since: 2 * time.Minute})
	if diff := cmp.Diff(map[string]int{b: 1}, bySysID(t, e.drain())); diff != "" {
		t.Errorf("short backfill enqueued (-want +got):\n%s", diff)
	}
	if _, err := e.marks.Get(t.Context(), e.gatewayID, registry.TableIncident); err != watermark.ErrNotFound {
		t.Errorf("watermark after a short backfill: %v, want ErrNotFound", err)
	}
	if !res.Done {
		t.Errorf("short backfill %+v", res)
	}
	// Since 1h: a, and the watermark moves to b; b is still queued from
	// the short backfill (its marker holds), so it is not sent again.
	e.run(r, reconcile.Options{Since: time.Hour})
	if diff := cmp.Diff(map[string]int{a: 1}, bySysID(t, e.drain())); diff != "" {
		t.Errorf("long backfill enqueued (-want +got):\n%s", diff)
	}
	if m := e.mark(); m.Position.SysID != b {
		t.Errorf("watermark %s after a long backfill, want %s", m.Position, b)
	}
	// The messages were drained, never processed: once their markers
	// expire, a backfill sends both again.
	e.clk.add(reconcile.DefaultQueuedFor)
	e.run(r, reconcile.Options{Since: 2 * time.Hour})
	if diff := cmp.Diff(map[string]int{a: 1, b: 1}, bySysID(t, e.drain())); diff != "" {
		t.Errorf("backfill after the markers expired enqueued (-want +got):\n%s", diff)
	}
}

// Due change requests are re-enqueued with source deferred; the run logs a
// JSON line and writes the lag metric with and without dimensions.
func TestDueAndReporting(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addWebhook(registry.TableChangeRequest, e.clk.now())
	start := time.Now().UTC().Add(30 * time.Minute).Format("2006-01-02 15:04:05")
	rec, err := e.sim.Insert(registry.TableChangeRequest, map[string]string{
		"short_description": "patch", "type": "normal", "approval": "approved", "state": "-2",
		"start_date": start, "end_date": time.Now().UTC().Add(2 * time.Hour).Format("2006-01-02 15:04:05"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.process([]queue.IntakeMessage{{GatewayID: e.gatewayID, Table: registry.TableChangeRequest,
		SysID: rec["sys_id"], Source: queue.SourceWebhook, ReceivedAt: time.Now()}})
	tk, err := e.tickets.Get(t.Context(), state.Key{GatewayID: e.gatewayID, Table: registry.TableChangeRequest, SysID: rec["sys_id"]})
	if err != nil || tk.Status != state.StatusDeferred {
		t.Fatalf("change ticket %+v, %v; want deferred", tk, err)
	}

	r := e.reconciler(reconcile.Config{})
	e.clk.t = time.Now().UTC().Add(time.Hour) // the window has opened
	rep, err := r.Run(t.Context(), reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Due) != 1 || rep.Due[0].Enqueued != 1 || rep.Due[0].Err != nil {
		t.Errorf("due %+v, want one enqueued", rep.Due)
	}
	var deferred []string
	for _, m := range e.drain() {
		if m.Source == queue.SourceDeferred {
			deferred = append(deferred, m.SysID)
		}
	}
	if diff := cmp.Diff([]string{rec["sys_id"]}, deferred); diff != "" {
		t.Errorf("deferred messages (-want +got):\n%s", diff)
	}

	if !strings.Contains(e.logs.String(), `"msg":"reconciled"`) || !strings.Contains(e.logs.String(), `"msg":"reconcile run"`) {
		t.Errorf("log lacks the per-pass and per-run lines:\n%s", e.logs.String())
	}
	emf := e.emf.String()
	for _, want := range []string{`"Dimensions":[["Gateway","Table"]]`, `"Dimensions":[[]]`, `"ReconcileLagSeconds"`, `"ReconcileServiceNowCalls"`} {
		if !strings.Contains(emf, want) {
			t.Errorf("EMF lines lack %s:\n%s", want, emf)
		}
	}
}

// TestForbiddenTableIsPermanent: a table the integration user may not read
// answers the query with 403 and "Insufficient rights to query records"
// (Table API reference, "Table API security"; KB1479016 "REST API HTTP
// response codes"). The pass stops on one call, marked permanent with the
// missing right in its error and log line, and the watermark stays where
// it was, so nothing is skipped once a role is granted.
func TestForbiddenTableIsPermanent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.insert(nil)
	var calls atomic.Int32
	e.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"message":"Insufficient rights to query records","detail":"No read access to the table for this user"},"status":"failure"}`)
	}
	res := e.run(e.reconciler(reconcile.Config{}), reconcile.Options{})
	if !errors.Is(res.Err, servicenow.ErrForbidden) || !res.Permanent || res.Stopped != reconcile.StoppedError || res.Done {
		t.Fatalf("result %+v, want a permanent ErrForbidden", res)
	}
	if !strings.Contains(res.Err.Error(), "may not read table incident") {
		t.Errorf("error %q, want it to name the table", res.Err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("instance received %d requests, want 1: a 403 is not retried", got)
	}
	if m, err := e.marks.Get(t.Context(), e.gatewayID, registry.TableIncident); !errors.Is(err, watermark.ErrNotFound) {
		t.Errorf("watermark %+v, %v; want none", m, err)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("enqueued %d messages, want none", len(msgs))
	}
	if !strings.Contains(e.logs.String(), `"permanent":true`) {
		t.Errorf("log lacks permanent=true:\n%s", e.logs.String())
	}
}

// TestOpenJobsWatched: a ticket moved out of the gateway's filters while
// its job is open reaches the processor within one run, though the
// watermark pass no longer reads it, and its job is cancelled; open jobs
// without a newer version cost no message.
func TestOpenJobsWatched(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{groups: "Network"})
	moved := e.insert(map[string]string{"short_description": "Link flapping", "state": "2", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"})
	still := e.insert(map[string]string{"short_description": "Fan", "state": "2", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"})
	r := e.reconciler(reconcile.Config{})
	e.clk.add(time.Minute)
	e.run(r, reconcile.Options{})
	e.process(e.drain())
	if jobs := e.jobs(); len(jobs) != 2 {
		t.Fatalf("events %+v, want two job.created", jobs)
	}

	// Reassigned to a group outside the filter; its webhook never fires.
	e.update(moved, map[string]string{"assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"})
	e.clk.add(time.Minute)
	rep, err := r.Run(ctx, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Watched) != 1 || rep.Watched[0].Open != 2 || rep.Watched[0].Enqueued != 1 || rep.Watched[0].Calls != 1 || rep.Watched[0].Err != nil {
		t.Errorf("watched %+v, want 2 open, 1 enqueued, 1 call", rep.Watched)
	}
	msgs := e.drain()
	if len(msgs) != 1 || msgs[0].SysID != moved || msgs[0].Source != queue.SourceReconcile || msgs[0].SysModCount == nil || *msgs[0].SysModCount != e.version(moved) {
		t.Fatalf("intake %+v, want the moved ticket at its version, from reconcile", msgs)
	}
	e.process(msgs)
	jobs := e.jobs()
	if len(jobs) != 1 || jobs[0].Type != queue.EventJobCancelled || jobs[0].SysID != moved {
		t.Errorf("events %+v, want job.cancelled of the moved ticket", jobs)
	}
	if tk, err := e.ticket(moved); err != nil || tk.Job == nil || tk.Job.State != state.JobCancelled {
		t.Errorf("moved ticket %+v, %v: want its job cancelled", tk.Job, err)
	}

	// Next run: one open job left, unchanged: nothing to enqueue.
	e.clk.add(time.Minute)
	rep, err = r.Run(ctx, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Watched) != 1 || rep.Watched[0].Open != 1 || rep.Watched[0].Enqueued != 0 {
		t.Errorf("watched %+v, want 1 open, none enqueued", rep.Watched)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("intake %+v, want nothing", msgs)
	}
	_ = still
}
