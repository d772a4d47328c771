package writer_test

import (
	"context"
	"testing"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/writer"
)

// TestTamperedGatewayResultWaits: the gateway's registry item is pointed at
// a host that is not ServiceNow's, without the custom-host permission. The
// writer refuses to connect it (nothing is sent there, the credentials
// included), counts GatewayUntrusted, and the result is retried, not
// dropped: it is written once the item is put right.
func TestTamperedGatewayResultWaits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sysID, jobID := e.openJob("incident", incident())
	var instance string
	if _, err := e.gateways.UpdateGateway(ctx, e.gw, func(g *registry.Gateway) error {
		instance, g.InstanceURL = g.InstanceURL, "https://collector.example.net"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := result(jobID, queue.ResultInProgress)
	if failed := e.invoke(resultMessage(r)); len(failed) != 1 {
		t.Fatalf("batch failures %v, want the result back, to retry", failed)
	}
	if got := e.metric(connect.MetricUntrusted); got != 1 {
		t.Errorf("%s = %v, want 1", connect.MetricUntrusted, got)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 0 {
		t.Errorf("work notes = %q, want none", got.WorkNotes)
	}

	if _, err := e.gateways.UpdateGateway(ctx, e.gw, func(g *registry.Gateway) error { g.InstanceURL = instance; return nil }); err != nil {
		t.Fatal(err)
	}
	e.w = writer.New(e.deps, e.cfg) // a writer that has not cached the tampered item
	if failed := e.invoke(resultMessage(r)); len(failed) != 0 {
		t.Fatalf("after the repair: batch failures %v; logs:\n%s", failed, e.logs)
	}
	if got := e.written("incident", sysID); len(got.WorkNotes) != 1 {
		t.Errorf("work notes = %q, want the result's", got.WorkNotes)
	}
}
