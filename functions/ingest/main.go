// Command ingest is the webhook edge Lambda function (API Gateway HTTP API,
// payload 2.0): configuration from the environment, AWS clients, the
// handler, lambda.Start. Everything else is in internal/ingest.
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
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := ingest.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	awsCfg, err := awsconfig.Load(context.Background(), awsconfig.Options{})
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	h := ingest.New(
		registry.New(dynamodb.NewFromConfig(awsCfg), cfg.RegistryTable),
		secrets.New(secretsmanager.NewFromConfig(awsCfg)),
		queue.NewSender(sqs.NewFromConfig(awsCfg), cfg.IntakeQueueURL),
		ingest.Options{CacheTTL: cfg.CacheTTL, Logger: log},
	)
	lambda.Start(h.HandleAPIGateway)
}
