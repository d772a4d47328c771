package provision_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func TestCreateMatchesSchema(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	r := awstest.Resources(t)

	ddb := dynamodb.NewFromConfig(cfg)
	for _, tc := range []struct {
		name string
		def  schema.Table
	}{{r.RegistryTable, schema.Registry}, {r.StateTable, schema.State}} {
		out, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tc.name)})
		if err != nil {
			t.Fatalf("DescribeTable(%s): %v", tc.name, err)
		}
		if got := *out.Table.KeySchema[0].AttributeName; got != tc.def.PartitionKey.Name {
			t.Errorf("%s partition key = %q, want %q", tc.name, got, tc.def.PartitionKey.Name)
		}
		if got, want := len(out.Table.GlobalSecondaryIndexes), len(tc.def.Indexes); got != want {
			t.Errorf("%s has %d indexes, want %d", tc.name, got, want)
		}
	}

	q := sqs.NewFromConfig(cfg)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(r.IntakeQueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	if got, want := attrs.Attributes["VisibilityTimeout"], "180"; got != want {
		t.Errorf("intake VisibilityTimeout = %s, want %s", got, want)
	}
	if attrs.Attributes["RedrivePolicy"] == "" {
		t.Errorf("intake queue has no redrive policy")
	}

	// Create is idempotent: running it again with the same prefix succeeds.
	if _, err := provision.Create(ctx, cfg, r.RegistryTable[:len(r.RegistryTable)-len(schema.Registry.ID)]); err != nil {
		t.Fatalf("second Create: %v", err)
	}
}

// Every queue the schema lists exists with its dead-letter queue, and each
// URL reaches the programs through Env: a queue added to schema.Queues but
// not to Create fails here.
func TestCreateMakesEverySchemaQueue(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	r := awstest.Resources(t)
	prefix := r.RegistryTable[:len(r.RegistryTable)-len(schema.Registry.ID)]
	q := sqs.NewFromConfig(cfg)
	urls := map[string]bool{}
	for _, u := range r.Env() {
		urls[u] = true
	}
	for _, def := range schema.Queues {
		for _, name := range []string{prefix + def.ID, prefix + def.DLQID()} {
			out, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
			if err != nil {
				t.Errorf("GetQueueUrl(%s): %v", name, err)
				continue
			}
			if !urls[aws.ToString(out.QueueUrl)] {
				t.Errorf("queue %s (%s) is not in Resources.Env()", name, aws.ToString(out.QueueUrl))
			}
		}
	}
	for _, tc := range []struct{ env, url string }{
		{schema.EnvResultsQueueURL, r.ResultsQueueURL},
		{schema.EnvResultsDLQURL, r.ResultsDLQURL},
	} {
		if tc.url == "" || r.Env()[tc.env] != tc.url {
			t.Errorf("Env()[%s] = %q, want the results queue's URL %q", tc.env, r.Env()[tc.env], tc.url)
		}
	}
}
