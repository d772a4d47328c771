// Package writer is the results queue's consumer: it takes the automation
// engine's job results (queue.JobResult) and writes them back to the
// ServiceNow ticket of their job through the gateway's outbound mapping
// (work notes, public comments, resolving an incident, moving a change
// request to Review, reassigning to the escalation group), then records
// the result and the job's new state on the ticket (package state).
//
// # Guarantees
//
//   - Each result is applied once. Its result_id is recorded on the ticket
//     (with the job's new state and the result's record in job.results) in
//     one conditional write; a redelivered or re-sent result whose id is
//     recorded changes nothing.
//   - No journal entry is written twice. A result is applied as steps (a
//     public comment, a work note, a field update), each recorded done in
//     the state table as it completes (state.Store.ResultStepDone). A
//     delivery that finds a result already started resumes after its last
//     recorded step, and before it writes a comment or work note that was
//     started but not recorded, it looks for that text in the record's
//     journal (sys_journal_field) from the result's start on: found, the
//     step is done. Within one delivery, a write whose outcome is unknown
//     is settled by servicenow.Client.WriteJournal the same way; when
//     neither can tell, the message is retried and the next delivery
//     looks. Field updates set values and may be repeated safely.
//   - Nothing is half-applied from a bad message: a result that is not
//     JSON or fails queue.JobResult.Validate is poison. It is logged with
//     the reason and reported failed on every receive, so the queue's
//     redrive policy moves it, untouched, to the dead-letter queue (which
//     has an alarm).
//   - Our own writes come back as stale. After each write the writer stores
//     on the ticket the version it produced (state.Store.RecordOwnWrite:
//     sys_mod_count, decided_version and, for a field update, the mirror),
//     so the processor does not take the writer's resolve for a person's
//     and cancel the job. It does so only when no version it did not see
//     lies between, so a person's change is never hidden.
//   - Our texts never mention the gateway: the gateway's mention token in
//     an engine's text is broken with a WORD JOINER (U+2060) after its
//     first character (Neutralize), so it reads the same and the processor
//     never takes our own note for a follow-up, whatever user name the
//     integration user has.
//
// # What is not written
//
// A result whose job id no processor created is logged and dropped. A
// result for a cancelled job, an ended job, or a job that is no longer its
// ticket's current one is recorded on the ticket (job.results, with why in
// "applied") and not written, and so is a result of an inactive or deleted
// gateway: deactivating a gateway stops every write to its instance. A
// record a person closed or cancelled while the result was on its way is
// not resolved or reassigned over that (the processor cancels the job).
//
// # ServiceNow failures
//
// 429, 5xx, timeouts and a journal write that could not be confirmed are
// transient: the message is retried, its visibility pushed out by a capped
// exponential backoff or longer by the instance's Retry-After (package
// retry), so a long throttle costs a few receives; a result that still
// fails past the retry horizon (24 h by default) goes to the dead-letter
// queue, as a poison one does at once, through the queue's redrive policy. A 401 resets the gateway's credentials once, then
// counts as transient. A 403 (the integration user may not write the
// field, or the instance ignored the field, which is what it does without
// the write right) is a gateway misconfiguration: the result is recorded
// with the refusal and not retried. A 404 (the record is gone or hidden)
// is recorded and dropped.
package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// Gateways reads gateways from the registry.
type Gateways interface {
	Gateway(ctx context.Context, id string) (registry.Gateway, error)
}

// Tickets is what the writer needs of the state table.
type Tickets interface {
	JobTicketKey(ctx context.Context, jobID string) (state.Key, error)
	TicketForResult(ctx context.Context, k state.Key) (state.ResultTicket, error)
	StartResult(ctx context.Context, jobID, resultID string) (state.ResultProgress, error)
	ResultStepDone(ctx context.Context, jobID, resultID, step string) error
	// ReleaseResult gives back the lease StartResult took.
	ReleaseResult(ctx context.Context, p state.ResultProgress) error
	FinishResult(ctx context.Context, k state.Key, f state.ResultFinish) (string, error)
	EndJobForResult(ctx context.Context, k state.Key, jobID, resultID, jobState string) error
	RecordOwnWrite(ctx context.Context, k state.Key, w state.OwnWrite) (bool, error)
}

// Instance is a ServiceNow instance as the writer uses it.
type Instance interface {
	Get(ctx context.Context, table, sysID string, fields ...string) (servicenow.Record, error)
	UpdateFields(ctx context.Context, table, sysID string, set map[string]string, fields ...string) (servicenow.Record, error)
	WriteJournal(ctx context.Context, table, sysID, field, text string, knownModCount int) (servicenow.JournalWrite, error)
	JournalEntries(ctx context.Context, sysID string, since servicenow.Time) ([]servicenow.JournalEntry, error)
}

// Connector gives the Instance of a gateway, with its credentials.
type Connector interface {
	Connect(ctx context.Context, g registry.Gateway) (Instance, error)
	// Reset forgets the gateway's client and credentials after a 401.
	Reset(g registry.Gateway)
}

var (
	_ Tickets  = (*state.Store)(nil)
	_ Gateways = (*registry.Store)(nil)
	_ Instance = (*servicenow.Client)(nil)
)

// Deps are the writer's collaborators.
type Deps struct {
	Gateways   Gateways
	Tickets    Tickets
	ServiceNow Connector
	// Queue, with Config.QueueURL, paces the messages that failed; nil
	// leaves them to the results queue's visibility timeout and redrive
	// count.
	Queue redelivery.Visibility
}

// Config tunes the writer; zero values take the defaults.
type Config struct {
	// QueueURL is the results queue, for visibility changes.
	QueueURL string
	// GatewayTTL is how long a gateway read from the registry is reused.
	// Default 30s.
	GatewayTTL time.Duration
	// Reserve is the time kept before the invocation deadline to record
	// outcomes. Default 3s.
	Reserve time.Duration
	// Retry is the backoff and horizon of failed messages; zero fields
	// take redelivery's defaults (schema.RetryBase, RetryCap, RetryHorizon).
	Retry  redelivery.Policy
	Logger *slog.Logger
	// Metrics receives one EMF line per batch; nil writes none.
	Metrics *metrics.Emitter
	Now     func() time.Time
}

// Defaults of Config.
const (
	DefaultGatewayTTL = 30 * time.Second
	DefaultReserve    = 3 * time.Second
)

// Writer applies job results. It is safe for concurrent use and meant to
// live across invocations.
type Writer struct {
	deps Deps
	cfg  Config
	log  *slog.Logger

	gateways *registry.Cache
	retries  *redelivery.Queue
}

// New returns a Writer.
func New(deps Deps, cfg Config) *Writer {
	if cfg.GatewayTTL <= 0 {
		cfg.GatewayTTL = DefaultGatewayTTL
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = DefaultReserve
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	return &Writer{
		deps: deps, cfg: cfg, log: cfg.Logger,
		gateways: registry.NewCache(deps.Gateways, cfg.GatewayTTL, cfg.Now),
		retries:  &redelivery.Queue{SQS: deps.Queue, URL: cfg.QueueURL, Policy: cfg.Retry, Now: cfg.Now, Log: cfg.Logger},
	}
}

// Outcomes of a result message.
const (
	// OutcomeApplied: written to ServiceNow (as far as the mapping says)
	// and recorded.
	OutcomeApplied = "applied"
	// OutcomeDuplicate: the result id was applied already.
	OutcomeDuplicate = "duplicate"
	// OutcomeUnknownJob: no processor created the job id; dropped.
	OutcomeUnknownJob = "unknown_job"
	// OutcomePoison: not a valid result; dead-lettered.
	OutcomePoison = "poison"
	// OutcomeCancelled: the job was cancelled; recorded, not written.
	OutcomeCancelled = "cancelled_not_written"
	// OutcomeNotWritten: the job ended or was superseded, or the gateway
	// is inactive or deleted; recorded, not written.
	OutcomeNotWritten = "not_written"
	// OutcomeMisconfigured: ServiceNow refused the write (403); recorded.
	OutcomeMisconfigured = "gateway_misconfigured"
	// OutcomeRecordGone: the record is deleted or hidden (404); recorded.
	OutcomeRecordGone = "record_not_found"
	// OutcomeRetry: a transient failure; the message is retried.
	OutcomeRetry = "retry"
	// OutcomeWaiting: the gateway's ServiceNow budget held the result back
	// (the gateway paused, or its request rate spent for now); retried
	// when the budget says. Not a failure.
	OutcomeWaiting = "waiting"
)

// outcomes are the per-batch counters, always all written (zeros
// included) so that alarms see a value rather than missing data.
var outcomes = []string{
	OutcomeApplied, OutcomeDuplicate, OutcomeUnknownJob, OutcomePoison, OutcomeCancelled,
	OutcomeNotWritten, OutcomeMisconfigured, OutcomeRecordGone, OutcomeRetry, OutcomeWaiting,
}

// Outcome is what happened to one message.
type Outcome struct {
	MessageID string
	JobID     string
	ResultID  string
	Status    string // the result's status
	Key       state.Key
	Outcome   string
	// Applied says what was written ("comment, resolved") or why nothing.
	Applied string
	// JobState is the job state the result set, "" when none.
	JobState string
	// Retry reports the message as a batch item failure.
	Retry bool
	// RetryAfter is how long ServiceNow asked us to wait, when it did.
	RetryAfter time.Duration
	// SnowFailure: a ServiceNow call failed (transient or not).
	SnowFailure bool
	Err         error
}

// Handle applies an SQS batch of results, every message concurrently (the
// ServiceNow calls bounded per instance), each to its own outcome.
// Messages to retry are returned as batch item failures, each with the
// visibility its retry needs (package redelivery); a message past the retry
// horizon that failed before is reported failed without work, on its way
// to the dead-letter queue. The error is always nil, so one bad message
// never fails the batch.
func (w *Writer) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	outs := make([]Outcome, len(ev.Records))
	expired := make([]bool, len(ev.Records))
	var wg sync.WaitGroup
	for i, rec := range ev.Records {
		if w.retries.Expired(rec) {
			expired[i] = true
			outs[i] = Outcome{MessageID: rec.MessageId, Outcome: OutcomeRetry, Retry: true,
				Applied: fmt.Sprintf("older than the retry horizon (%s): to the dead-letter queue", w.cfg.Retry.Horizon)}
			continue
		}
		wg.Go(func() { outs[i] = w.safeApply(ctx, rec) })
	}
	wg.Wait()

	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	// The failed messages' visibility, set concurrently: a throttled batch
	// fails whole.
	nexts := make([]redelivery.Next, len(outs))
	for i, o := range outs {
		switch {
		case !o.Retry:
		case expired[i] || o.Outcome == OutcomePoison:
			wg.Go(func() { nexts[i] = w.retries.GiveUp(ctx, ev.Records[i]) })
		default:
			wg.Go(func() { nexts[i] = w.retries.Retry(ctx, ev.Records[i], o.RetryAfter) })
		}
	}
	wg.Wait()

	var resp events.SQSEventResponse
	counts := map[string]float64{}
	for i, o := range outs {
		if o.Retry {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: o.MessageID})
		}
		counts[o.Outcome]++
		if o.Outcome == OutcomeApplied {
			counts["applied_"+o.Status]++
		}
		if o.SnowFailure {
			counts["servicenow_failure"]++
		}
		if m := connect.HeldMetric(o.Err); o.Outcome == OutcomeWaiting && m != "" {
			counts[m]++
		}
		if errors.Is(o.Err, connect.ErrUntrusted) {
			counts[connect.MetricUntrusted]++
		}
		w.logOutcome(ctx, requestID, ev.Records[i], o, nexts[i])
	}
	w.putMetrics(ctx, requestID, counts)
	return resp, nil
}

// metricNames map counters to CloudWatch metric names.
var metricNames = map[string]string{
	OutcomeApplied: "ResultsApplied", OutcomeDuplicate: "DuplicateResults", OutcomeUnknownJob: "UnknownJobs",
	OutcomePoison: "PoisonResults", OutcomeCancelled: "CancelledNotWritten", OutcomeNotWritten: "NotWritten",
	OutcomeMisconfigured: "GatewayMisconfigured", OutcomeRecordGone: "RecordNotFound", OutcomeRetry: "ResultsRetried",
	OutcomeWaiting: "ResultsWaiting",
}

func (w *Writer) putMetrics(ctx context.Context, requestID string, counts map[string]float64) {
	if w.cfg.Metrics == nil {
		return
	}
	var ms []metrics.Metric
	for _, o := range outcomes {
		ms = append(ms, metrics.Metric{Name: metricNames[o], Unit: metrics.Count, Values: []float64{counts[o]}})
	}
	for _, s := range []string{"in_progress", "succeeded", "failed", "partial"} {
		ms = append(ms, metrics.Metric{Name: "Applied_" + s, Unit: metrics.Count, Values: []float64{counts["applied_"+s]}})
	}
	ms = append(ms, metrics.Metric{Name: "ServiceNowFailures", Unit: metrics.Count, Values: []float64{counts["servicenow_failure"]}},
		metrics.Metric{Name: budget.MetricPaused, Unit: metrics.Count, Values: []float64{counts[budget.MetricPaused]}},
		metrics.Metric{Name: budget.MetricDeferred, Unit: metrics.Count, Values: []float64{counts[budget.MetricDeferred]}},
		metrics.Metric{Name: connect.MetricUntrusted, Unit: metrics.Count, Values: []float64{counts[connect.MetricUntrusted]}})
	if err := w.cfg.Metrics.Put(map[string]string{"function": "writer"}, map[string]string{"request_id": requestID}, ms...); err != nil {
		w.log.ErrorContext(ctx, "write metrics", "error", err.Error())
	}
}

// safeApply turns a panic, which would fail the whole batch, into a retry
// of its message.
func (w *Writer) safeApply(ctx context.Context, rec events.SQSMessage) (o Outcome) {
	defer func() {
		if r := recover(); r != nil {
			o = Outcome{MessageID: rec.MessageId, Outcome: OutcomeRetry, Retry: true, Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return w.apply(ctx, rec)
}

func (w *Writer) logOutcome(ctx context.Context, requestID string, rec events.SQSMessage, o Outcome, next redelivery.Next) {
	attrs := []slog.Attr{
		slog.String("request_id", requestID),
		slog.String("message_id", o.MessageID),
		slog.String("receive_count", rec.Attributes["ApproximateReceiveCount"]),
		slog.String("job_id", o.JobID),
		slog.String("result_id", o.ResultID),
		slog.String("status", o.Status),
		slog.String("gateway_id", o.Key.GatewayID),
		slog.String("table", o.Key.Table),
		slog.String("sys_id", o.Key.SysID),
		slog.String("outcome", o.Outcome),
		slog.String("applied", o.Applied),
		slog.Bool("retry", o.Retry),
	}
	attrs = append(attrs, next.LogAttrs()...)
	if o.JobState != "" {
		attrs = append(attrs, slog.String("job_state", o.JobState))
	}
	level := slog.LevelInfo
	if o.Err != nil {
		attrs = append(attrs, slog.String("error", o.Err.Error()))
		level = slog.LevelWarn
	}
	switch o.Outcome {
	case OutcomePoison, OutcomeMisconfigured, OutcomeUnknownJob:
		level = slog.LevelError
	}
	if next.GiveUp {
		level = slog.LevelError
	}
	w.log.LogAttrs(ctx, level, "result processed", attrs...)
}

// Connections gives the writer each gateway's client from a
// connect.Pool: credentials, shared options and the gateway's budget.
type Connections struct{ *connect.Pool }

var _ Connector = Connections{}

// Connect returns the gateway's client.
func (c Connections) Connect(ctx context.Context, g registry.Gateway) (Instance, error) {
	client, err := c.Client(ctx, g)
	if err != nil {
		return nil, err
	}
	return client, nil
}
