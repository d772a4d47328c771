// Command reconciler is the scheduled Lambda function (EventBridge,
// rate(2 minutes)) that enqueues the ServiceNow changes whose webhook never
// arrived and the change requests that have fallen due: settings, AWS
// clients, the handler. Everything else is in internal/reconcile.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/startup"
	"github.com/snowgate/snowgate/internal/state"
	"github.com/snowgate/snowgate/internal/watermark"
)

func main() {
	startup.Main(func(_ context.Context, k startup.Kit) (any, error) {
		env, err := reconcile.EnvFromGetenv(k.Getenv)
		if err != nil {
			return nil, err
		}
		ddb := dynamodb.NewFromConfig(k.AWS)
		r := reconcile.New(reconcile.Deps{
			Registry:   registry.New(ddb, env.RegistryTable),
			Tickets:    state.New(ddb, env.StateTable),
			Watermarks: watermark.New(ddb, env.StateTable),
			Intake:     queue.NewSender(sqs.NewFromConfig(k.AWS), env.IntakeQueueURL),
			Connector:  reconcile.Connections{Pool: connect.ForFunction(k.AWS, ddb, env.StateTable, env.MaxPause, k.Logger)},
			Metrics:    metrics.New(k.Stdout),
			Logger:     k.Logger,
		}, env.Config)
		return r.Handle, nil
	})
}
