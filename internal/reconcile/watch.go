package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// MetricWatchEnqueued counts the open-job tickets a run re-enqueued.
const MetricWatchEnqueued = "ReconcileOpenJobsEnqueued"

// watchChunk is how many sys_ids one sys_idIN query names: 100 ids keep
// the URL near 3.4 KB, well within what instances accept.
const watchChunk = 100

// WatchFields are what the open-job watch reads of each record.
var WatchFields = []string{servicenow.FieldSysID, servicenow.FieldSysModCount}

// Watch is what re-checking one gateway's open jobs did.
type Watch struct {
	GatewayID string
	// Open is how many tickets had an open job; Enqueued went on the
	// intake queue because ServiceNow holds a newer version; Calls are the
	// ServiceNow calls made.
	Open, Enqueued, Calls int
	// Held says why the watch did not run (the gateway's budget held its
	// table passes back); empty when it ran.
	Held string
	Err  error
}

// watch re-checks the gateway's tickets with an open job by sys_id,
// whatever the gateway's filters say: a ticket moved out of scope or
// closed while its job is open is then cancelled within one run, even
// when its Business Rule did not fire (the filters no longer match it,
// so neither does the watermark pass). A ticket the run's watermark pass
// enqueued is not checked again. A ticket is enqueued only when
// ServiceNow's sys_mod_count is above the ticket's decided version and
// not already queued (state.Ticket.Queued). Cost: one Query on
// the sparse open-job index, and one ServiceNow call per table and
// hundred open jobs.
func (r *Reconciler) watch(ctx context.Context, log *slog.Logger, gw registry.Gateway, only string, sent map[string]bool, connect func() (Querier, error)) Watch {
	w := Watch{GatewayID: gw.ID}
	defer r.reportWatch(log, &w)
	tickets, err := r.d.Tickets.OpenJobs(ctx, gw.ID)
	if err != nil {
		w.Err = err
		return w
	}
	byTable := map[string][]state.Ticket{}
	for _, t := range tickets {
		// What the watermark pass of this run enqueued is on its way.
		if (only == "" || t.Table == only) && !sent[t.Table+"#"+t.SysID] {
			byTable[t.Table] = append(byTable[t.Table], t)
		}
	}
	for _, ts := range byTable {
		w.Open += len(ts)
	}
	if w.Open == 0 {
		return w
	}
	q, err := connect()
	if err != nil {
		w.Err = fmt.Errorf("connect: %w", err)
		return w
	}
	now := r.d.Now().UTC()
	var msgs []queue.IntakeMessage
	for _, table := range slices.Sorted(maps.Keys(byTable)) {
		ts := byTable[table]
		for start := 0; start < len(ts); start += watchChunk {
			chunk := ts[start:min(start+watchChunk, len(ts))]
			ids := make([]string, 0, len(chunk))
			for _, t := range chunk {
				ids = append(ids, t.SysID)
			}
			versions := map[string]int{}
			stats, err := q.Query(ctx, table, servicenow.Query{
				Encoded: servicenow.FieldSysID + "IN" + strings.Join(ids, ","), Fields: WatchFields, PageSize: len(ids),
			}, func(recs []servicenow.Record) error {
				for _, rec := range recs {
					if v, err := rec.SysModCount(); err == nil && slices.Contains(ids, rec.SysID()) {
						versions[rec.SysID()] = v
					}
				}
				return nil
			})
			w.Calls += stats.Calls
			if err != nil {
				w.Err = fmt.Errorf("read open-job versions of %s: %w", table, err)
				break
			}
			// A record that did not come back (deleted, or hidden by an
			// ACL) is left alone: the processor would only record the 404
			// again, every run.
			for _, t := range chunk {
				if v, ok := versions[t.SysID]; ok && v > t.Decided() && !t.Queued(v, now) {
					msgs = append(msgs, queue.IntakeMessage{
						GatewayID: gw.ID, WebhookID: t.WebhookID, Table: t.Table, SysID: t.SysID,
						Source: queue.SourceReconcile, ReceivedAt: now, Number: t.Number, SysModCount: &v,
					})
				}
			}
		}
		if w.Err != nil {
			break
		}
	}
	if len(msgs) > 0 {
		if err := r.send(ctx, log, msgs, nil, sent); err != nil {
			w.Err = fmt.Errorf("enqueue open-job tickets: %w", err)
			return w
		}
		w.Enqueued = len(msgs)
	}
	return w
}

func (r *Reconciler) reportWatch(log *slog.Logger, w *Watch) {
	r.reportPass(log, "open jobs", w.GatewayID, w.Err, MetricWatchEnqueued, w.Enqueued,
		slog.Int("open", w.Open), slog.Int("enqueued", w.Enqueued), slog.Int("calls", w.Calls))
}
