package stack

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/internal/schema"
)

// Metrics the functions emit as CloudWatch EMF log lines.
const (
	MetricNamespace = "snowgate"
	// MetricReconcileLag is the reconciler's lag: now minus the oldest
	// watermark it holds. The alarm reads the aggregated series, the one
	// with no dimensions, statistic Maximum.
	MetricReconcileLag = "ReconcileLagSeconds"
	// ReconcileLagThreshold is how far behind the reconciler may fall.
	ReconcileLagThreshold = 10 * time.Minute
	// Ingest5xxPercent is the share of 5xx responses that raises the alarm.
	Ingest5xxPercent = 5
	// IntakeAgeThreshold is how old the oldest intake message may grow:
	// changes are waiting longer than that for ServiceNow (throttled or
	// down) or for the processor. Retries go on until the retry horizon.
	IntakeAgeThreshold = time.Hour

	// functionDimension is the dimension the functions put on their EMF
	// metrics: the function's name (processor, writer, reconciler, ingest).
	functionDimension = "function"
	// MetricFailed is the processor's outcome count of messages that
	// failed in a batch, by far most of them sent back for a retry (a
	// transient ServiceNow, DynamoDB or SQS failure), the rest failed for
	// good. The processor emits no separate "retrying" outcome: its ticket
	// status retrying is what the reconciler re-enqueues, not a metric.
	MetricFailed = "failed"
	// ProcessorFailedThreshold is how many failed messages in each of
	// three 5-minute periods raise ProcessorRetries.
	ProcessorFailedThreshold = 20
	// MetricResultsRetried is the writer's count of results sent back for
	// a retry; WriterRetriedThreshold is ProcessorFailedThreshold's peer.
	MetricResultsRetried   = "ResultsRetried"
	WriterRetriedThreshold = 20
	// MetricUnauthorized is ingest's count of requests answered 401 (no
	// valid secret or signature for the path); IngestUnauthorizedThreshold
	// of them in each of two 5-minute periods raise IngestUnauthorized.
	MetricUnauthorized          = "Unauthorized"
	IngestUnauthorizedThreshold = 10
	// MetricGatewayPaused is budget.MetricPaused: requests deferred because
	// their gateway's circuit is open, emitted by the processor, the
	// writer and the reconciler. GatewayPausedFor is how long their sum
	// stays above zero before GatewayPaused fires.
	MetricGatewayPaused = "GatewayPaused"
	GatewayPausedFor    = 15 * time.Minute
	// MetricGatewayUntrusted is connect.MetricUntrusted: messages, results
	// or reconciler passes refused because their gateway's registry item
	// names another secret or an instance it was not registered for. One
	// is enough: the item was tampered with, or registered by hand.
	MetricGatewayUntrusted = "GatewayUntrusted"
)

// Outcomes are the processor's outcome metrics, one per ticket status.
var Outcomes = []string{"accepted", "stale", "unchanged", "out_of_scope", "deduplicated", "deferred", "expired", "failed"}

// Alarm construct ids; the tests look them up.
const (
	AlarmProcessorErrors  = "ProcessorErrors"
	AlarmReconcilerErrors = "ReconcilerErrors"
	AlarmWriterErrors     = "WriterErrors"
	AlarmIngest5xxRate    = "Ingest5xxRate"
	AlarmReconcileLag     = "ReconcileLag"
	AlarmIntakeAge        = "IntakeAge"

	AlarmProcessorRetries     = "ProcessorRetries"
	AlarmWriterRetries        = "WriterRetries"
	AlarmIngestUnauthorized   = "IngestUnauthorized"
	AlarmReconcilerNotInvoked = "ReconcilerNotInvoked"
	AlarmGatewayPaused        = "GatewayPaused"
	AlarmGatewayUntrusted     = "GatewayUntrusted"
)

// PausedFunctions are the functions that emit MetricGatewayPaused.
var PausedFunctions = []string{Processor, Writer, Reconciler}

// emf is a metric a function emits as an EMF log line, by function.
func emf(name, function string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(MetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{functionDimension: jsii.String(function)},
		Statistic:     jsii.String("Sum"),
		Period:        period,
	})
}

// AlarmDLQ is the construct id of the alarm on a queue's dead-letter queue.
func AlarmDLQ(q schema.Queue) string { return q.DLQID() + "Messages" }

func newMonitoring(s awscdk.Stack, svc *Service, d *Data, email string) awssns.Topic {
	topic := awssns.NewTopic(s, jsii.String("Alarms"), &awssns.TopicProps{
		// No EnforceSSL: its topic policy would replace the default one
		// that lets CloudWatch alarms in this account publish.
		DisplayName: jsii.String("snowgate alarms"),
	})
	if email != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(email), nil))
	}
	notify := awscloudwatchactions.NewSnsAction(topic)
	alarm := func(id, description string, props *awscloudwatch.AlarmProps) {
		props.AlarmDescription = jsii.String(description)
		if props.TreatMissingData == "" {
			props.TreatMissingData = awscloudwatch.TreatMissingData_NOT_BREACHING
		}
		a := awscloudwatch.NewAlarm(s, jsii.String(id), props)
		a.AddAlarmAction(notify)
		a.AddOkAction(notify)
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	processor, reconciler, writer := svc.Functions[Processor], svc.Functions[Reconciler], svc.Functions[Writer]

	for _, q := range schema.Queues {
		why := fmt.Sprintf("they failed %d times", q.MaxReceiveCount)
		if q.MaxReceiveCount == schema.ConsumerMaxReceiveCount {
			why = fmt.Sprintf("poison, or still failing after the retry horizon (%s by default)", schema.RetryHorizon)
		}
		alarm(AlarmDLQ(q), fmt.Sprintf("messages in the %s dead-letter queue: %s; inspect, fix, redrive", q.ID, why), &awscloudwatch.AlarmProps{
			Metric: d.DLQs[q.ID].MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
				Statistic: jsii.String("Maximum"), Period: minute,
			}),
			Threshold:          jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
		})
	}
	alarm(AlarmProcessorErrors, "the processor function failed (an invocation error, not a single failed message)", &awscloudwatch.AlarmProps{
		Metric:             processor.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
	})
	alarm(AlarmWriterErrors, "the writer function failed (an invocation error, not a single failed result): results are not reaching ServiceNow", &awscloudwatch.AlarmProps{
		Metric:             writer.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
	})
	alarm(AlarmReconcilerErrors, "the reconciler failed for ten minutes: missed webhooks are not being caught", &awscloudwatch.AlarmProps{
		Metric:             reconciler.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(2),
		DatapointsToAlarm:  jsii.Number(2),
	})
	alarm(AlarmIngest5xxRate, fmt.Sprintf("more than %d%% of ingest requests answered 5xx for ten minutes", Ingest5xxPercent), &awscloudwatch.AlarmProps{
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("IF(requests > 0, 100 * errors / requests, 0)"),
			Label:      jsii.String("ingest 5xx %"),
			Period:     fiveMinutes,
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"errors":   svc.front.serverErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
				"requests": svc.front.requests(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
			},
		}),
		Threshold:          jsii.Number(Ingest5xxPercent),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(2),
		DatapointsToAlarm:  jsii.Number(2),
	})
	lag := awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:  jsii.String(MetricNamespace),
		MetricName: jsii.String(MetricReconcileLag),
		Statistic:  jsii.String("Maximum"),
		Period:     fiveMinutes,
	})
	alarm(AlarmReconcileLag, fmt.Sprintf("the reconciler is more than %s behind ServiceNow", ReconcileLagThreshold), &awscloudwatch.AlarmProps{
		Metric:             lag,
		Threshold:          jsii.Number(ReconcileLagThreshold.Seconds()),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
	})

	alarm(AlarmIntakeAge, fmt.Sprintf("the oldest intake message is more than %s old: changes wait for ServiceNow (throttled or down: see the processor's logs) or for the processor", IntakeAgeThreshold), &awscloudwatch.AlarmProps{
		Metric: d.Queues[schema.Intake.ID].MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
			Statistic: jsii.String("Maximum"), Period: fiveMinutes,
		}),
		Threshold:          jsii.Number(IntakeAgeThreshold.Seconds()),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
	})

	alarm(AlarmProcessorRetries, fmt.Sprintf("the processor failed %d or more messages in each of three 5-minute periods: they are retried (ServiceNow, DynamoDB or SQS failing)", ProcessorFailedThreshold), &awscloudwatch.AlarmProps{
		Metric:             emf(MetricFailed, Processor, fiveMinutes),
		Threshold:          jsii.Number(ProcessorFailedThreshold),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(3),
		DatapointsToAlarm:  jsii.Number(3),
	})
	alarm(AlarmWriterRetries, fmt.Sprintf("the writer sent %d or more results back for a retry in each of three 5-minute periods: results are late reaching ServiceNow", WriterRetriedThreshold), &awscloudwatch.AlarmProps{
		Metric:             emf(MetricResultsRetried, Writer, fiveMinutes),
		Threshold:          jsii.Number(WriterRetriedThreshold),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(3),
		DatapointsToAlarm:  jsii.Number(3),
	})
	alarm(AlarmIngestUnauthorized, fmt.Sprintf("ingest answered 401 to %d or more requests in each of two 5-minute periods: a Business Rule with a stale secret or key, or someone guessing", IngestUnauthorizedThreshold), &awscloudwatch.AlarmProps{
		Metric:             emf(MetricUnauthorized, Ingest, fiveMinutes),
		Threshold:          jsii.Number(IngestUnauthorizedThreshold),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(2),
		DatapointsToAlarm:  jsii.Number(2),
	})
	// No invocation at all in two schedule periods: the schedule, its
	// rule or the function's throttling. No data is the symptom itself.
	notInvoked := 2 * ReconcileSchedule
	alarm(AlarmReconcilerNotInvoked, fmt.Sprintf("the reconciler was not invoked for %s (two schedule periods): missed webhooks and due changes are not being caught", notInvoked), &awscloudwatch.AlarmProps{
		Metric:             reconciler.MetricInvocations(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: seconds(notInvoked)}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})
	// The sum of a metric the three functions that call ServiceNow emit,
	// a function that emitted nothing counting 0.
	sumOver := func(name, label string) awscloudwatch.IMetric {
		series := map[string]awscloudwatch.IMetric{}
		var terms []string
		for _, fn := range PausedFunctions {
			series[fn] = emf(name, fn, fiveMinutes)
			terms = append(terms, "FILL("+fn+", 0)")
		}
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String(strings.Join(terms, " + ")),
			Label:        jsii.String(label),
			Period:       fiveMinutes,
			UsingMetrics: &series,
		})
	}
	pausedPeriods := int(GatewayPausedFor / (5 * time.Minute))
	alarm(AlarmGatewayPaused, fmt.Sprintf("requests of a paused gateway (ServiceNow throttling, down, refusing the credentials, or paused by an operator) were deferred in every 5-minute period for %s", GatewayPausedFor), &awscloudwatch.AlarmProps{
		Metric:             sumOver(MetricGatewayPaused, "requests deferred by a paused gateway"),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(pausedPeriods),
		DatapointsToAlarm:  jsii.Number(pausedPeriods),
	})
	alarm(AlarmGatewayUntrusted, "a gateway's registry item names a credentials secret or an instance it was not registered with: its changes wait until the item is put right", &awscloudwatch.AlarmProps{
		Metric:             sumOver(MetricGatewayUntrusted, "work refused for an untrusted gateway item"),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
	})

	newDashboard(s, svc, d, lag.With(&awscloudwatch.MetricOptions{Label: jsii.String("reconcile lag (s)")}))
	return topic
}

// pausedAndRefused are the requests deferred for a paused gateway, by
// function, and ingest's 401s.
func pausedAndRefused(period awscdk.Duration) []awscloudwatch.IMetric {
	var ms []awscloudwatch.IMetric
	for _, fn := range PausedFunctions {
		ms = append(ms, emf(MetricGatewayPaused, fn, period).With(&awscloudwatch.MetricOptions{Label: jsii.String("paused: " + fn)}))
	}
	return append(ms, emf(MetricUnauthorized, Ingest, period).With(&awscloudwatch.MetricOptions{Label: jsii.String("ingest 401")}))
}

func newDashboard(s awscdk.Stack, svc *Service, d *Data, lag awscloudwatch.IMetric) {
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	sum := &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: minute}
	stat := func(st, label string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String(st), Period: minute, Label: jsii.String(label)}
	}
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(8), Height: jsii.Number(6), Left: &left,
		})
	}
	front := svc.front
	latency := []awscloudwatch.IMetric{front.latency(stat("p50", "p50")), front.latency(stat("p99", "p99"))}
	if front.backendLatency != nil {
		latency = append(latency, front.backendLatency(stat("p99", "integration p99")))
	}
	// Outcomes are found with SEARCH so the widget shows them whatever
	// dimensions the processor attaches (per gateway, per function, none).
	outcomeNames := make([]string, len(Outcomes))
	for i, o := range Outcomes {
		outcomeNames[i] = fmt.Sprintf("MetricName=%q", o)
	}
	outcomes := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(fmt.Sprintf(`SEARCH('{%s} %s', 'Sum', 60)`, MetricNamespace, strings.Join(outcomeNames, " OR "))),
		Label:      jsii.String(""),
		Period:     minute,
	})
	var depth, age []awscloudwatch.IMetric
	for _, q := range schema.Queues {
		depth = append(depth,
			d.Queues[q.ID].MetricApproximateNumberOfMessagesVisible(stat("Maximum", q.ID)),
			d.DLQs[q.ID].MetricApproximateNumberOfMessagesVisible(stat("Maximum", q.DLQID())))
		age = append(age, d.Queues[q.ID].MetricApproximateAgeOfOldestMessage(stat("Maximum", q.ID)))
	}
	awscloudwatch.NewDashboard(s, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Ingest requests per minute",
					front.requests(sum), front.clientErrors(sum), front.serverErrors(sum)),
				graph("Ingest latency (ms)", latency...),
				graph("Outcomes per minute", outcomes),
			},
			{
				graph("Queue depth (messages)", depth...),
				graph("Oldest message age (s)", age...),
				awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
					Title: jsii.String("Reconciliation lag (s)"), Width: jsii.Number(8), Height: jsii.Number(6),
					Left: &[]awscloudwatch.IMetric{lag},
					LeftAnnotations: &[]*awscloudwatch.HorizontalAnnotation{{
						Value: jsii.Number(ReconcileLagThreshold.Seconds()), Label: jsii.String("alarm"),
					}},
				}),
			},
			{
				graph("Processor", svc.Functions[Processor].MetricInvocations(sum),
					svc.Functions[Processor].MetricErrors(sum), svc.Functions[Processor].MetricThrottles(sum)),
				graph("Reconciler", svc.Functions[Reconciler].MetricInvocations(sum),
					svc.Functions[Reconciler].MetricErrors(sum)),
				graph("Function duration p99 (ms)",
					svc.Functions[Ingest].MetricDuration(stat("p99", Ingest)),
					svc.Functions[Processor].MetricDuration(stat("p99", Processor)),
					svc.Functions[Reconciler].MetricDuration(stat("p99", Reconciler)),
					svc.Functions[Writer].MetricDuration(stat("p99", Writer))),
			},
			{
				graph("Writer", svc.Functions[Writer].MetricInvocations(sum),
					svc.Functions[Writer].MetricErrors(sum), svc.Functions[Writer].MetricThrottles(sum)),
				graph("Retried per minute",
					emf(MetricFailed, Processor, minute).With(&awscloudwatch.MetricOptions{Label: jsii.String("processor failed")}),
					emf(MetricResultsRetried, Writer, minute).With(&awscloudwatch.MetricOptions{Label: jsii.String("writer retried")})),
				graph("Paused gateways and refused webhooks per minute", pausedAndRefused(minute)...),
			},
		},
	})
}
