// Command processor is the intake queue's consumer (SQS batches with
// partial batch failures): settings, AWS clients, the pipeline. Everything
// else is in internal/pipeline.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/startup"
	"github.com/snowgate/snowgate/internal/state"
)

func main() {
	startup.Main(func(_ context.Context, k startup.Kit) (any, error) {
		env, err := pipeline.EnvFromGetenv(k.Getenv)
		if err != nil {
			return nil, err
		}
		db := dynamodb.NewFromConfig(k.AWS)
		sqsClient := sqs.NewFromConfig(k.AWS)
		p := pipeline.New(pipeline.Deps{
			Gateways:   registry.New(db, env.RegistryTable),
			Tickets:    state.New(db, env.StateTable).WithTicketTTL(env.TicketTTL),
			Dispatch:   queue.NewSender(sqsClient, env.DispatchQueueURL),
			ServiceNow: pipeline.Connections{Pool: connect.ForFunction(k.AWS, db, env.StateTable, env.MaxPause, k.Logger)},
			Queue:      sqsClient,
		}, pipeline.Config{
			QueueURL: env.IntakeQueueURL,
			Retry:    env.Retry,
			Logger:   k.Logger,
			Metrics:  metrics.New(k.Stdout),
		})
		return p.Handle, nil
	})
}
