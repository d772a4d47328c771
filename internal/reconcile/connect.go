package reconcile

import (
	"context"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/registry"
)

// Connections gives the reconciler each gateway's client from a
// connect.Pool (credentials, shared options and the gateway's budget),
// kept across runs of a warm function so an OAuth token is not fetched
// again every two minutes.
type Connections struct{ *connect.Pool }

var _ Connector = Connections{}

// Connect returns the gateway's client.
func (c Connections) Connect(ctx context.Context, gw registry.Gateway) (Querier, error) {
	client, err := c.Client(ctx, gw)
	if err != nil {
		return nil, err
	}
	return client, nil
}
