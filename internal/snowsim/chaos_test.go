package snowsim_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestOutboundFaults(t *testing.T) {
	tests := []struct {
		name      string
		faults    snowsim.OutboundFaults
		wantCalls int // of 20 inserts
	}{
		{"every call dropped", snowsim.OutboundFaults{DropRate: 1}, 0},
		{"none dropped", snowsim.OutboundFaults{}, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			sim, srv := webhookSim(t, rc)
			sim.SetOutboundFaults(tc.faults)
			for i := range 20 {
				call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": fmt.Sprint("Outage ", i), "assignment_group": groupNetwork})
			}
			waitOutbound(t, sim)
			if n := len(rc.requests()); n != tc.wantCalls {
				t.Errorf("receiver got %d webhooks, want %d", n, tc.wantCalls)
			}
			st := sim.Stats()
			if st.RulesFired != 20 || st.OutboundAttempted != 20 || st.OutboundFailed != 20-tc.wantCalls {
				t.Errorf("Stats = rules %d, attempted %d, failed %d; want 20, 20, %d",
					st.RulesFired, st.OutboundAttempted, st.OutboundFailed, 20-tc.wantCalls)
			}
		})
	}
}

// TestOutboundFaultsRate: a seeded rate drops some calls and lets the
// rest through, the same ones on every run.
func TestOutboundFaultsRate(t *testing.T) {
	dropped := func() []int {
		rc := newReceiver(t, nil)
		sim, srv := webhookSim(t, rc)
		sim.SetOutboundFaults(snowsim.OutboundFaults{Seed: 7, DropRate: 0.5})
		var lost []int
		for i := range 20 {
			before := sim.Stats().OutboundFailed
			call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": fmt.Sprint("Outage ", i), "assignment_group": groupNetwork})
			waitOutbound(t, sim)
			if sim.Stats().OutboundFailed > before {
				lost = append(lost, i)
			}
		}
		if len(lost) == 0 || len(lost) == 20 || len(rc.requests()) != 20-len(lost) {
			t.Errorf("DropRate 0.5: %d of 20 lost, receiver got %d; want some lost and the rest delivered", len(lost), len(rc.requests()))
		}
		return lost
	}
	if diff := cmp.Diff(dropped(), dropped()); diff != "" {
		t.Errorf("same seed, different calls dropped (-first +second):\n%s", diff)
	}
}

func TestReadFaults(t *testing.T) {
	const rec = "/api/now/table/incident/00000000000000000000000000000004"
	tests := []struct {
		name   string
		faults snowsim.ReadFaults
		want   []int // statuses of four reads of one record
		picked []string
	}{
		{"picked, three failures", snowsim.ReadFaults{Rate: 1, Failures: 3}, []int{500, 500, 500, 200}, []string{"incident/00000000000000000000000000000004"}},
		{"picked, default one failure", snowsim.ReadFaults{Rate: 1}, []int{500, 200, 200, 200}, []string{"incident/00000000000000000000000000000004"}},
		{"off", snowsim.ReadFaults{}, []int{200, 200, 200, 200}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, srv := start(t)
			sim.SetReadFaults(tc.faults)
			var got []int
			for range 4 {
				got = append(got, call(t, "GET", srv.URL+rec, nil).Status)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("read statuses (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.picked, sim.ReadFaulted()); diff != "" {
				t.Errorf("ReadFaulted (-want +got):\n%s", diff)
			}
			// Queries are not single-record reads: never failed.
			if r := call(t, "GET", srv.URL+"/api/now/table/incident?sysparm_limit=1", nil); r.Status != 200 {
				t.Errorf("query with read faults: status %d, want 200", r.Status)
			}
		})
	}
}

// TestReadFaultsReset: SetReadFaults forgets the records already picked.
func TestReadFaultsReset(t *testing.T) {
	const rec = "/api/now/table/incident/00000000000000000000000000000004"
	sim, srv := start(t)
	sim.SetReadFaults(snowsim.ReadFaults{Rate: 1})
	if r := call(t, "GET", srv.URL+rec, nil); r.Status != 500 {
		t.Fatalf("first read: status %d, want 500", r.Status)
	}
	sim.SetReadFaults(snowsim.ReadFaults{Rate: 1})
	if r := call(t, "GET", srv.URL+rec, nil); r.Status != 500 {
		t.Errorf("first read after SetReadFaults: status %d, want 500 again", r.Status)
	}
}
