// Package connect builds each gateway's ServiceNow client, the one home of
// that for the processor, the writer and the reconciler: the credentials
// from the gateway's secret, the options every function's client shares,
// and the gateway's budget (package budget) in front of every request the
// client sends.
//
// With a budget, each HTTP request — a call's first attempt, each retry,
// each OAuth token request — takes a token and a concurrency slot from the
// gateway's budget item first, shared by every invocation of every
// function, and reports its answer after, which learns the instance's
// limit and opens the gateway's circuit on a 429, an outage or a 401/403.
// A request the budget holds back fails with a *servicenow.GateError
// wrapping a *budget.DeniedError whose Until says when to try again: the
// caller defers its work to then (an SQS message's visibility) instead of
// sleeping. A wait that ends within Config.Wait (a token due in a moment,
// a slot about to be released) is waited out in process.
//
// # What a gateway item is trusted with
//
// The registry table says where a gateway's instance is and which secret
// holds its credentials, but whoever may write that table must not be able
// to send a gateway's credentials, or another gateway's, to a host of
// their choosing. Before any secret is read, Client checks (Check) that the
// gateway's credentials secret is the one named for it
// (schema.IsGatewaySecret, whatever the prefix: which prefixes a function
// may read is for IAM to say) and that its instance is a ServiceNow
// instance or loopback, unless it was registered with AllowCustomHost
// (servicenow.CustomHost). The secret, which the table's writers cannot
// change, names the instance its credentials are for (registration writes
// it, see registry.Credentials): once it is read, a gateway whose item
// names another instance is refused before anything is sent. A gateway
// that fails any of these gets an error wrapping ErrUntrusted, for the
// caller to count (MetricUntrusted) and to retry as it retries any failure
// it cannot cure itself: an operator has to correct the item, and the work
// waits for that.
package connect

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// ErrUntrusted is a gateway item Client refuses to connect: its
// credentials secret is not the one named for it, its instance is on a
// custom host it was not registered for, or is not the one its secret
// names (see the package comment).
var ErrUntrusted = errors.New("gateway not trusted")

// MetricUntrusted names the metric (a Count, by function) of the work a
// function could not do because its gateway was refused with ErrUntrusted.
const MetricUntrusted = "GatewayUntrusted"

// Check reports whether the gateway item may be connected: an error
// wrapping ErrUntrusted, naming the gateway and what was expected, when
// not. It reads nothing.
func Check(g registry.Gateway) error {
	if !schema.IsGatewaySecret(g.CredentialsSecretARN, g.ID) {
		return fmt.Errorf("gateway %s: %w: its credentials secret %q is not the one named for it (%s)",
			g.ID, ErrUntrusted, schema.SecretName(g.CredentialsSecretARN), schema.GatewaySecretName("<prefix>", g.ID))
	}
	if !g.AllowCustomHost && servicenow.CustomHost(g.InstanceURL) {
		return fmt.Errorf("gateway %s: %w: its instance URL %q is not a ServiceNow instance (<instance>.service-now.com, <instance>.servicenowservices.com) "+
			"and the gateway was not registered with --allow-custom-host", g.ID, ErrUntrusted, g.InstanceURL)
	}
	return nil
}

// DefaultWait is how long a request waits in process for a token or a slot
// before it is deferred: long enough for a batch a little over the burst
// to go through at the configured rate without a round trip through the
// queue, short against a function's 30 s timeout.
const DefaultWait = 2 * time.Second

// Config is what a Pool is built from.
type Config struct {
	// Secrets reads the gateways' credentials secrets.
	Secrets *secrets.Store
	// Budget, when set, admits every request (see the package comment);
	// nil sends requests unbudgeted (the CLI's checks of an instance).
	Budget *budget.Budget
	// Options go to every client. A client still waits out a short
	// Retry-After within its attempts (each attempt admitted by the
	// budget, which the 429 paused for every caller); a longer one ends
	// the call, to be deferred.
	Options []servicenow.Option
	// Wait is how long a request may wait in process for its budget;
	// default DefaultWait.
	Wait time.Duration
	// Logger receives budget writes that failed after a request (a slot
	// left to its lease, an answer not learnt from); default slog.Default.
	Logger *slog.Logger
}

// Pool keeps one client per gateway across invocations, so connections,
// OAuth tokens and credentials (cached by the secrets.Store) are reused. A
// change of the gateway's instance, credentials or budget settings builds
// a new client. It is safe for concurrent use.
type Pool struct {
	cfg Config

	mu      sync.Mutex
	clients map[string]entry // by gateway id
}

type entry struct {
	fingerprint [32]byte
	client      *servicenow.Client
}

// New returns a Pool.
func New(cfg Config) *Pool {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Pool{cfg: cfg, clients: map[string]entry{}}
}

// Client returns the gateway's client, building it when the gateway's
// instance, credentials or budget settings changed since the last call. A
// gateway item that fails Check gets its error, before its secret is read;
// one whose instance is not the one its secret names, after.
func (p *Pool) Client(ctx context.Context, g registry.Gateway) (*servicenow.Client, error) {
	if err := Check(g); err != nil {
		return nil, err
	}
	if p.cfg.Budget != nil && p.cfg.Budget.ProbeDue(g.ID) {
		// The probe of a gateway refused for its credentials or rights
		// goes with the secret as it is now: it may have been fixed.
		p.cfg.Secrets.Forget(g.CredentialsSecretARN)
	}
	creds, err := servicenow.LoadCredentials(ctx, p.cfg.Secrets, g.CredentialsSecretARN)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	if creds.InstanceURL != "" && creds.InstanceURL != g.InstanceURL {
		return nil, fmt.Errorf("gateway %s: %w: its instance URL %q is not the one its credentials secret is for (%q)", g.ID, ErrUntrusted, g.InstanceURL, creds.InstanceURL)
	}
	settings := g.BudgetSettings()
	b, err := json.Marshal(struct {
		URL      string
		Creds    registry.Credentials
		Settings budget.Settings
	}{g.InstanceURL, creds, settings})
	if err != nil {
		return nil, fmt.Errorf("gateway %s: encode credentials: %w", g.ID, err)
	}
	fp := sha256.Sum256(b)

	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.clients[g.ID]; ok && e.fingerprint == fp {
		return e.client, nil
	}
	auth, err := servicenow.AuthFromCredentials(creds)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	opts := p.cfg.Options
	if p.cfg.Budget != nil {
		opts = append(append([]servicenow.Option(nil), opts...),
			servicenow.WithGate(&gate{budget: p.cfg.Budget, gatewayID: g.ID, settings: settings, wait: p.cfg.Wait, log: p.cfg.Logger}))
	}
	client, err := servicenow.New(g.InstanceURL, auth, opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.ID, err)
	}
	p.clients[g.ID] = entry{fingerprint: fp, client: client}
	return client, nil
}

// Reset drops the gateway's client and its cached credentials, after an
// authentication failure, in case they were rotated.
func (p *Pool) Reset(g registry.Gateway) {
	p.mu.Lock()
	delete(p.clients, g.ID)
	p.mu.Unlock()
	p.cfg.Secrets.Forget(g.CredentialsSecretARN)
}
