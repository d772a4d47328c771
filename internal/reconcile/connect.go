package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// ServiceNowConnector builds each gateway's ServiceNow client from its
// credentials secret and keeps it across runs of a warm function, so an
// OAuth token is not fetched again every two minutes. A client is rebuilt
// when the instance URL or the credentials change.
type ServiceNowConnector struct {
	secrets *secrets.Store
	opts    []servicenow.Option

	mu      sync.Mutex
	clients map[string]connected
}

type connected struct {
	fingerprint [32]byte
	client      *servicenow.Client
}

var _ Connector = (*ServiceNowConnector)(nil)

// NewConnector returns a connector reading credentials through s; opts go
// to every client.
func NewConnector(s *secrets.Store, opts ...servicenow.Option) *ServiceNowConnector {
	return &ServiceNowConnector{secrets: s, opts: opts, clients: map[string]connected{}}
}

// Connect returns the gateway's client.
func (c *ServiceNowConnector) Connect(ctx context.Context, gw registry.Gateway) (Querier, error) {
	creds, err := servicenow.LoadCredentials(ctx, c.secrets, gw.CredentialsSecretARN)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", gw.ID, err)
	}
	b, err := json.Marshal(struct {
		URL   string
		Creds registry.Credentials
	}{gw.InstanceURL, creds})
	if err != nil {
		return nil, fmt.Errorf("gateway %s: encode credentials: %w", gw.ID, err)
	}
	fp := sha256.Sum256(b)

	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.clients[gw.ID]; ok && cc.fingerprint == fp {
		return cc.client, nil
	}
	auth, err := servicenow.AuthFromCredentials(creds)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", gw.ID, err)
	}
	client, err := servicenow.New(gw.InstanceURL, auth, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", gw.ID, err)
	}
	c.clients[gw.ID] = connected{fingerprint: fp, client: client}
	return client, nil
}
