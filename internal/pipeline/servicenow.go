package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// Connections keeps one ServiceNow client per gateway across invocations,
// so connections, OAuth tokens and credentials read from Secrets Manager
// (cached by the secrets.Store) are reused. A change of the gateway's
// instance, secret or update time builds a new client.
type Connections struct {
	secrets *secrets.Store
	opts    []servicenow.Option

	mu      sync.Mutex
	clients map[string]connection // by gateway id
}

type connection struct {
	version string
	client  *servicenow.Client
}

// NewConnections returns Connections reading credentials through store and
// building clients with opts.
func NewConnections(store *secrets.Store, opts ...servicenow.Option) *Connections {
	return &Connections{secrets: store, opts: opts, clients: map[string]connection{}}
}

func connectionVersion(g registry.Gateway) string {
	return g.InstanceURL + "\n" + g.CredentialsSecretARN + "\n" + g.UpdatedAt.String()
}

// Connect returns the gateway's client, building it on first use.
func (c *Connections) Connect(ctx context.Context, g registry.Gateway) (Instance, error) {
	v := connectionVersion(g)
	c.mu.Lock()
	conn, ok := c.clients[g.ID]
	c.mu.Unlock()
	if ok && conn.version == v {
		return conn.client, nil
	}
	creds, err := servicenow.LoadCredentials(ctx, c.secrets, g.CredentialsSecretARN)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	auth, err := servicenow.AuthFromCredentials(creds)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	client, err := servicenow.New(g.InstanceURL, auth, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	c.mu.Lock()
	c.clients[g.ID] = connection{version: v, client: client}
	c.mu.Unlock()
	return client, nil
}

// Reset drops the gateway's client and its cached credentials.
func (c *Connections) Reset(g registry.Gateway) {
	c.mu.Lock()
	delete(c.clients, g.ID)
	c.mu.Unlock()
	c.secrets.Forget(g.CredentialsSecretARN)
}
