package stack

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/internal/schema"
)

// Function names: the directories under functions/ and the bundles
// make build writes (<AssetDir>/<name>.zip holding a bootstrap binary).
const (
	Ingest     = "ingest"
	Processor  = "processor"
	Reconciler = "reconciler"
	Writer     = "writer"
)

// Functions lists every function in build order.
var Functions = []string{Ingest, Processor, Reconciler, Writer}

// IngestRoute is the only route of the HTTP API.
const IngestRoute = "/api/webhooks/ingest/{path}"

// Settings chosen on purpose; the tests pin them.
const (
	// ingest does one cached GetItem, a hash compare and one SendMessage:
	// little memory, and a timeout well under the HTTP API's 30 s limit.
	IngestMemoryMB = 256
	IngestTimeout  = 10 * time.Second
	// DefaultIngestConcurrency is ingest's reserved concurrency: its
	// ceiling, so that a flood of webhooks is throttled (the reconciler
	// catches what was refused) rather than taking the account's
	// concurrency from the processor and the writer; and its floor, so
	// that other functions of the account cannot take it from ingest. At
	// tens of milliseconds a call, 50 serve well over the HTTP API's
	// ThrottleBurstLimit.
	DefaultIngestConcurrency = 50
	// processor makes several ServiceNow calls per message in a batch of 10;
	// more memory buys more CPU for JSON and TLS.
	ProcessorMemoryMB = 512
	// reconciler pages through ServiceNow per gateway and table; it must end
	// well before the next two-minute tick.
	ReconcilerMemoryMB = 256
	ReconcilerTimeout  = 90 * time.Second

	// SQS event source of the processor: no batching window (SQS's
	// default), so a batch leaves as soon as a poll finds messages; a 1 s
	// window made nearly all of the webhook-to-dispatch latency at low
	// rates. The processor's failed messages are paced and dead-lettered
	// by age (package redelivery, schema.RetryHorizon).
	ProcessorBatchSize      = 10
	ProcessorBatchingWindow = 0 * time.Second
	// ProcessorMaxConcurrency caps the pollers so a burst cannot exhaust
	// ServiceNow's API rate limit or the account's concurrency. The
	// processor reserves no concurrency: a reservation below this would
	// throttle the batches the event source hands it.
	ProcessorMaxConcurrency = 10

	// writer applies up to ten results per batch, each a few ServiceNow
	// calls; its timeout is schema.WriterTimeout, from which the results
	// queue's visibility timeout is derived.
	WriterMemoryMB = 256
	// SQS event source of the writer: no batching window, so an engine's
	// in_progress note reaches the ticket at once; a concurrency cap like
	// the processor's, since every result costs ServiceNow API calls.
	WriterBatchSize      = 10
	WriterMaxConcurrency = 5

	// ReconcileSchedule is the reconciler's EventBridge schedule.
	ReconcileSchedule = 2 * time.Minute

	// Stage throttling of the HTTP API (all routes).
	ThrottleRateLimit  = 100
	ThrottleBurstLimit = 200

	LogRetention = awslogs.RetentionDays_ONE_MONTH
)

// ServiceProps configures the service stack.
type ServiceProps struct {
	awscdk.StackProps
	// Data is the stack holding the tables and queues.
	Data *Data
	// AssetDir holds <function>.zip for every function (make build's output).
	AssetDir string
	// SecretPrefix scopes Secrets Manager access; default
	// schema.SecretPrefix(id), one prefix per stack. Ingest may read
	// <prefix>webhooks/* (signing keys), the processor, the reconciler
	// and the writer <prefix>gateways/* (ServiceNow credentials).
	SecretPrefix string
	// LegacySecretPrefix, when set, lets the functions also read the same
	// kinds under it: secrets a deployment made before the per-stack
	// prefix (snowgate/gateways/…, snowgate/webhooks/…), until they are
	// moved (docs/deploying.md). Off by default.
	LegacySecretPrefix string
	// IngestConcurrency is ingest's reserved concurrency, so that a flood
	// of webhooks cannot take the account's concurrency from the processor
	// and the writer; 0 is DefaultIngestConcurrency.
	IngestConcurrency int
	// EdgeWebACLArn, when set, puts a CloudFront distribution with this
	// web ACL in front of the HTTP API (see Edge); ApiUrl is then the
	// distribution's. StackProps.CrossRegionReferences must be set.
	EdgeWebACLArn *string
	// AlarmEmail, when set, subscribes this address to the alarm topic.
	AlarmEmail string
	// Front is what receives the webhooks; "" is FrontHTTPAPI.
	Front Front
}

// Service is the stateless stack: it can be destroyed and redeployed
// without losing data.
type Service struct {
	awscdk.Stack
	Functions map[string]awslambda.Function
	// Front is the ingest front built; API or FunctionURL is set, as it says.
	Front       Front
	API         awsapigatewayv2.HttpApi
	FunctionURL awslambda.FunctionUrl
	AlarmTopic  awssns.Topic
	// EdgeStack is the edge stack (us-east-1) when Build made one.
	EdgeStack awscdk.Stack
	front     ingestFront
}

// NewService builds the service stack on top of the data stack.
func NewService(scope constructs.Construct, id string, props *ServiceProps) *Service {
	sprops := props.StackProps
	if sprops.Description == nil {
		sprops.Description = jsii.String("snowgate service: ingest API, processor, reconciler, writer, alarms")
	}
	prefix := props.SecretPrefix
	if prefix == "" {
		prefix = schema.SecretPrefix(id)
	}
	for _, p := range []string{prefix, props.LegacySecretPrefix} {
		if err := schema.CheckSecretPrefix(p); p != "" && err != nil {
			panic(err) // a programming error: the app validates its settings first
		}
	}
	ingestConcurrency := props.IngestConcurrency
	if ingestConcurrency == 0 {
		ingestConcurrency = DefaultIngestConcurrency
	}
	if err := CheckIngestConcurrency(ingestConcurrency); err != nil {
		panic(err)
	}
	front, err := ParseFront(string(props.Front))
	if err != nil {
		panic(err) // a programming error: the app validates its setting first
	}
	s := awscdk.NewStack(scope, &id, &sprops)
	svc := &Service{Stack: s, Functions: map[string]awslambda.Function{}, Front: front}
	d := props.Data

	registry := d.Tables[schema.Registry.ID]
	state := d.Tables[schema.State.ID]
	intake, intakeDLQ := d.Queues[schema.Intake.ID], d.DLQs[schema.Intake.ID]
	dispatch, dispatchDLQ := d.Queues[schema.Dispatch.ID], d.DLQs[schema.Dispatch.ID]
	results, resultsDLQ := d.Queues[schema.Results.ID], d.DLQs[schema.Results.ID]

	// The ingest pipeline's functions get every name of the ingest side:
	// config parsing stays uniform and a function that does not use one
	// simply ignores it. The writer, on the results side, gets only what it
	// uses (writerEnv): it has no business with the intake or dispatch
	// queues.
	env := map[string]*string{
		schema.EnvRegistryTable:    registry.TableName(),
		schema.EnvStateTable:       state.TableName(),
		schema.EnvIntakeQueueURL:   intake.QueueUrl(),
		schema.EnvIntakeDLQURL:     intakeDLQ.QueueUrl(),
		schema.EnvDispatchQueueURL: dispatch.QueueUrl(),
		schema.EnvDispatchDLQURL:   dispatchDLQ.QueueUrl(),
		schema.EnvSecretPrefix:     jsii.String(prefix),
	}
	writerEnv := map[string]*string{
		schema.EnvRegistryTable:   registry.TableName(),
		schema.EnvStateTable:      state.TableName(),
		schema.EnvResultsQueueURL: results.QueueUrl(),
		schema.EnvSecretPrefix:    jsii.String(prefix),
	}

	newFn := func(name string, memoryMB int, timeout time.Duration, reserved *float64, env map[string]*string, description string) awslambda.Function {
		logs := awslogs.NewLogGroup(s, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
			Retention:     LogRetention,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		// An own role instead of AWSLambdaBasicExecutionRole, whose logs
		// actions apply to every log group in the account.
		role := awsiam.NewRole(s, jsii.String(name+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("snowgate " + name + " function"),
		})
		logs.GrantWrite(role)
		fn := awslambda.NewFunction(s, jsii.String(name), &awslambda.FunctionProps{
			Role:                         role,
			Description:                  jsii.String(description),
			Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:                 awslambda.Architecture_ARM_64(),
			Handler:                      jsii.String("bootstrap"),
			Code:                         awslambda.Code_FromAsset(jsii.String(filepath.Join(props.AssetDir, name+".zip")), nil),
			MemorySize:                   jsii.Number(memoryMB),
			Timeout:                      seconds(timeout),
			Environment:                  &env,
			LogGroup:                     logs,
			ReservedConcurrentExecutions: reserved,
		})
		svc.Functions[name] = fn
		return fn
	}
	// Each function reads one kind of secret, of this stack only: the
	// "*" covers the ids and the random suffix Secrets Manager appends.
	secretsRead := func(kind string) awsiam.PolicyStatement {
		var arns []*string
		for i, p := range []string{prefix, props.LegacySecretPrefix} {
			if p == "" || (i > 0 && p == prefix) {
				continue
			}
			arns = append(arns, s.FormatArn(&awscdk.ArnComponents{
				Service:      jsii.String("secretsmanager"),
				Resource:     jsii.String("secret"),
				ResourceName: jsii.String(p + kind + "*"),
				ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
			}))
		}
		return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: &arns,
		})
	}
	signingKeys := secretsRead(schema.SecretKindWebhooks)
	credentials := secretsRead(schema.SecretKindGateways)

	// ingest: verify and enqueue.
	ingest := newFn(Ingest, IngestMemoryMB, IngestTimeout, jsii.Number(ingestConcurrency), env, "snowgate ingest: verifies a ServiceNow webhook and enqueues it")
	registry.Grant(ingest, jsii.String("dynamodb:GetItem"))
	intake.GrantSendMessages(ingest)
	ingest.AddToRolePolicy(signingKeys)
	// Replay markers of signed webhooks (package ingest/replay): PutItem on
	// those keys of the state table, nothing else of it.
	ingest.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("dynamodb:PutItem"),
		Resources: jsii.Strings(*state.TableArn()),
		Conditions: &map[string]any{"ForAllValues:StringLike": map[string]any{
			"dynamodb:LeadingKeys": []string{schema.ReplayKeyPrefix + "*"}}},
	}))

	// processor: the gateway pipeline, fed by the intake queue.
	processor := newFn(Processor, ProcessorMemoryMB, schema.ProcessorTimeout, nil, env, "snowgate processor: runs the gateway pipeline for each intake message")
	registry.Grant(processor, jsii.String("dynamodb:GetItem"), jsii.String("dynamodb:Query"))
	grantStateReadWrite(state, processor)
	dispatch.GrantSendMessages(processor)
	processor.AddToRolePolicy(credentials)
	processor.AddEventSource(awslambdaeventsources.NewSqsEventSource(intake, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(ProcessorBatchSize),
		MaxBatchingWindow:       seconds(ProcessorBatchingWindow),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(ProcessorMaxConcurrency),
	}))

	// reconciler: catches changes whose webhook never arrived. One at a
	// time: two overlapping runs would only duplicate ServiceNow queries.
	reconciler := newFn(Reconciler, ReconcilerMemoryMB, ReconcilerTimeout, jsii.Number(1), env, "snowgate reconciler: finds changes missed by webhooks and re-enqueues due changes")
	registry.Grant(reconciler, jsii.String("dynamodb:GetItem"), jsii.String("dynamodb:Query"))
	grantStateReadWrite(state, reconciler)
	intake.GrantSendMessages(reconciler)
	reconciler.AddToRolePolicy(credentials)
	// A missed tick is made up by the next one two minutes later: no retries,
	// and an event older than the schedule is dropped.
	reconciler.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{
		MaxEventAge:   seconds(ReconcileSchedule),
		RetryAttempts: jsii.Number(0),
	})
	awsevents.NewRule(s, jsii.String("ReconcileSchedule"), &awsevents.RuleProps{
		Description: jsii.String("runs the snowgate reconciler"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(ReconcileSchedule.Minutes()))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(reconciler, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   seconds(ReconcileSchedule),
		})},
	})

	// writer: applies the engine's results to the tickets, fed by the
	// results queue. The event source mapping is declared directly rather
	// than through SqsEventSource, whose automatic grant adds
	// sqs:GetQueueUrl: the writer gets exactly what Lambda's poller and its
	// own visibility changes (a paused gateway) need, on that queue only.
	writer := newFn(Writer, WriterMemoryMB, schema.WriterTimeout, nil, writerEnv, "snowgate writer: applies automation engine results to the ServiceNow tickets")
	// Statements of their own rather than Grant, which would add the
	// tables' index ARNs to every action.
	writer.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("dynamodb:GetItem"),
		Resources: &[]*string{registry.TableArn()},
	}))
	writer.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(writerStateActions...),
		Resources: &[]*string{state.TableArn()},
	}))
	writer.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("dynamodb:Query"),
		Resources: &[]*string{jsii.String(*state.TableArn() + "/index/*")},
	}))
	results.Grant(writer, *jsii.Strings(resultsConsumeActions...)...)
	writer.AddToRolePolicy(credentials)
	writer.AddEventSourceMapping(jsii.String("ResultsSource"), &awslambda.EventSourceMappingOptions{
		EventSourceArn:          results.QueueArn(),
		BatchSize:               jsii.Number(WriterBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(WriterMaxConcurrency),
	})

	switch front {
	case FrontFunctionURL:
		svc.FunctionURL, svc.front = newFunctionURL(s, ingest)
	default:
		svc.API = newAPI(s, ingest)
		svc.front = httpAPIFront(svc)
	}
	if props.EdgeWebACLArn != nil {
		if front != FrontHTTPAPI {
			panic("the edge fronts the HTTP API only") // the app validates its settings first
		}
		var origin *string
		svc.front.baseURL, origin = newDistribution(s, svc, props.EdgeWebACLArn)
		ingest.AddEnvironment(jsii.String(schema.EnvOriginSecret), origin, nil)
	}
	svc.AlarmTopic = newMonitoring(s, svc, d, props.AlarmEmail)

	through := ""
	if props.EdgeWebACLArn != nil {
		through = " through the CloudFront edge"
	}
	outputs := []struct{ key, value, description string }{
		{schema.OutputAPIURL, *svc.front.baseURL, "base URL of the ingest front, " + string(front) + through + " (webhook URLs are <ApiUrl>/api/webhooks/ingest/<path>)"},
		{schema.OutputRegistryTable, *registry.TableName(), "registry table"},
		{schema.OutputStateTable, *state.TableName(), "state table"},
		{schema.OutputIntakeQueueURL, *intake.QueueUrl(), "intake queue"},
		{schema.OutputIntakeDLQURL, *intakeDLQ.QueueUrl(), "intake dead-letter queue"},
		{schema.OutputDispatchQueueURL, *dispatch.QueueUrl(), "dispatch queue (the automation engine consumes it)"},
		{schema.OutputDispatchDLQURL, *dispatchDLQ.QueueUrl(), "dispatch dead-letter queue"},
		{OutputDispatchQueueARN, *dispatch.QueueArn(), "dispatch queue ARN, for the engine's IAM policy (ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes)"},
		{schema.OutputResultsQueueURL, *results.QueueUrl(), "results queue (the automation engine sends job results to it; the writer consumes it)"},
		{schema.OutputResultsDLQURL, *resultsDLQ.QueueUrl(), "results dead-letter queue (malformed results)"},
		{OutputResultsQueueARN, *results.QueueArn(), "results queue ARN, for the engine's IAM policy (SendMessage)"},
		{schema.OutputSecretPrefix, prefix, "Secrets Manager name prefix of this stack's secrets (<prefix>gateways/<id>, <prefix>webhooks/<id>); the CLI creates them there"},
		{OutputAlarmTopicARN, *svc.AlarmTopic.TopicArn(), "SNS topic the alarms publish to"},
	}
	for _, o := range outputs {
		awscdk.NewCfnOutput(s, jsii.String(o.key), &awscdk.CfnOutputProps{
			Value:       jsii.String(o.value),
			Description: jsii.String(o.description),
		})
	}
	return svc
}

// Outputs of the service stack beyond schema's keys: nothing in snowgate
// reads them; they are for the operator, and the queue ARNs for the IAM
// policy of the automation engine's role, which the stack does not know
// and therefore grants nothing (see docs/deploying.md).
const (
	OutputAlarmTopicARN    = "AlarmTopicArn"
	OutputDispatchQueueARN = "DispatchQueueArn"
	OutputResultsQueueARN  = "ResultsQueueArn"
)

// writerStateActions are what the writer does on the state table: find a
// result's ticket through the job index and record the result on the
// ticket with a conditional write.
var writerStateActions = []string{
	"dynamodb:GetItem",
	"dynamodb:Query",
	"dynamodb:PutItem",
	"dynamodb:UpdateItem",
}

// resultsConsumeActions are what the writer's event source mapping needs
// on the results queue (receive, delete handled messages, read the queue's
// attributes), and what the writer needs to push a message for a paused
// gateway out of sight.
var resultsConsumeActions = []string{
	"sqs:ReceiveMessage",
	"sqs:DeleteMessage",
	"sqs:ChangeMessageVisibility",
	"sqs:GetQueueAttributes",
}

// stateActions are what the processor and reconciler do on the state table:
// conditional writes, transactions (which need the per-item actions) and
// index queries. No Scan, no DeleteItem: expiry is left to TTL.
var stateActions = []string{
	"dynamodb:GetItem",
	"dynamodb:BatchGetItem",
	"dynamodb:Query",
	"dynamodb:PutItem",
	"dynamodb:UpdateItem",
	"dynamodb:ConditionCheckItem",
}

func grantStateReadWrite(state interface {
	Grant(grantee awsiam.IGrantable, actions ...*string) awsiam.Grant
}, fn awsiam.IGrantable) {
	state.Grant(fn, *jsii.Strings(stateActions...)...)
}

func newAPI(s awscdk.Stack, ingest awslambda.IFunction) awsapigatewayv2.HttpApi {
	api := awsapigatewayv2.NewHttpApi(s, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(*s.StackName() + "-ingest"),
		Description:        jsii.String("snowgate ingest API: ServiceNow Business Rules post here"),
		CreateDefaultStage: jsii.Bool(false),
	})
	api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String(IngestRoute),
		Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_POST},
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Ingest"), ingest, nil),
	})
	stage := api.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(ThrottleRateLimit),
			BurstLimit: jsii.Number(ThrottleBurstLimit),
		},
	})
	accessLogs := awslogs.NewLogGroup(s, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{
		Retention:     LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// The L2 stage takes access log settings only as a jsii interface a Go
	// struct cannot implement, so they are set on the CloudFormation
	// resource. The format leaves out $context.path: a webhook's path is
	// part of its address and does not belong in logs.
	stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format:         jsii.String(accessLogFormat),
	})
	return api
}

const accessLogFormat = `{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",` +
	`"requestTime":"$context.requestTime","routeKey":"$context.routeKey","status":"$context.status",` +
	`"protocol":"$context.protocol","responseLength":"$context.responseLength",` +
	`"latency":"$context.responseLatency","integrationLatency":"$context.integrationLatency",` +
	`"integrationError":"$context.integrationErrorMessage","userAgent":"$context.identity.userAgent"}`

// MaxIngestConcurrency bounds the setting: Lambda keeps 100 of an account's
// concurrency (1000 by default) unreserved, and the reconciler reserves 1.
const MaxIngestConcurrency = 1000 - 100 - 1

// CheckIngestConcurrency checks the ingest reserved concurrency setting.
func CheckIngestConcurrency(n int) error {
	if n < 1 || n > MaxIngestConcurrency {
		return fmt.Errorf("ingest concurrency %d: want 1 to %d", n, MaxIngestConcurrency)
	}
	return nil
}

func seconds(d time.Duration) awscdk.Duration {
	return awscdk.Duration_Seconds(jsii.Number(d.Seconds()))
}
