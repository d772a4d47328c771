// Package reconcile finds the ServiceNow changes whose webhook never
// arrived and puts them on the intake queue, the same message ingest would
// have sent. ServiceNow does not retry a failed webhook, so this is what
// makes "never lose a change" true.
//
// For every active gateway and every table it has an active webhook for,
// a run asks the instance for the records updated since the watermark
// (minus an overlap), in (sys_updated_on, sys_id) order, within the
// gateway's scope, reading only sys_id, sys_updated_on and sys_mod_count.
// Records whose sys_mod_count is at or below their ticket's decided
// version (a decision on it completed), or that an earlier run enqueued
// and still count as queued, are skipped; the rest are enqueued in
// batches of ten. A claim that failed is not a decision, so a change whose
// processing failed is enqueued again. After each page is enqueued the
// watermark moves to that page's last record, with a conditional write that
// never moves it backwards. The cost of a run is therefore one ServiceNow
// call per page of changed records and one BatchGetItem per 100 of them:
// it grows with the number of changes, not with the size of the table.
//
// Why the overlap: ServiceNow stamps sys_updated_on in whole seconds and a
// record's transaction may commit after a later-stamped one was read, and
// instance nodes' clocks may differ. Reading again from watermark − overlap
// catches those; what was already processed is skipped by the version
// check, so the overlap costs reads, not duplicates.
//
// Why the query has no active=true: the gateway's scope (ScopeQuery, the
// Business Rule's filter) requires active records, but a record closed
// after it was processed, or closed while its webhook was lost, would then
// never be read again and the closure would be missed. The reconciler keeps
// the assignment group and environment conditions (so it does not read the
// whole table) and leaves the active check to the processor, which records
// an inactive record as out_of_scope.
//
// Open jobs: the watermark pass reads only records within the filters, so
// a ticket moved out of them while its job is open (reassigned to another
// group, say) would never be read again and its job never cancelled when
// the Business Rule, whose condition no longer matches, stays silent. So
// each run also reads the gateway's tickets with an open job from the
// state table's sparse open-job index and asks the instance for their
// sys_mod_count by sys_id, whatever the filters say (one call per table
// and hundred open jobs); those with a version above the decided one are
// enqueued, and the processor cancels the job if the ticket left the
// scope.
//
// Stuck tickets: each run also reads the gateway's tickets whose decision
// has been pending for longer than state.StuckAfter (the sparse stuck
// index: released after a transient failure, claimed by a processor that
// vanished, or failed before any claim) and enqueues them, source
// reconcile, without a sys_mod_count so the processor fetches whatever is
// current. A message that ran out of receives is therefore healed within
// a few runs, with no redrive. Cost: one Query, no ServiceNow call.
//
// Due change requests are enqueued (source deferred) once per due time;
// a change that fails permanently (deleted before its window) leaves the
// due index.
//
// Once per run, and not while queued: the open-job watch and the stuck and
// due passes skip what the run has sent already (the watermark pass sends
// a record twice only when it changed while the run read it), and every
// pass marks what it sends (state.Store.MarkQueued, valid
// Config.QueuedFor) before sending it. Until
// the marker expires, later runs count the record as handled at that
// version; after, they send it again, so a message that vanished costs a
// delay, never the change. The marker needs no clearing: a decision at or
// above its version makes it moot.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/watermark"
)

// Querier is what the reconciler needs of a ServiceNow client.
type Querier interface {
	Query(ctx context.Context, table string, q servicenow.Query, page func([]servicenow.Record) error) (servicenow.QueryStats, error)
}

// Connector gives the ServiceNow client of a gateway.
type Connector interface {
	Connect(ctx context.Context, gw registry.Gateway) (Querier, error)
}

// Registry lists gateways and their webhooks.
type Registry interface {
	Gateways(ctx context.Context) ([]registry.Gateway, error)
	Webhooks(ctx context.Context, gatewayID string) ([]registry.Webhook, error)
}

// Tickets is what the reconciler reads of the ticket store, and the one
// thing it writes there: the queued marker.
type Tickets interface {
	Versions(ctx context.Context, gatewayID, table string, sysIDs []string) (map[string]state.Known, error)
	DueTickets(ctx context.Context, gatewayID string, now time.Time) ([]state.Ticket, error)
	OpenJobs(ctx context.Context, gatewayID string) ([]state.Ticket, error)
	StuckTickets(ctx context.Context, gatewayID string, now time.Time, limit int) ([]state.Ticket, error)
	MarkQueued(ctx context.Context, marks []state.Enqueued, until time.Time) error
}

// Watermarks stores each gateway × table's progress.
type Watermarks interface {
	Get(ctx context.Context, gatewayID, table string) (watermark.Mark, error)
	Advance(ctx context.Context, gatewayID, table string, p watermark.Position) error
	MarkSynced(ctx context.Context, gatewayID, table string, at time.Time) error
}

// Sender puts intake messages on the intake queue.
type Sender interface {
	SendBatch(ctx context.Context, msgs []queue.IntakeMessage) error
}

// Metrics writes metric lines (CloudWatch EMF in a function).
type Metrics interface {
	Put(dimensions, properties map[string]string, ms ...metrics.Metric) error
}

var (
	_ Registry   = (*registry.Store)(nil)
	_ Tickets    = (*state.Store)(nil)
	_ Watermarks = (*watermark.Store)(nil)
	_ Sender     = (*queue.Sender)(nil)
	_ Querier    = (*servicenow.Client)(nil)
	_ Metrics    = (*metrics.Emitter)(nil)
)

// Defaults of Config.
const (
	DefaultOverlap        = 2 * time.Minute
	DefaultPageSize       = 1000
	DefaultDeadlineMargin = 10 * time.Second
	DefaultGatewayTimeout = 60 * time.Second
	DefaultConcurrency    = 4
	DefaultQueuedFor      = 10 * time.Minute
	DefaultStuckLimit     = 1000
)

// Fields are the only fields the reconciler reads: enough to decide.
var Fields = []string{servicenow.FieldSysID, servicenow.FieldSysUpdatedOn, servicenow.FieldSysModCount}

// Config tunes the reconciler; zero values take the defaults.
type Config struct {
	// Overlap is how far before the watermark each run starts reading.
	Overlap time.Duration
	// PageSize is the sysparm_limit of each query.
	PageSize int
	// DeadlineMargin: paging stops this long before the context's deadline
	// (the function's timeout), leaving time to write results.
	DeadlineMargin time.Duration
	// GatewayTimeout bounds the time one gateway may take in a run, so a
	// slow instance does not hold a worker that others are waiting for.
	// Paging stops at it; the next run continues from the watermark.
	GatewayTimeout time.Duration
	// Concurrency is how many gateways are reconciled at once.
	Concurrency int
	// QueuedFor is how long a record the reconciler enqueued counts as
	// queued (state.Store.MarkQueued): no run enqueues it again before,
	// unless ServiceNow holds a newer version. Long enough for the
	// processor to drain a normal backlog, short enough that a message
	// that vanished is replaced soon.
	QueuedFor time.Duration
	// StuckLimit caps the stuck tickets one run re-enqueues per gateway.
	StuckLimit int
}

func (c Config) withDefaults() Config {
	if c.Overlap <= 0 {
		c.Overlap = DefaultOverlap
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.DeadlineMargin <= 0 {
		c.DeadlineMargin = DefaultDeadlineMargin
	}
	if c.GatewayTimeout <= 0 {
		c.GatewayTimeout = DefaultGatewayTimeout
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.QueuedFor <= 0 {
		c.QueuedFor = DefaultQueuedFor
	}
	if c.StuckLimit <= 0 {
		c.StuckLimit = DefaultStuckLimit
	}
	return c
}

// Deps are the reconciler's collaborators. Metrics may be nil.
type Deps struct {
	Registry   Registry
	Tickets    Tickets
	Watermarks Watermarks
	Intake     Sender
	Connector  Connector
	Metrics    Metrics
	Logger     *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Reconciler runs reconciliation passes. It is safe for concurrent use,
// though a deployment runs one pass at a time.
type Reconciler struct {
	d   Deps
	cfg Config
}

// New returns a Reconciler.
func New(d Deps, cfg Config) *Reconciler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Reconciler{d: d, cfg: cfg.withDefaults()}
}

// Options narrow a run; the zero value is the scheduled run.
type Options struct {
	// GatewayID limits the run to one gateway.
	GatewayID string
	// Table limits the run to one table (a webhook's event type).
	Table string
	// Since, when set, reads from now − Since instead of from the
	// watermark: a backfill. It moves the watermark only when it started
	// at or before where the scheduled run would have, so a short backfill
	// cannot make the scheduled run skip a gap.
	Since time.Duration
	// RequestID, when set, is on every log line (the Lambda request id).
	RequestID string
	// Progress, when set, is called after every page and when a gateway ×
	// table finishes, with the result so far. Calls may come from several
	// goroutines at once.
	Progress func(Result)
}

// Stop reasons of a Result.
const (
	// StoppedDeadline: paging stopped before the function's deadline or
	// the gateway's time budget; the next run continues from the watermark.
	StoppedDeadline = "deadline"
	// StoppedError: a call failed; Err says which.
	StoppedError = "error"
	// StoppedBudget: the gateway's ServiceNow budget held the pass back
	// (the gateway paused, or its request rate spent for now); Err says
	// why. Not a failure: the next run continues from the watermark.
	StoppedBudget = "budget"
)

// Result is what one gateway × table pass did.
type Result struct {
	GatewayID string
	Table     string
	// From is the sys_updated_on the pass started reading at.
	From time.Time
	// Position is the last record handled (zero if none).
	Position watermark.Position
	// Scanned records were read (a record read again at a re-query's
	// boundary counts once); Enqueued went on the intake queue; Skipped
	// were already processed at that version.
	Scanned, Enqueued, Skipped int
	// Pages and Calls are ServiceNow pages read and HTTP calls made.
	Pages, Calls int
	// Done: the pass read every change there was.
	Done bool
	// Stopped says why a pass that is not Done ended early.
	Stopped string
	// Lag is how far behind the pass left this gateway × table: zero when
	// Done, else now − the latest of the last synced run and the last
	// record handled.
	Lag      time.Duration
	Duration time.Duration
	Err      error
	// Permanent: Err is one that no retry cures, a 403 (the integration
	// user may not read the table): the gateway is misconfigured, and every
	// run meets the same refusal until a role is granted.
	Permanent bool
}

// Due is what re-enqueueing one gateway's due change requests did.
type Due struct {
	GatewayID string
	Enqueued  int
	// Skipped were sent for the same due time already, and are still
	// queued.
	Skipped int
	Err     error
}

// Report is a whole run.
type Report struct {
	Results []Result
	Due     []Due
	// Watched is the open-job watch of each gateway.
	Watched []Watch
	// Stuck is the stuck-ticket pass of each gateway.
	Stuck []Stuck
	// Gateways is how many gateways the run looked at.
	Gateways int
}

// Failed counts the passes that ended on an error; a pass the budget held
// back (StoppedBudget) is not one.
func (r Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.Err != nil && res.Stopped != StoppedBudget {
			n++
		}
	}
	for _, d := range r.Due {
		if d.Err != nil {
			n++
		}
	}
	for _, w := range r.Watched {
		if w.Err != nil {
			n++
		}
	}
	for _, s := range r.Stuck {
		if s.Err != nil {
			n++
		}
	}
	return n
}

// Totals sums the results.
func (r Report) Totals() Result {
	var t Result
	for _, res := range r.Results {
		t.Scanned += res.Scanned
		t.Enqueued += res.Enqueued
		t.Skipped += res.Skipped
		t.Pages += res.Pages
		t.Calls += res.Calls
		t.Lag = max(t.Lag, res.Lag)
	}
	return t
}

// ErrUnknownGateway is returned when Options.GatewayID names no gateway.
var ErrUnknownGateway = errors.New("unknown gateway")

// Run reconciles every active gateway (or the one Options names). A failing
// or slow gateway does not stop the others: its error is in its Result and
// in the log line, and Run still returns nil. Run fails only when it cannot
// list the gateways.
func (r *Reconciler) Run(ctx context.Context, o Options) (Report, error) {
	start := r.d.Now()
	log := r.d.Logger
	if o.RequestID != "" {
		log = log.With(slog.String("request_id", o.RequestID))
	}
	gws, err := r.d.Registry.Gateways(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("reconcile: %w", err)
	}
	gws = slices.DeleteFunc(gws, func(g registry.Gateway) bool {
		return !g.Active || o.GatewayID != "" && g.ID != o.GatewayID
	})
	if o.GatewayID != "" && len(gws) == 0 {
		return Report{}, fmt.Errorf("reconcile gateway %s: %w (or inactive)", o.GatewayID, ErrUnknownGateway)
	}
	// Run every gateway in a fresh order each time, so that when a run ends
	// at its deadline it is not always the same gateways that waited.
	rotate(gws, int(start.Unix()/60))

	var (
		mu  sync.Mutex
		rep = Report{Gateways: len(gws)}
		sem = make(chan struct{}, r.cfg.Concurrency)
		wg  sync.WaitGroup
	)
	for _, gw := range gws {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results, due, watched, stuck := r.gateway(ctx, log, gw, o)
			mu.Lock()
			rep.Results = append(rep.Results, results...)
			if due != nil {
				rep.Due = append(rep.Due, *due)
			}
			rep.Watched = append(rep.Watched, watched)
			rep.Stuck = append(rep.Stuck, stuck)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(rep.Results, func(a, b Result) int {
		return strings.Compare(a.GatewayID+"#"+a.Table, b.GatewayID+"#"+b.Table)
	})
	slices.SortFunc(rep.Due, func(a, b Due) int { return strings.Compare(a.GatewayID, b.GatewayID) })
	slices.SortFunc(rep.Watched, func(a, b Watch) int { return strings.Compare(a.GatewayID, b.GatewayID) })
	slices.SortFunc(rep.Stuck, func(a, b Stuck) int { return strings.Compare(a.GatewayID, b.GatewayID) })
	r.logRun(log, rep, r.d.Now().Sub(start))
	return rep, nil
}

// pausedIn returns the error of a pass held back because the gateway is
// paused, nil if none was.
func pausedIn(results []Result) error {
	for _, res := range results {
		if res.Stopped == StoppedBudget && connect.Paused(res.Err) {
			return res.Err
		}
	}
	return nil
}

func rotate[T any](s []T, n int) {
	if len(s) > 1 {
		n %= len(s)
		slices.Reverse(s[:n])
		slices.Reverse(s[n:])
		slices.Reverse(s)
	}
}

// gateway reconciles one gateway's tables, re-checks its open jobs,
// re-enqueues its stuck tickets, then its due change requests. Each
// record goes on the intake queue at most once per run.
func (r *Reconciler) gateway(ctx context.Context, log *slog.Logger, gw registry.Gateway, o Options) ([]Result, *Due, Watch, Stuck) {
	// Budgets are real elapsed time, whatever clock Deps.Now reads.
	stopAt := time.Now().Add(r.cfg.GatewayTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-r.cfg.DeadlineMargin).Before(stopAt) {
		stopAt = dl.Add(-r.cfg.DeadlineMargin)
	}
	// Calls in flight at stopAt may finish within half the margin; after
	// that they are cut, so the function always has time to report.
	ctx, cancel := context.WithDeadline(ctx, stopAt.Add(r.cfg.DeadlineMargin/2))
	defer cancel()

	// One client per gateway and run, made when first needed.
	var (
		q       Querier
		qErr    error
		made    bool
		connect = func() (Querier, error) {
			if !made {
				q, qErr = r.d.Connector.Connect(ctx, gw)
				made = true
			}
			return q, qErr
		}
	)
	var results []Result
	sent := map[string]bool{}
	tables, err := r.tables(ctx, gw.ID, o.Table)
	if err != nil {
		res := Result{GatewayID: gw.ID, Table: o.Table, Stopped: StoppedError, Err: err}
		r.report(log, res)
		results = append(results, res)
	}
	for _, t := range tables {
		var res Result
		if q, err := connect(); err != nil {
			res = Result{GatewayID: gw.ID, Table: t.name, Stopped: StoppedError, Err: fmt.Errorf("connect: %w", err)}
			res.Lag = r.storedLag(ctx, gw.ID, t)
		} else {
			res = r.table(ctx, q, gw, t, o, stopAt, sent)
		}
		r.report(log, res)
		if o.Progress != nil {
			o.Progress(res)
		}
		results = append(results, res)
	}
	watched := r.watch(ctx, log, gw, o.Table, sent, connect)
	var stuck Stuck
	if paused := pausedIn(results); paused != nil {
		// Re-enqueued now, the stuck tickets would only wait for the
		// pause too, beside the messages already waiting for it.
		stuck = Stuck{GatewayID: gw.ID, Held: "gateway paused"}
		log.Info("stuck tickets not re-enqueued: gateway paused", slog.String("gateway_id", gw.ID), slog.String("reason", paused.Error()))
	} else {
		stuck = r.stuck(ctx, log, gw.ID, o.Table, sent)
	}
	if o.Table != "" && o.Table != registry.TableChangeRequest {
		return results, nil, watched, stuck
	}
	due := r.due(ctx, log, gw.ID, sent)
	return results, &due, watched, stuck
}

// tableSpec is a table a gateway has an active webhook for, and when the
// first of them was created: where the first run starts.
type tableSpec struct {
	name      string
	createdAt time.Time
	webhookID string
}

func (r *Reconciler) tables(ctx context.Context, gatewayID, only string) ([]tableSpec, error) {
	hooks, err := r.d.Registry.Webhooks(ctx, gatewayID)
	if err != nil {
		return nil, err
	}
	byName := map[string]tableSpec{}
	for _, w := range hooks {
		if !w.Active || w.GatewayID != gatewayID || only != "" && w.EventType != only {
			continue
		}
		t, ok := byName[w.EventType]
		if !ok || w.CreatedAt.Before(t.createdAt) {
			byName[w.EventType] = tableSpec{name: w.EventType, createdAt: w.CreatedAt, webhookID: w.ID}
		}
	}
	out := make([]tableSpec, 0, len(byName))
	for _, t := range byName {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b tableSpec) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// due re-enqueues the gateway's deferred change requests whose start time
// has come, once per due time: a ticket already sent for its due time
// (due_sent) whose queued marker still holds is skipped. The ticket stays
// deferred until the processor claims the due version, so a run that
// fails here, or a message that vanished (its marker expires), is
// repeated by a later one; a change that fails permanently (deleted
// before it was due) leaves the due index.
func (r *Reconciler) due(ctx context.Context, log *slog.Logger, gatewayID string, sent map[string]bool) Due {
	d := Due{GatewayID: gatewayID}
	now := r.d.Now()
	tickets, err := r.d.Tickets.DueTickets(ctx, gatewayID, now)
	if err != nil {
		d.Err = err
		r.reportDue(log, d)
		return d
	}
	msgs := make([]queue.IntakeMessage, 0, len(tickets))
	marks := make([]state.Enqueued, 0, len(tickets))
	for _, t := range tickets {
		if t.DueSent == t.DueAt && t.QueuedUntil > now.UnixMilli() || sent[t.Table+"#"+t.SysID] {
			d.Skipped++
			continue
		}
		marks = append(marks, state.Enqueued{Key: t.Key(), Version: t.SysModCount, DueAt: t.DueAt})
		msgs = append(msgs, queue.IntakeMessage{
			GatewayID:  gatewayID,
			WebhookID:  t.WebhookID,
			Table:      t.Table,
			SysID:      t.SysID,
			Source:     queue.SourceDeferred,
			ReceivedAt: now.UTC(),
			Number:     t.Number,
		})
	}
	if len(msgs) > 0 {
		if err := r.send(ctx, log, msgs, marks, sent); err != nil {
			d.Err = fmt.Errorf("enqueue due change requests: %w", err)
		} else {
			d.Enqueued = len(msgs)
		}
	}
	r.reportDue(log, d)
	return d
}

// send marks the messages' records queued (marks, or one per message at
// its sys_mod_count), then puts the messages on the intake queue and notes
// them in sent. A marker that cannot be written costs at most a duplicate
// message later, so the messages go anyway; messages that could not be
// sent keep their markers until they expire, which delays them by
// Config.QueuedFor at most, and the run reports the error.
func (r *Reconciler) send(ctx context.Context, log *slog.Logger, msgs []queue.IntakeMessage, marks []state.Enqueued, sent map[string]bool) error {
	if marks == nil {
		marks = make([]state.Enqueued, 0, len(msgs))
		for _, m := range msgs {
			v := -1
			if m.SysModCount != nil {
				v = *m.SysModCount
			}
			marks = append(marks, state.Enqueued{Key: state.Key{GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID}, Version: v})
		}
	}
	if err := r.d.Tickets.MarkQueued(ctx, marks, r.d.Now().Add(r.cfg.QueuedFor)); err != nil {
		log.Warn("mark enqueued records", slog.String("error", err.Error()))
	}
	if err := r.d.Intake.SendBatch(ctx, msgs); err != nil {
		return err
	}
	for _, m := range msgs {
		sent[m.Table+"#"+m.SysID] = true
	}
	return nil
}
