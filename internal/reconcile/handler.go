package reconcile

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Handle is the scheduled function's handler: one run per EventBridge
// event. It fails only when the gateways cannot be listed; a gateway's
// failure is in the log and the metrics and is retried by the next tick.
func (r *Reconciler) Handle(ctx context.Context, _ events.EventBridgeEvent) error {
	var o Options
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		o.RequestID = lc.AwsRequestID
	}
	_, err := r.Run(ctx, o)
	return err
}
