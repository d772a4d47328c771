package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/state"
)

// metricStatuses are the per-batch counters, always all written (zeros
// included) so that alarms see a value rather than missing data.
var metricStatuses = []string{
	state.StatusAccepted, StatusStale, StatusUnchanged, state.StatusOutOfScope,
	state.StatusDeduplicated, state.StatusDeferred, state.StatusExpired, StatusFailed,
	state.StatusAwaitingMention,
}

// Handle processes an SQS batch, each message to its own outcome: every
// message concurrently up to its lifecycle decision (ServiceNow calls
// bounded by each gateway's budget) and on to its events, notes and stored
// decision — except the incidents about to get a first job, which wait for
// the batch's other messages of their gateway: their fingerprints are
// claimed one at a time in sys_created_on order, so a duplicate always
// links to the earliest-created incident of its group, and then they
// complete concurrently. Gateways do not wait for each other. Messages for one record
// are processed once (sameRecord: the others are stale without a call).
// Messages to retry are returned as batch item failures, each with the
// visibility its retry needs (package redelivery); a message past the
// retry horizon that failed before is reported failed without work, on its
// way to the dead-letter queue. The error is always nil, so one bad
// message never fails the batch.
func (p *Processor) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	outcomes := make([]Outcome, len(ev.Records))
	expired := make([]bool, len(ev.Records))
	for i, rec := range ev.Records {
		expired[i] = p.retries.Expired(rec)
	}
	lead := sameRecord(ev.Records)
	// Each gateway's messages go through on their own: a slow instance
	// (throttled, black-holed until the invocation's deadline) holds back
	// only its own gateway's fingerprint claims, not another's.
	var gateways sync.WaitGroup
	for _, idx := range byGateway(ev.Records) {
		gateways.Go(func() { p.handleGateway(ctx, ev.Records, idx, lead, expired, outcomes) })
	}
	gateways.Wait()

	var wg sync.WaitGroup
	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	// The failed messages' visibility, set concurrently: a throttled batch
	// fails whole.
	nexts := make([]redelivery.Next, len(outcomes))
	for i, o := range outcomes {
		switch {
		case !o.Retry:
		case expired[i] || o.Poison:
			wg.Go(func() { nexts[i] = p.retries.GiveUp(ctx, ev.Records[i]) })
		default:
			wg.Go(func() { nexts[i] = p.retries.Retry(ctx, ev.Records[i], connect.RetryAfter(o.Err, p.cfg.Now())) })
		}
	}
	wg.Wait()

	var resp events.SQSEventResponse
	counts := map[string]float64{}
	var latencies []float64
	for i, o := range outcomes {
		if o.Retry {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: o.MessageID})
		}
		counts[o.Status]++
		if m := connect.HeldMetric(o.Err); o.Status == StatusWaiting && m != "" {
			counts[m]++
		}
		if errors.Is(o.Err, connect.ErrUntrusted) {
			counts[connect.MetricUntrusted]++
		}
		if o.Fetched {
			latencies = append(latencies, float64(o.FetchLatency.Microseconds())/1000)
		}
		p.logOutcome(ctx, requestID, ev.Records[i], o, nexts[i])
	}
	if p.cfg.Metrics != nil {
		ms := make([]metrics.Metric, 0, len(metricStatuses)+1)
		for _, s := range metricStatuses {
			ms = append(ms, metrics.Metric{Name: s, Unit: metrics.Count, Values: []float64{counts[s]}})
		}
		ms = append(ms, metrics.Metric{Name: "FetchLatency", Unit: metrics.Milliseconds, Values: latencies},
			metrics.Metric{Name: budget.MetricPaused, Unit: metrics.Count, Values: []float64{counts[budget.MetricPaused]}},
			metrics.Metric{Name: budget.MetricDeferred, Unit: metrics.Count, Values: []float64{counts[budget.MetricDeferred]}},
			metrics.Metric{Name: MetricUnknownRecord, Unit: metrics.Count, Values: []float64{counts[StatusUnknownRecord]}},
			metrics.Metric{Name: connect.MetricUntrusted, Unit: metrics.Count, Values: []float64{counts[connect.MetricUntrusted]}})
		if err := p.cfg.Metrics.Put(map[string]string{"function": "processor"}, map[string]string{"request_id": requestID}, ms...); err != nil {
			p.log.ErrorContext(ctx, "write metrics", "error", err.Error())
		}
	}
	return resp, nil
}

// handleGateway processes the messages idx of one gateway (see Handle):
// each up to its decision concurrently, then the fingerprint claims of the
// incidents about to get a first job one at a time in sys_created_on order,
// then their completions concurrently.
func (p *Processor) handleGateway(ctx context.Context, recs []events.SQSMessage, idx []int, lead []int, expired []bool, outcomes []Outcome) {
	decisions := map[int]*decision{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, i := range idx {
		rec := recs[i]
		if expired[i] {
			outcomes[i] = p.expired(rec)
			continue
		}
		// A message led by one on its way to the dead-letter queue is
		// processed itself, so its version is not lost with the other.
		if l := lead[i]; l >= 0 && l != i && !expired[l] {
			outcomes[i] = duplicate(rec, recs[l])
			continue
		}
		wg.Go(func() {
			safely(rec.MessageId, &outcomes[i], func() {
				d, o := p.prepare(ctx, rec)
				outcomes[i] = o
				// Only a fingerprint claim waits for the gateway's batch.
				if d != nil && !d.plan.dedup {
					outcomes[i] = p.complete(ctx, d)
					return
				}
				if d != nil {
					mu.Lock()
					decisions[i] = d
					mu.Unlock()
				}
			})
		})
	}
	wg.Wait()

	dedup := slices.Collect(maps.Keys(decisions))
	slices.SortStableFunc(dedup, func(a, b int) int {
		da, db := decisions[a], decisions[b]
		return cmp.Or(strings.Compare(createdOrder(da), createdOrder(db)), strings.Compare(da.v.Mirror.Number, db.v.Mirror.Number), a-b)
	})
	for _, i := range dedup {
		safely(recs[i].MessageId, &outcomes[i], func() { p.dedup(ctx, decisions[i]) })
		if outcomes[i].Retry {
			continue
		}
		d := decisions[i]
		wg.Go(func() { safely(recs[i].MessageId, &outcomes[i], func() { outcomes[i] = p.complete(ctx, d) }) })
	}
	wg.Wait()
}

// byGateway groups a batch's message indexes by the gateway their body
// names; messages that name none (not intake messages) form a group of
// their own, in which each fails as poison.
func byGateway(recs []events.SQSMessage) [][]int {
	order := []string{}
	groups := map[string][]int{}
	for i, rec := range recs {
		var m struct {
			GatewayID string `json:"gateway_id"`
		}
		_ = json.Unmarshal([]byte(rec.Body), &m)
		if _, ok := groups[m.GatewayID]; !ok {
			order = append(order, m.GatewayID)
		}
		groups[m.GatewayID] = append(groups[m.GatewayID], i)
	}
	out := make([][]int, 0, len(order))
	for _, g := range order {
		out = append(out, groups[g])
	}
	return out
}

// expired is the outcome of a message past the retry horizon that failed
// before: not processed again, on its way to the dead-letter queue.
func (p *Processor) expired(rec events.SQSMessage) Outcome {
	o := Outcome{MessageID: rec.MessageId, Status: StatusFailed, Retry: true,
		Reason: fmt.Sprintf("older than the retry horizon (%s): to the dead-letter queue", p.cfg.Retry.Horizon)}
	var m queue.IntakeMessage
	if json.Unmarshal([]byte(rec.Body), &m) == nil {
		o.Key, o.Source = state.Key{GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID}, m.Source
	}
	return o
}

// retryAt is the time a failed call may be tried again (see
// connect.RetryAfter); now when nobody said.
func retryAt(err error, now time.Time) time.Time { return now.Add(connect.RetryAfter(err, now)) }

// createdOrder sorts records without a creation time last.
func createdOrder(d *decision) string {
	if d.v.CreatedOn == "" {
		return "~"
	}
	return d.v.CreatedOn
}

// safely turns a panic, which would fail the whole batch, into a retry of
// its message.
func safely(messageID string, o *Outcome, f func()) {
	defer func() {
		if r := recover(); r != nil {
			*o = Outcome{MessageID: messageID, Status: StatusFailed, Reason: "internal error, will retry", Retry: true, Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	f()
}

// logOutcome writes the one line per message.
func (p *Processor) logOutcome(ctx context.Context, requestID string, rec events.SQSMessage, o Outcome, next redelivery.Next) {
	attrs := []slog.Attr{
		slog.String("request_id", requestID),
		slog.String("message_id", o.MessageID),
		slog.String("receive_count", rec.Attributes["ApproximateReceiveCount"]),
		slog.String("gateway_id", o.Key.GatewayID),
		slog.String("table", o.Key.Table),
		slog.String("sys_id", o.Key.SysID),
		slog.String("number", o.Number),
		slog.Int("sys_mod_count", o.Version),
		slog.String("source", o.Source),
		slog.String("status", o.Status),
		slog.String("reason", o.Reason),
		slog.Bool("retry", o.Retry),
	}
	attrs = append(attrs, next.LogAttrs()...)
	if o.JobID != "" {
		attrs = append(attrs, slog.String("job_id", o.JobID))
	}
	if len(o.Events) > 0 {
		attrs = append(attrs, slog.String("events", strings.Join(o.Events, ",")))
	}
	if o.JournalRead {
		attrs = append(attrs, slog.Bool("journal_read", true))
	}
	if o.Fetched {
		attrs = append(attrs, slog.Float64("servicenow_ms", float64(o.FetchLatency.Microseconds())/1000))
	}
	level := slog.LevelInfo
	if o.Err != nil {
		attrs = append(attrs, slog.String("error", o.Err.Error()))
		level = slog.LevelWarn
	}
	if o.Poison || next.GiveUp || (o.Status == StatusFailed && !o.Retry) {
		level = slog.LevelError
	}
	p.log.LogAttrs(ctx, level, "message processed", attrs...)
}
