package ingest

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/registry"
)

// Metric names (namespace snowgate, unit Count). Each is kept for the
// function and, when the request reached a webhook's registration, for
// that webhook too; a request for an unknown path has no webhook.
const (
	// MetricUnauthorized counts 401s: unknown path, wrong secret or
	// signature, stale timestamp, another instance...
	MetricUnauthorized = "Unauthorized"
	// MetricRejected counts the other 4xx: method, media type, size, body.
	MetricRejected = "Rejected"
	// MetricDuplicate counts signed requests seen before (answered 200).
	MetricDuplicate = "Duplicate"
	// MetricNoInstanceName counts requests from rules printed before rules
	// sent their instance's name: paste those rules again.
	MetricNoInstanceName = "NoInstanceName"
	// MetricReplayUnchecked and MetricInstanceUnchecked count requests
	// accepted while the replay store or the gateway could not be read.
	MetricReplayUnchecked   = "ReplayUnchecked"
	MetricInstanceUnchecked = "InstanceUnchecked"
)

// Dimensions of the metrics.
const (
	DimFunction  = "function"
	DimWebhookID = "webhook_id"
	// FunctionName is the function dimension's value.
	FunctionName = "ingest"
)

var (
	setsFunction = [][]string{{DimFunction}}
	setsWebhook  = [][]string{{DimFunction}, {DimFunction, DimWebhookID}}
)

var caveatMetrics = map[string]string{
	caveatReplayUnchecked:   MetricReplayUnchecked,
	caveatInstanceUnchecked: MetricInstanceUnchecked,
	caveatNoInstanceName:    MetricNoInstanceName,
}

// count writes one EMF line for a request that was refused, a repeat, or
// accepted with a caveat; nothing for a plain acceptance (the processor
// counts those) or a 503 (logged as an error).
func (h *Handler) count(ctx context.Context, res result) {
	if h.metrics == nil {
		return
	}
	var ms []metrics.Metric
	add := func(name string) {
		ms = append(ms, metrics.Metric{Name: name, Unit: metrics.Count, Values: []float64{1}})
	}
	switch res.outcome {
	case outcomeUnauthorized:
		add(MetricUnauthorized)
	case outcomeBadRequest, outcomeTooLarge, outcomeBadMethod, outcomeBadType:
		add(MetricRejected)
	case outcomeDuplicate:
		add(MetricDuplicate)
	}
	for _, c := range res.caveats {
		add(caveatMetrics[c])
	}
	if len(ms) == 0 {
		return
	}
	dims, sets := map[string]string{DimFunction: FunctionName}, setsFunction
	if res.route != nil && res.route.webhookID != "" {
		dims[DimWebhookID], sets = res.route.webhookID, setsWebhook
	}
	if err := h.metrics.PutSets(dims, sets, nil, ms...); err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "ingest metrics", slog.String("error", err.Error()))
	}
}

// logResult writes the request's one log line. The webhook path is never
// in it: the path is what makes a webhook's URL a secret, and log readers
// are not all meant to post changes. A request that reached a
// registration is logged by its webhook and gateway ids instead; an error
// is logged with every occurrence of the path taken out, since an error
// from a store can quote the key it was reading.
func (h *Handler) logResult(ctx context.Context, req Request, resp Response, res result, start time.Time) {
	level := slog.LevelInfo
	switch {
	case res.outcome == outcomeUnavailable, res.outcome == outcomeAccepted && res.err != nil:
		level = slog.LevelError
	case res.outcome == outcomeUnauthorized, len(res.caveats) > 0:
		level = slog.LevelWarn
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("request_id", req.RequestID),
		slog.String("outcome", res.outcome),
		slog.Int("status", resp.Status),
		slog.Float64("latency_ms", float64(h.now().Sub(start).Microseconds())/1000),
	)
	if req.EdgeRequestID != "" {
		attrs = append(attrs, slog.String("api_request_id", req.EdgeRequestID))
	}
	reason := res.reason
	if len(res.caveats) > 0 {
		reason = strings.Join(res.caveats, ",")
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	if res.route != nil {
		attrs = append(attrs, slog.String("webhook_id", res.route.webhookID), slog.String("gateway_id", res.route.gatewayID))
	}
	if res.sysID != "" {
		attrs = append(attrs, slog.String("table", res.route.table), slog.String("sys_id", res.sysID))
		if res.route.signing == registry.SigningHMAC {
			// Verified by then; it ties a duplicate to the call it repeats.
			attrs = append(attrs, slog.String("message_id", req.Signed.ID))
		}
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("error", redact(res.err.Error(), req.Path)))
	}
	h.log.LogAttrs(ctx, level, "ingest", attrs...)
}

// redact takes every occurrence of the request's path out of s. Only a
// well-formed path reaches a store, so only one can be quoted.
func redact(s, path string) string {
	if !validPath(path) {
		return s
	}
	return strings.ReplaceAll(s, path, "<path>")
}
