package reconcile

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/state"
)

// MetricStuckEnqueued counts the stuck tickets a run re-enqueued.
const MetricStuckEnqueued = "ReconcileStuckEnqueued"

// Stuck is what re-enqueueing one gateway's stuck tickets did.
type Stuck struct {
	GatewayID string
	// Found is how many tickets the stuck index returned; Enqueued went on
	// the intake queue; Skipped were queued already (by an earlier run
	// whose marker still holds, or by this run).
	Found, Enqueued, Skipped int
	// Held says why the pass did not run (the gateway paused); empty
	// when it ran.
	Held string
	Err  error
}

// stuck re-enqueues the gateway's tickets whose decision is pending past
// state.StuckAfter (state.Store.StuckTickets): retrying (a transient
// failure, its message perhaps dead-lettered), processing past its claim's
// lease (the processor gone, its message perhaps too), or a failure before
// any claim. The message carries no sys_mod_count, so the processor
// fetches the record whatever the ticket says. Each is marked queued, so
// the next runs leave it alone while its message is on the queue; should
// the message vanish, the marker expires and a later run sends another.
// Cost: one Query on the sparse stuck index, nothing in ServiceNow.
func (r *Reconciler) stuck(ctx context.Context, log *slog.Logger, gatewayID, only string, sent map[string]bool) Stuck {
	s := Stuck{GatewayID: gatewayID}
	defer r.reportStuck(log, &s)
	now := r.d.Now()
	tickets, err := r.d.Tickets.StuckTickets(ctx, gatewayID, now, r.cfg.StuckLimit)
	if err != nil {
		s.Err = err
		return s
	}
	var (
		msgs  []queue.IntakeMessage
		marks []state.Enqueued
	)
	for _, t := range tickets {
		if only != "" && t.Table != only {
			continue
		}
		s.Found++
		if sent[t.Table+"#"+t.SysID] || t.Queued(t.SysModCount, now) {
			s.Skipped++
			continue
		}
		marks = append(marks, state.Enqueued{Key: t.Key(), Version: t.SysModCount})
		msgs = append(msgs, queue.IntakeMessage{
			GatewayID: gatewayID, WebhookID: t.WebhookID, Table: t.Table, SysID: t.SysID,
			Source: queue.SourceReconcile, ReceivedAt: now.UTC(), Number: t.Number,
		})
	}
	if len(msgs) == 0 {
		return s
	}
	if err := r.send(ctx, log, msgs, marks, sent); err != nil {
		s.Err = fmt.Errorf("enqueue stuck tickets: %w", err)
		return s
	}
	s.Enqueued = len(msgs)
	return s
}

func (r *Reconciler) reportStuck(log *slog.Logger, s *Stuck) {
	r.reportPass(log, "stuck tickets", s.GatewayID, s.Err, MetricStuckEnqueued, s.Enqueued,
		slog.Int("found", s.Found), slog.Int("enqueued", s.Enqueued), slog.Int("skipped", s.Skipped))
}

// reportPass logs one gateway's pass (an error as an error) and puts the
// count it enqueued as the named metric.
func (r *Reconciler) reportPass(log *slog.Logger, msg, gatewayID string, err error, metric string, enqueued int, attrs ...any) {
	attrs = append([]any{slog.String("gateway_id", gatewayID)}, attrs...)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	log.Log(context.Background(), level, msg, attrs...)
	if r.d.Metrics != nil {
		r.put(map[string]string{"Gateway": gatewayID},
			metrics.Metric{Name: metric, Unit: metrics.Count, Values: []float64{float64(enqueued)}})
	}
}
