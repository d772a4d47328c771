// Command writer is the results queue's consumer (SQS batches with partial
// batch failures): settings, AWS clients, the writer. Everything else is in
// internal/writer.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/startup"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/writer"
)

func main() {
	startup.Main(func(_ context.Context, k startup.Kit) (any, error) {
		env, err := writer.EnvFromGetenv(k.Getenv)
		if err != nil {
			return nil, err
		}
		db := dynamodb.NewFromConfig(k.AWS)
		w := writer.New(writer.Deps{
			Gateways:   registry.New(db, env.RegistryTable),
			Tickets:    state.New(db, env.StateTable),
			ServiceNow: writer.Connections{Pool: connect.ForFunction(k.AWS, db, env.StateTable, env.MaxPause, k.Logger)},
			Queue:      sqs.NewFromConfig(k.AWS),
		}, writer.Config{
			QueueURL: env.ResultsQueueURL,
			Retry:    env.Retry,
			Logger:   k.Logger,
			Metrics:  metrics.New(k.Stdout),
		})
		return w.Handle, nil
	})
}
