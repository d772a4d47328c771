// Command ingest is the webhook edge Lambda function (API Gateway HTTP API
// or a function URL, payload 2.0): settings, AWS clients, the handler.
// Everything else is in internal/ingest.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/startup"
)

func main() {
	startup.Main(func(_ context.Context, k startup.Kit) (any, error) {
		env, err := ingest.EnvFromGetenv(k.Getenv)
		if err != nil {
			return nil, err
		}
		ddb := dynamodb.NewFromConfig(k.AWS)
		h := ingest.New(
			registry.New(ddb, env.RegistryTable),
			secrets.New(secretsmanager.NewFromConfig(k.AWS)),
			queue.NewSender(sqs.NewFromConfig(k.AWS), env.IntakeQueueURL),
			ingest.Options{
				CacheTTL:     env.CacheTTL,
				Tolerance:    env.Tolerance,
				Replays:      replay.New(ddb, env.StateTable),
				Metrics:      metrics.New(k.Stdout),
				Logger:       k.Logger,
				OriginSecret: env.OriginSecret,
			},
		)
		return h.HandleAPIGateway, nil
	})
}
