package snowsim_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// The ECC queue tests follow ServiceNow's "Asynchronous SOAPMessageV2
// example" and "RESTMessageV2 MID Server example" (API reference, Web
// services): an executeAsync call does not go out from the script; its
// request and response pass through the ECC queue, so it is sent later,
// and nothing orders or de-duplicates the calls for the receiver.

func TestECCQueueDelay(t *testing.T) {
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc, snowsim.WithECCQueue(snowsim.ECCQueue{Delay: 300 * time.Millisecond}))
	start := time.Now()
	call(t, "PATCH", srv.URL+"/api/now/table/incident/00000000000000000000000000000004", map[string]any{"priority": "2"})
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver got %d webhooks as the PATCH returned, want 0 (still queued)", n)
	}
	waitOutbound(t, sim)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("webhook delivered after %v, want at least the queue delay of 300ms", d)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d webhooks, want 1", n)
	}
}

func TestECCQueueResend(t *testing.T) {
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc, snowsim.WithECCQueue(snowsim.ECCQueue{Delay: time.Millisecond, ResendRate: 1, Seed: 3}))
	call(t, "PATCH", srv.URL+"/api/now/table/incident/00000000000000000000000000000004", map[string]any{"priority": "2"})
	waitOutbound(t, sim)
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d webhooks, want the call and its resend", len(got))
	}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Secret"} {
		if got[0].Header.Get(h) != got[1].Header.Get(h) {
			t.Errorf("resend %s = %q, first send %q: want the same", h, got[1].Header.Get(h), got[0].Header.Get(h))
		}
	}
	if got[0].Body != got[1].Body {
		t.Errorf("resend body %q, first %q: want the same", got[1].Body, got[0].Body)
	}
	if st := sim.Stats(); st.OutboundResent != 1 || st.OutboundAttempted != 2 {
		t.Errorf("Stats: OutboundResent %d OutboundAttempted %d, want 1 and 2", st.OutboundResent, st.OutboundAttempted)
	}
}

func TestECCQueueOutOfOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc, snowsim.WithECCQueue(snowsim.ECCQueue{Jitter: time.Second, Seed: 7}))
	const n = 8
	for i := range n {
		call(t, "PATCH", srv.URL+"/api/now/table/incident/00000000000000000000000000000004",
			map[string]any{"short_description": fmt.Sprintf("update %d", i)})
	}
	waitOutbound(t, sim)
	var versions []int
	for _, r := range rc.requests() {
		var body map[string]string
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.Atoi(body["sys_mod_count"])
		versions = append(versions, v)
	}
	if len(versions) != n {
		t.Fatalf("receiver got %d webhooks, want %d", len(versions), n)
	}
	if slices.IsSorted(versions) {
		t.Errorf("webhooks arrived in version order %v with a 1s jitter, want some out of order", versions)
	}
}
