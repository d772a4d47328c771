package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/schema"
)

// The data stack's template, as synthesized, creates on a real
// CloudFormation implementation (moto's, or LocalStack's with
// SNOWGATE_TEST_EMULATOR=endpoint) and yields the tables and queues the
// schema defines.
func TestDataStackDeploys(t *testing.T) {
	// Slow (a Python process, an emulator): overlap with the other tests.
	t.Parallel()
	switch awstest.Kind() {
	case awstest.Moto, awstest.Endpoint:
	default:
		t.Skipf("%s has no CloudFormation; run with %s=moto (moto_server) to deploy the data template",
			awstest.Kind(), awstest.EnvEmulator)
	}
	cfg := awstest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	body, err := json.Marshal(deployable(fx.dataDoc))
	if err != nil {
		t.Fatal(err)
	}
	cfn := cloudformation.NewFromConfig(cfg)
	name := awstest.UniqueName("snowgate-t") + "-data"
	if _, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName:    aws.String(name),
		TemplateBody: aws.String(string(body)),
	}); err != nil {
		t.Fatalf("CreateStack: %v", err)
	}
	physical := map[string]string{}
	t.Cleanup(func() { deleteDataStack(t, cfg, name, physical) })
	waiter := cloudformation.NewStackCreateCompleteWaiter(cfn, func(o *cloudformation.StackCreateCompleteWaiterOptions) {
		o.MinDelay, o.MaxDelay = 200*time.Millisecond, 2*time.Second
	})
	if err := waiter.Wait(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)}, 2*time.Minute); err != nil {
		t.Fatalf("stack %s did not reach CREATE_COMPLETE: %v", name, err)
	}
	res, err := cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(name)})
	if err != nil {
		t.Fatalf("DescribeStackResources: %v", err)
	}
	for _, r := range res.StackResources {
		if r.ResourceStatus != cfntypes.ResourceStatusCreateComplete {
			t.Errorf("%s is %s", aws.ToString(r.LogicalResourceId), r.ResourceStatus)
		}
		physical[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
	}

	ddb := dynamodb.NewFromConfig(cfg)
	for _, def := range schema.Tables {
		t.Run("table "+def.ID, func(t *testing.T) {
			tableName := physical[def.ID+"Table"]
			out, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
			if err != nil {
				t.Fatalf("DescribeTable %s: %v", tableName, err)
			}
			if diff := cmp.Diff(wantTable(def), gotTable(out.Table)); diff != "" {
				t.Errorf("deployed table %s (-schema +deployed):\n%s", def.ID, diff)
			}
			if def.TTLAttribute == "" {
				return
			}
			t.Run("ttl", func(t *testing.T) {
				if awstest.Kind() == awstest.Moto {
					// moto's CloudFormation ignores TimeToLiveSpecification;
					// TestTablesMatchSchema checks it in the template.
					t.Skip("moto does not apply TimeToLiveSpecification from CloudFormation")
				}
				ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tableName)})
				if err != nil {
					t.Fatalf("DescribeTimeToLive: %v", err)
				}
				if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != def.TTLAttribute {
					t.Errorf("TTL attribute = %q, want %q", got, def.TTLAttribute)
				}
			})
		})
	}
	q := sqs.NewFromConfig(cfg)
	for _, def := range schema.Queues {
		t.Run("queue "+def.ID, func(t *testing.T) {
			attrs := queueAttributes(ctx, t, q, physical[def.ID+"Queue"])
			dlqArn := queueAttributes(ctx, t, q, physical[def.DLQID()])[string(sqstypes.QueueAttributeNameQueueArn)]
			want := map[string]any{
				"VisibilityTimeout":      strconv.Itoa(int(def.VisibilityTimeout.Seconds())),
				"MessageRetentionPeriod": strconv.Itoa(int(def.Retention.Seconds())),
				"deadLetterTargetArn":    dlqArn,
				"maxReceiveCount":        float64(def.MaxReceiveCount),
			}
			var redrive map[string]any
			if err := json.Unmarshal([]byte(attrs[string(sqstypes.QueueAttributeNameRedrivePolicy)]), &redrive); err != nil {
				t.Fatalf("redrive policy %q: %v", attrs[string(sqstypes.QueueAttributeNameRedrivePolicy)], err)
			}
			// moto reports maxReceiveCount as a number, AWS as a string.
			if s, ok := redrive["maxReceiveCount"].(string); ok {
				n, _ := strconv.Atoi(s)
				redrive["maxReceiveCount"] = float64(n)
			}
			got := map[string]any{
				"VisibilityTimeout":      attrs[string(sqstypes.QueueAttributeNameVisibilityTimeout)],
				"MessageRetentionPeriod": attrs[string(sqstypes.QueueAttributeNameMessageRetentionPeriod)],
				"deadLetterTargetArn":    redrive["deadLetterTargetArn"],
				"maxReceiveCount":        redrive["maxReceiveCount"],
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deployed queue %s (-schema +deployed):\n%s", def.ID, diff)
			}
		})
	}
}

// deployable drops the CDK bootstrap version check: it reads an SSM
// parameter that only `cdk bootstrap` creates, and is not part of what is
// under test.
func deployable(d doc) doc {
	b, _ := json.Marshal(d)
	var out doc
	_ = json.Unmarshal(b, &out)
	if p, ok := out["Parameters"].(map[string]any); ok {
		delete(p, "BootstrapVersion")
		if len(p) == 0 {
			delete(out, "Parameters")
		}
	}
	if r, ok := out["Rules"].(map[string]any); ok {
		delete(r, "CheckBootstrapVersion")
		if len(r) == 0 {
			delete(out, "Rules")
		}
	}
	return out
}

type tableShape struct {
	Keys    []string
	Indexes map[string][]string
}

func wantTable(def schema.Table) tableShape {
	keys := func(pk schema.Key, sk *schema.Key) []string {
		k := []string{pk.Name + " HASH"}
		if sk != nil {
			k = append(k, sk.Name+" RANGE")
		}
		return k
	}
	s := tableShape{Keys: keys(def.PartitionKey, def.SortKey), Indexes: map[string][]string{}}
	for _, ix := range def.Indexes {
		s.Indexes[ix.Name] = keys(ix.PartitionKey, ix.SortKey)
	}
	return s
}

func gotTable(td *ddbtypes.TableDescription) tableShape {
	keys := func(ks []ddbtypes.KeySchemaElement) []string {
		var k []string
		for _, e := range ks {
			k = append(k, aws.ToString(e.AttributeName)+" "+string(e.KeyType))
		}
		return k
	}
	s := tableShape{Keys: keys(td.KeySchema), Indexes: map[string][]string{}}
	for _, ix := range td.GlobalSecondaryIndexes {
		s.Indexes[aws.ToString(ix.IndexName)] = keys(ix.KeySchema)
	}
	return s
}

func queueAttributes(ctx context.Context, t *testing.T, q *sqs.Client, url string) map[string]string {
	t.Helper()
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes %s: %v", url, err)
	}
	return out.Attributes
}

// deleteDataStack removes the stack and then the tables it retains by
// design (DeletionPolicy Retain and deletion protection).
func deleteDataStack(t *testing.T, cfg aws.Config, name string, physical map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfn := cloudformation.NewFromConfig(cfg)
	if _, err := cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(name)}); err != nil {
		t.Logf("cleanup: delete stack %s: %v", name, err)
	}
	ddb := dynamodb.NewFromConfig(cfg)
	for _, def := range schema.Tables {
		table := physical[def.ID+"Table"]
		if table == "" {
			continue
		}
		_, err := ddb.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(table), DeletionProtectionEnabled: aws.Bool(false)})
		if err == nil {
			_, err = ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		}
		var nf *ddbtypes.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			t.Logf("cleanup: delete retained table %s: %v", table, err)
		}
	}
}
