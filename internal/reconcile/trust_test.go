package reconcile_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/watermark"
)

// TestTamperedGatewayIsNotReconciled: a gateway item pointed at another
// gateway's credentials secret is not connected: its pass ends on
// ErrUntrusted before any request, nothing is enqueued, the watermark
// stays, and the run counts the gateway in GatewayUntrusted.
func TestTamperedGatewayIsNotReconciled(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.insert(nil)
	other := e.addGateway("other", e.srv.URL, "")
	reg := registry.New(e.ddb, e.res.RegistryTable)
	og, err := reg.Gateway(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.UpdateGateway(ctx, e.gatewayID, func(g *registry.Gateway) error {
		g.CredentialsSecretARN = og.CredentialsSecretARN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	e.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		calls.Add(1)
		next.ServeHTTP(w, r)
	}

	res := e.run(e.reconciler(reconcile.Config{}), reconcile.Options{})
	if !errors.Is(res.Err, connect.ErrUntrusted) || res.Stopped != reconcile.StoppedError || res.Done {
		t.Fatalf("result %+v, want the pass stopped on ErrUntrusted", res)
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("instance received %d requests, want none", got)
	}
	if msgs := e.drain(); len(msgs) != 0 {
		t.Errorf("enqueued %d messages, want none", len(msgs))
	}
	if m, err := e.marks.Get(ctx, e.gatewayID, registry.TableIncident); !errors.Is(err, watermark.ErrNotFound) {
		t.Errorf("watermark %+v, %v; want none", m, err)
	}
	if emf := e.emf.String(); !strings.Contains(emf, `"`+connect.MetricUntrusted+`":1`) {
		t.Errorf("EMF lines lack %s=1:\n%s", connect.MetricUntrusted, emf)
	}
}
