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
