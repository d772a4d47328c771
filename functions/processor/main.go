// Command processor is the intake queue's consumer (SQS batches with
// partial batch failures): configuration from the environment, AWS clients,
// the pipeline, lambda.Start. Everything else is in internal/pipeline.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/state"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, err := pipeline.EnvFromGetenv(os.Getenv)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	awsCfg, err := awsconfig.Load(context.Background(), awsconfig.Options{})
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	db := dynamodb.NewFromConfig(awsCfg)
	p := pipeline.New(pipeline.Deps{
		Gateways:   registry.New(db, env.RegistryTable),
		Tickets:    state.New(db, env.StateTable),
		Dispatch:   queue.NewSender(sqs.NewFromConfig(awsCfg), env.DispatchQueueURL),
		ServiceNow: pipeline.NewConnections(secrets.New(secretsmanager.NewFromConfig(awsCfg))),
	}, pipeline.Config{
		FetchConcurrency: env.FetchConcurrency,
		Logger:           log,
		Metrics:          metrics.New(os.Stdout),
	})
	lambda.Start(p.Handle)
}
