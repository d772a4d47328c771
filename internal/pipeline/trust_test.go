package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

// TestTamperedGatewayWaits: the gateway's registry item is changed, by
// someone who may write the table but not read secrets, to use another
// gateway's credentials secret. The processor refuses to connect it
// before any secret is read or any ServiceNow request sent: the message
// is retried on the usual backoff (not poison, not dead-lettered), the
// ticket says why, GatewayUntrusted counts it, and once an operator puts
// the item right the retried message is processed: the change is not lost.
func TestTamperedGatewayWaits(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	policy := redelivery.Policy{Base: 2 * time.Second, Cap: 2 * time.Second, Jitter: func(n int64) int64 { return n - 1 }}
	e.pacing(policy, nil)
	ctx := context.Background()
	reg := registry.New(e.ddb, e.res.RegistryTable)
	other, err := reg.Gateway(ctx, e.createGateway(registry.Gateway{Name: "other", Active: true}))
	if err != nil {
		t.Fatal(err)
	}
	own := setSecret(t, reg, e.gw, other.CredentialsSecretARN)

	sysID := e.insert("incident", incident("Tampered"))
	e.enqueue(intakeBody(t, e.gw, sysID))
	msgs := e.receiveIntake()
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	before := requests(e)
	if failed := e.invoke(ctx, msgs...); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the message, to retry", failed)
	}
	line := e.processed(msgs[0].MessageId)
	if line["retry"] != true || line["dead_letter"] != nil || line["retry_in_s"] != 2.0 {
		t.Errorf("log line %v: want a retry after the backoff (2 s), not a dead letter", line)
	}
	tk := e.ticket("incident", sysID)
	for _, want := range []string{connect.ErrUntrusted.Error(), e.gw, "gateways/" + other.ID} {
		if !strings.Contains(tk.Reason, want) {
			t.Errorf("ticket reason %q, want it to contain %q", tk.Reason, want)
		}
	}
	if strings.Contains(tk.Reason, snowPass) || strings.Contains(e.logs.String(), snowPass) {
		t.Error("the password is in the ticket or the logs")
	}
	if tk.Status != state.StatusRetrying {
		t.Errorf("ticket status %q, want %q", tk.Status, state.StatusRetrying)
	}
	if got := requests(e); got != before {
		t.Errorf("%d ServiceNow requests for the tampered gateway, want none", got-before)
	}
	if !strings.Contains(e.emf.String(), `"`+connect.MetricUntrusted+`":1`) {
		t.Errorf("no EMF line with %s=1 in %s", connect.MetricUntrusted, e.emf.String())
	}

	// The operator restores the item; the retry goes through.
	setSecret(t, reg, e.gw, own)
	e.pacing(policy, nil) // a processor that has not cached the tampered item
	again := e.awaitIntake(30 * time.Second)
	if len(again) != 1 {
		t.Fatal("the retried message did not come back after its backoff")
	}
	if failed := e.invoke(ctx, again...); len(failed) != 0 {
		t.Fatalf("after the repair: batch failures %v; logs:\n%s", failed, e.logs.String())
	}
	if jobs := e.jobs(); len(jobs) != 1 {
		t.Errorf("dispatched %d jobs, want 1", len(jobs))
	}
}

// setSecret writes arn as the gateway's credentials secret straight into
// its registry item, as a hand edit of the table would, and returns the
// one it had.
func setSecret(t *testing.T, reg *registry.Store, id, arn string) string {
	t.Helper()
	var was string
	if _, err := reg.UpdateGateway(context.Background(), id, func(g *registry.Gateway) error {
		was, g.CredentialsSecretARN = g.CredentialsSecretARN, arn
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return was
}

// requests counts the HTTP requests the simulator answered.
func requests(e *env) int {
	n := 0
	for _, c := range e.sim.Sim.Stats().Requests {
		n += c
	}
	return n
}
