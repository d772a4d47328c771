package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
)

// failingWebhooks is the registry with its webhook listing failing.
type failingWebhooks struct{ reconcile.Registry }

func (failingWebhooks) Webhooks(context.Context, string) ([]registry.Webhook, error) {
	return nil, errors.New("registry: throttled")
}

// A gateway whose webhooks cannot be read counts an error and says
// nothing of its lag: a lag of 0 would tell the lag alarm all is well.
func TestUnreadableWebhooksReportNoLag(t *testing.T) {
	e := newEnv(t, envOptions{})
	rr := e.reconcilerWith(failingWebhooks{registry.New(e.ddb, e.res.RegistryTable)}, reconcile.Config{})
	rep, err := rr.Run(context.Background(), reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() == 0 {
		t.Errorf("report %+v, want the failure counted", rep)
	}
	emf := e.emf.String()
	if !strings.Contains(emf, `"`+reconcile.MetricErrors+`":1`) {
		t.Errorf("no error metric in:\n%s", emf)
	}
	if strings.Contains(emf, `"`+reconcile.MetricLag+`"`) {
		t.Errorf("a lag was emitted for a gateway whose tables are unknown:\n%s", emf)
	}
}
