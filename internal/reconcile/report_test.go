package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
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

// A paused gateway's run stops its table passes without an error, skips
// the open-job watch and the stuck pass (they would only add to what waits
// for the pause), logs no error and counts the gateway as paused.
func TestPausedGatewayRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	b := budget.New(e.ddb, e.res.StateTable, budget.Options{})
	if err := b.Pause(ctx, e.gatewayID, time.Now().Add(time.Hour), budget.CauseOperator, "maintenance"); err != nil {
		t.Fatal(err)
	}
	rep, err := e.reconciler(reconcile.Config{}).Run(ctx, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() != 0 {
		t.Errorf("Failed() = %d, want 0: a held pass is not a failure", rep.Failed())
	}
	for _, res := range rep.Results {
		if res.Stopped != reconcile.StoppedBudget {
			t.Errorf("%s pass stopped %q, want %q", res.Table, res.Stopped, reconcile.StoppedBudget)
		}
	}
	for _, w := range rep.Watched {
		if w.Held == "" || w.Calls != 0 {
			t.Errorf("watch %+v, want held without calls", w)
		}
	}
	for _, s := range rep.Stuck {
		if s.Held == "" {
			t.Errorf("stuck pass %+v, want held", s)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("error lines for a paused gateway:\n%s", logs)
	}
	if emf := e.emf.String(); !strings.Contains(emf, `"`+budget.MetricPaused+`":1`) {
		t.Errorf("no %s in:\n%s", budget.MetricPaused, emf)
	}
}
