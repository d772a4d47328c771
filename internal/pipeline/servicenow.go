package pipeline

import (
	"context"
	"errors"
	"net/http"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// Connections gives the pipeline each gateway's client from a
// connect.Pool: credentials, shared options and the gateway's budget.
type Connections struct{ *connect.Pool }

var _ Connector = Connections{}

// Connect returns the gateway's client.
func (c Connections) Connect(ctx context.Context, g registry.Gateway) (Instance, error) {
	client, err := c.Client(ctx, g)
	if err != nil {
		return nil, err
	}
	return client, nil
}

// withInstance runs f with the gateway's client, once more with freshly
// read credentials after an authentication failure (they may have been
// rotated). A journal write whose outcome is unknown is never sent again.
func (p *Processor) withInstance(ctx context.Context, g registry.Gateway, f func(Instance) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var inst Instance
		if inst, err = p.deps.ServiceNow.Connect(ctx, g); err != nil {
			return err
		}
		err = f(inst)
		if !isAuthFailure(err) || attempt > 0 || errors.Is(err, servicenow.ErrJournalUnconfirmed) {
			return err
		}
		p.deps.ServiceNow.Reset(g)
	}
	return err
}

func isAuthFailure(err error) bool {
	var se *servicenow.Error
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized
}
