// Package provision creates snowgate's tables and queues from the schema
// definitions through the AWS SDK. make dev and the test harness use it
// against an emulator; in AWS the CDK stack builds the same resources.
package provision

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Resources names what Create made: the values every program receives as
// SNOWGATE_* environment variables.
type Resources struct {
	RegistryTable    string
	StateTable       string
	IntakeQueueURL   string
	IntakeDLQURL     string
	DispatchQueueURL string
	DispatchDLQURL   string
	ResultsQueueURL  string
	ResultsDLQURL    string
}

// Env returns the resources as SNOWGATE_* environment assignments.
func (r Resources) Env() map[string]string {
	return map[string]string{
		schema.EnvRegistryTable:    r.RegistryTable,
		schema.EnvStateTable:       r.StateTable,
		schema.EnvIntakeQueueURL:   r.IntakeQueueURL,
		schema.EnvIntakeDLQURL:     r.IntakeDLQURL,
		schema.EnvDispatchQueueURL: r.DispatchQueueURL,
		schema.EnvDispatchDLQURL:   r.DispatchDLQURL,
		schema.EnvResultsQueueURL:  r.ResultsQueueURL,
		schema.EnvResultsDLQURL:    r.ResultsDLQURL,
	}
}

// queueURLs lists every queue URL, main queues and dead-letter queues.
func (r Resources) queueURLs() []string {
	return []string{r.IntakeQueueURL, r.IntakeDLQURL, r.DispatchQueueURL, r.DispatchDLQURL, r.ResultsQueueURL, r.ResultsDLQURL}
}

// Create makes every table and queue, named prefix + the definition's id
// (for example "snowgate-dev-Registry"). Existing resources are reused, so
// Create is safe to run again.
func Create(ctx context.Context, cfg aws.Config, prefix string) (Resources, error) {
	ddb := dynamodb.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	var r Resources
	var err error
	if r.RegistryTable, err = CreateTable(ctx, ddb, prefix+schema.Registry.ID, schema.Registry); err != nil {
		return r, err
	}
	if r.StateTable, err = CreateTable(ctx, ddb, prefix+schema.State.ID, schema.State); err != nil {
		return r, err
	}
	if r.IntakeQueueURL, r.IntakeDLQURL, err = CreateQueue(ctx, q, prefix, schema.Intake); err != nil {
		return r, err
	}
	if r.DispatchQueueURL, r.DispatchDLQURL, err = CreateQueue(ctx, q, prefix, schema.Dispatch); err != nil {
		return r, err
	}
	if r.ResultsQueueURL, r.ResultsDLQURL, err = CreateQueue(ctx, q, prefix, schema.Results); err != nil {
		return r, err
	}
	return r, nil
}

// Delete removes what Create made; missing resources are not an error.
func Delete(ctx context.Context, cfg aws.Config, r Resources) error {
	ddb := dynamodb.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	var errs []error
	for _, name := range []string{r.RegistryTable, r.StateTable} {
		if name == "" {
			continue
		}
		_, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var nf *ddbtypes.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			errs = append(errs, fmt.Errorf("delete table %s: %w", name, err))
		}
	}
	for _, url := range r.queueURLs() {
		if url == "" {
			continue
		}
		_, err := q.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		var nf *sqstypes.QueueDoesNotExist
		if err != nil && !errors.As(err, &nf) {
			errs = append(errs, fmt.Errorf("delete queue %s: %w", url, err))
		}
	}
	return errors.Join(errs...)
}

// CreateTable creates one on-demand table (with its indexes and TTL) and waits
// until it is active. An existing table of that name is kept.
func CreateTable(ctx context.Context, ddb *dynamodb.Client, name string, t schema.Table) (string, error) {
	in := TableInput(name, t)
	_, err := ddb.CreateTable(ctx, in)
	var inUse *ddbtypes.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
	case err != nil:
		return "", fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(ddb, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return "", fmt.Errorf("wait for table %s: %w", name, err)
	}
	// A table that already existed keeps its TTL setting (AWS refuses to
	// enable it twice).
	if t.TTLAttribute != "" && inUse == nil {
		_, err := ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
				AttributeName: aws.String(t.TTLAttribute),
				Enabled:       aws.Bool(true),
			},
		})
		if err != nil {
			return "", fmt.Errorf("enable TTL on %s: %w", name, err)
		}
	}
	return name, nil
}

// TableInput is the CreateTable request for a definition.
func TableInput(name string, t schema.Table) *dynamodb.CreateTableInput {
	attrs := map[string]ddbtypes.ScalarAttributeType{}
	keySchema := func(pk schema.Key, sk *schema.Key) []ddbtypes.KeySchemaElement {
		attrs[pk.Name] = ddbtypes.ScalarAttributeType(pk.Type)
		ks := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(pk.Name), KeyType: ddbtypes.KeyTypeHash}}
		if sk != nil {
			attrs[sk.Name] = ddbtypes.ScalarAttributeType(sk.Type)
			ks = append(ks, ddbtypes.KeySchemaElement{AttributeName: aws.String(sk.Name), KeyType: ddbtypes.KeyTypeRange})
		}
		return ks
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		KeySchema:   keySchema(t.PartitionKey, t.SortKey),
	}
	for _, ix := range t.Indexes {
		proj := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll}
		if ix.Include != nil {
			proj = &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeInclude, NonKeyAttributes: ix.Include}
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  keySchema(ix.PartitionKey, ix.SortKey),
			Projection: proj,
		})
	}
	for name, typ := range attrs {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(name), AttributeType: typ,
		})
	}
	return in
}

// CreateQueue creates a queue and its dead-letter queue, named prefix+ID and
// prefix+ID+"DLQ", and returns both URLs.
func CreateQueue(ctx context.Context, q *sqs.Client, prefix string, def schema.Queue) (url, dlqURL string, err error) {
	dlq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(prefix + def.DLQID()),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameMessageRetentionPeriod): seconds(def.DLQRetention),
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", prefix+def.DLQID(), err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("get arn of %s: %w", *dlq.QueueUrl, err)
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`,
		attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], def.MaxReceiveCount)
	main, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(prefix + def.ID),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameVisibilityTimeout):      seconds(def.VisibilityTimeout),
			string(sqstypes.QueueAttributeNameMessageRetentionPeriod): seconds(def.Retention),
			string(sqstypes.QueueAttributeNameRedrivePolicy):          redrive,
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", prefix+def.ID, err)
	}
	return *main.QueueUrl, *dlq.QueueUrl, nil
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
