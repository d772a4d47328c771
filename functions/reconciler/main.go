// Command reconciler is the scheduled Lambda function (EventBridge,
// rate(2 minutes)) that enqueues the ServiceNow changes whose webhook never
// arrived and the change requests that have fallen due: configuration from
// the environment, AWS clients, the handler, lambda.Start. Everything else
// is in internal/reconcile.
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
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/watermark"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, err := reconcile.EnvFromGetenv(os.Getenv)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	awsCfg, err := awsconfig.Load(context.Background(), awsconfig.Options{})
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	r := reconcile.New(reconcile.Deps{
		Registry:   registry.New(ddb, env.RegistryTable),
		Tickets:    state.New(ddb, env.StateTable),
		Watermarks: watermark.New(ddb, env.StateTable),
		Intake:     queue.NewSender(sqs.NewFromConfig(awsCfg), env.IntakeQueueURL),
		Connector:  reconcile.NewConnector(secrets.New(secretsmanager.NewFromConfig(awsCfg))),
		Metrics:    metrics.New(os.Stdout),
		Logger:     log,
	}, env.Config)
	lambda.Start(r.Handle)
}
