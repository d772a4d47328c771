package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
)

// Metric names, namespace metrics.Namespace. The CDK alarm watches
// MetricLag without dimensions (the worst gateway × table of the run).
const (
	MetricScanned  = "ReconcileRecordsScanned"
	MetricEnqueued = "ReconcileRecordsEnqueued"
	MetricSkipped  = "ReconcileRecordsSkipped"
	MetricPages    = "ReconcilePages"
	MetricCalls    = "ReconcileServiceNowCalls"
	MetricErrors   = "ReconcileErrors"
	MetricLag      = "ReconcileLagSeconds"
	MetricDue      = "ReconcileDueEnqueued"
)

const seconds = "Seconds"

// storedLag is the lag of a gateway × table that could not be read at all:
// time since the last synced run or the last record handled.
func (r *Reconciler) storedLag(ctx context.Context, gatewayID string, t tableSpec) time.Duration {
	latest := t.createdAt
	if m, err := r.d.Watermarks.Get(ctx, gatewayID, t.name); err == nil {
		if m.SyncedAt.After(latest) {
			latest = m.SyncedAt
		}
		if m.Position.UpdatedOn.After(latest) {
			latest = m.Position.UpdatedOn
		}
	}
	return max(r.d.Now().Sub(latest), 0)
}

// report writes one result's log line and metrics. This is where a pass's
// error is logged; Run does not return it.
func (r *Reconciler) report(log *slog.Logger, res Result) {
	attrs := []any{
		slog.String("gateway_id", res.GatewayID),
		slog.String("table", res.Table),
		slog.Time("from", res.From),
		slog.Int("scanned", res.Scanned),
		slog.Int("enqueued", res.Enqueued),
		slog.Int("skipped", res.Skipped),
		slog.Int("pages", res.Pages),
		slog.Int("calls", res.Calls),
		slog.Bool("done", res.Done),
		slog.Float64("lag_seconds", res.Lag.Seconds()),
		slog.Int64("duration_ms", res.Duration.Milliseconds()),
	}
	if !res.Position.IsZero() {
		attrs = append(attrs, slog.String("watermark", res.Position.String()))
	}
	if res.Stopped != "" {
		attrs = append(attrs, slog.String("stopped", res.Stopped))
	}
	level := slog.LevelInfo
	if res.Err != nil {
		level = slog.LevelError
		if res.Stopped == StoppedBudget {
			level = slog.LevelWarn
		}
		attrs = append(attrs, slog.String("error", res.Err.Error()))
		if res.Permanent {
			attrs = append(attrs, slog.Bool("permanent", true))
		}
	}
	log.Log(context.Background(), level, "reconciled", attrs...)

	if r.d.Metrics == nil {
		return
	}
	errs := 0.0
	if res.Err != nil && res.Stopped != StoppedBudget {
		errs = 1
	}
	if res.Table == "" && res.Err != nil {
		// The gateway's webhooks could not be read, so neither its tables
		// nor how far behind they are: a lag of 0 would say all is well.
		// The error counts (and the function's own errors alarm fires when
		// the registry cannot be read at all).
		r.put(map[string]string{"Gateway": res.GatewayID}, metrics.Metric{Name: MetricErrors, Unit: metrics.Count, Values: []float64{errs}})
		return
	}
	dims := map[string]string{"Gateway": res.GatewayID, "Table": res.Table}
	r.put(dims,
		metrics.Metric{Name: MetricScanned, Unit: metrics.Count, Values: []float64{float64(res.Scanned)}},
		metrics.Metric{Name: MetricEnqueued, Unit: metrics.Count, Values: []float64{float64(res.Enqueued)}},
		metrics.Metric{Name: MetricSkipped, Unit: metrics.Count, Values: []float64{float64(res.Skipped)}},
		metrics.Metric{Name: MetricPages, Unit: metrics.Count, Values: []float64{float64(res.Pages)}},
		metrics.Metric{Name: MetricCalls, Unit: metrics.Count, Values: []float64{float64(res.Calls)}},
		metrics.Metric{Name: MetricErrors, Unit: metrics.Count, Values: []float64{errs}},
		metrics.Metric{Name: MetricLag, Unit: seconds, Values: []float64{res.Lag.Seconds()}},
	)
	// The same lag without dimensions: one alarm covers every gateway.
	r.put(nil, metrics.Metric{Name: MetricLag, Unit: seconds, Values: []float64{res.Lag.Seconds()}})
}

func (r *Reconciler) reportDue(log *slog.Logger, d Due) {
	attrs := []any{slog.String("gateway_id", d.GatewayID), slog.Int("enqueued", d.Enqueued), slog.Int("skipped", d.Skipped)}
	level := slog.LevelInfo
	if d.Err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", d.Err.Error()))
	}
	log.Log(context.Background(), level, "due change requests", attrs...)
	if r.d.Metrics != nil {
		r.put(map[string]string{"Gateway": d.GatewayID},
			metrics.Metric{Name: MetricDue, Unit: metrics.Count, Values: []float64{float64(d.Enqueued)}})
	}
}

func (r *Reconciler) logRun(log *slog.Logger, rep Report, d time.Duration) {
	t := rep.Totals()
	stuck, due := 0, 0
	for _, s := range rep.Stuck {
		stuck += s.Enqueued
	}
	for _, x := range rep.Due {
		due += x.Enqueued
	}
	log.Info("reconcile run",
		slog.Int("stuck_enqueued", stuck),
		slog.Int("due_enqueued", due),
		slog.Int("gateways", rep.Gateways),
		slog.Int("tables", len(rep.Results)),
		slog.Int("scanned", t.Scanned),
		slog.Int("enqueued", t.Enqueued),
		slog.Int("skipped", t.Skipped),
		slog.Int("pages", t.Pages),
		slog.Int("calls", t.Calls),
		slog.Int("failed", rep.Failed()),
		slog.Float64("max_lag_seconds", t.Lag.Seconds()),
		slog.Int64("duration_ms", d.Milliseconds()),
	)
	if r.d.Metrics == nil {
		return
	}
	// The gateways whose passes the budget held back, by why: every run
	// writes both, zeros included, for the GatewayPaused alarm.
	paused, deferred := 0.0, 0.0
	for _, res := range rep.Results {
		switch {
		case res.Stopped != StoppedBudget:
		case connect.Paused(res.Err):
			paused++
		default:
			deferred++
		}
	}
	// The gateways refused as untrusted (connect.ErrUntrusted), each once.
	untrusted := map[string]bool{}
	for _, res := range rep.Results {
		if errors.Is(res.Err, connect.ErrUntrusted) {
			untrusted[res.GatewayID] = true
		}
	}
	for _, w := range rep.Watched {
		if errors.Is(w.Err, connect.ErrUntrusted) {
			untrusted[w.GatewayID] = true
		}
	}
	r.put(map[string]string{"function": "reconciler"},
		metrics.Metric{Name: budget.MetricPaused, Unit: metrics.Count, Values: []float64{paused}},
		metrics.Metric{Name: budget.MetricDeferred, Unit: metrics.Count, Values: []float64{deferred}},
		metrics.Metric{Name: connect.MetricUntrusted, Unit: metrics.Count, Values: []float64{float64(len(untrusted))}})
}

func (r *Reconciler) put(dims map[string]string, ms ...metrics.Metric) {
	if err := r.d.Metrics.Put(dims, nil, ms...); err != nil {
		// Metrics are best effort; a lost line must not fail the run.
		r.d.Logger.Warn("write metrics", slog.String("error", err.Error()))
	}
}
