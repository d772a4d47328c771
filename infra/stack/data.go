// Package stack defines snowgate's two CloudFormation stacks: the data stack
// (tables and queues, which outlive deployments) and the service stack
// (functions, HTTP API, schedule, alarms and dashboard). Both are built from
// the definitions in internal/schema, the same ones local provisioning and
// the tests use.
package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/internal/schema"
)

// DataProps configures the data stack.
type DataProps struct {
	awscdk.StackProps
}

// Data is the stateful stack. Its tables are retained and deletion-protected
// so that removing or replacing the stack never drops tickets or gateways.
type Data struct {
	awscdk.Stack
	// Tables and Queues are keyed by schema ID ("Registry", "Intake", …);
	// DLQs by the owning queue's ID.
	Tables map[string]awsdynamodb.Table
	Queues map[string]awssqs.Queue
	DLQs   map[string]awssqs.Queue
}

// Logical ids of the stateful resources. They are pinned: a changed logical
// id makes CloudFormation replace the resource, i.e. create an empty table.
func tableLogicalID(t schema.Table) string { return t.ID + "Table" }
func queueLogicalID(q schema.Queue) string { return q.ID + "Queue" }
func dlqLogicalID(q schema.Queue) string   { return q.DLQID() }

// NewData builds the data stack from schema.Tables and schema.Queues.
func NewData(scope constructs.Construct, id string, props *DataProps) *Data {
	var sprops awscdk.StackProps
	if props != nil {
		sprops = props.StackProps
	}
	if sprops.Description == nil {
		sprops.Description = jsii.String("snowgate data: registry and state tables; intake, dispatch and results queues")
	}
	s := awscdk.NewStack(scope, &id, &sprops)
	d := &Data{
		Stack:  s,
		Tables: map[string]awsdynamodb.Table{},
		Queues: map[string]awssqs.Queue{},
		DLQs:   map[string]awssqs.Queue{},
	}
	for _, t := range schema.Tables {
		d.Tables[t.ID] = newTable(s, t)
	}
	for _, q := range schema.Queues {
		d.Queues[q.ID], d.DLQs[q.ID] = newQueue(s, q)
	}
	return d
}

func newTable(scope constructs.Construct, def schema.Table) awsdynamodb.Table {
	props := &awsdynamodb.TableProps{
		PartitionKey: attribute(def.PartitionKey),
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection: jsii.Bool(true),
		RemovalPolicy:      awscdk.RemovalPolicy_RETAIN,
		// Encrypted at rest with a KMS key that DynamoDB manages in the
		// account, so the key's use shows in CloudTrail.
		Encryption: awsdynamodb.TableEncryption_AWS_MANAGED,
	}
	if def.SortKey != nil {
		props.SortKey = attribute(*def.SortKey)
	}
	if def.TTLAttribute != "" {
		props.TimeToLiveAttribute = jsii.String(def.TTLAttribute)
	}
	t := awsdynamodb.NewTable(scope, jsii.String(def.ID), props)
	for _, ix := range def.Indexes {
		gsi := &awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   attribute(ix.PartitionKey),
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		}
		if ix.Include != nil {
			gsi.ProjectionType = awsdynamodb.ProjectionType_INCLUDE
			gsi.NonKeyAttributes = jsii.Strings(ix.Include...)
		}
		if ix.SortKey != nil {
			gsi.SortKey = attribute(*ix.SortKey)
		}
		t.AddGlobalSecondaryIndex(gsi)
	}
	pin(t, tableLogicalID(def))
	return t
}

func attribute(k schema.Key) *awsdynamodb.Attribute {
	typ := awsdynamodb.AttributeType_STRING
	switch k.Type {
	case schema.String:
	case schema.Number:
		typ = awsdynamodb.AttributeType_NUMBER
	default:
		// The schema is static data; an unknown type is a programming error
		// caught by the first synth, never at request time.
		panic(fmt.Sprintf("schema key %s: unknown attribute type %q", k.Name, k.Type))
	}
	return &awsdynamodb.Attribute{Name: jsii.String(k.Name), Type: typ}
}

func newQueue(scope constructs.Construct, def schema.Queue) (queue, dlq awssqs.Queue) {
	dlq = awssqs.NewQueue(scope, jsii.String(def.DLQID()), &awssqs.QueueProps{
		RetentionPeriod: seconds(def.DLQRetention),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	pin(dlq, dlqLogicalID(def))
	queue = awssqs.NewQueue(scope, jsii.String(def.ID), &awssqs.QueueProps{
		VisibilityTimeout: seconds(def.VisibilityTimeout),
		RetentionPeriod:   seconds(def.Retention),
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(def.MaxReceiveCount),
		},
	})
	pin(queue, queueLogicalID(def))
	return queue, dlq
}

// pin fixes the CloudFormation logical id of a construct's main resource.
func pin(c constructs.IConstruct, logicalID string) {
	c.Node().DefaultChild().(awscdk.CfnResource).OverrideLogicalId(jsii.String(logicalID))
}
