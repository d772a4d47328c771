package cli_test

import (
	"strings"
	"testing"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// gateway create warns about a failed instance check and still succeeds;
// gateway check prints one line per check and exits 1.
func TestGatewayCheck(t *testing.T) {
	h := newHarness(t)
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser("svc", "pa55word"),
		snowsim.WithUserTimeZone("svc", "America/Los_Angeles"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	if _, err := sim.Sim.Insert("incident", map[string]string{"short_description": "disk full"}); err != nil {
		t.Fatal(err)
	}
	create := []string{"infra", "gateway", "create", "--name", "ops", "--instance-url", sim.URL,
		"--auth", "basic", "--username", "svc", "--password-stdin"}

	out := h.ok("pa55word\n", create...)
	for _, want := range []string{"Warning: 1 instance check(s) failed", "✗ time_zone", "America/Los_Angeles", "Fix: set the integration user's Time zone to UTC", "✓ credentials", "✓ query_canary"} {
		if !strings.Contains(out, want) {
			t.Errorf("gateway create output lacks %q:\n%s", want, out)
		}
	}
	id := field(t, out, "ID")

	r := h.run("", "infra", "gateway", "check", "--id", id)
	if r.code != 1 || !strings.Contains(r.stderr, "2501: gateway check: 1 check(s) failed: time_zone") {
		t.Errorf("gateway check: exit %d, stderr %q; want 1 naming time_zone", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, "\n  "); n != 9 || strings.Count(r.stdout, "✓") != 8 {
		t.Errorf("gateway check printed %d check lines (want 9, 8 of them ✓):\n%s", n, r.stdout)
	}

	out = h.ok("pa55word\n", append(create, "--skip-instance-checks")...)
	if strings.Contains(out, "instance check") || strings.Contains(out, "time_zone") {
		t.Errorf("gateway create --skip-instance-checks checked the instance:\n%s", out)
	}

	// Groups are resolved on the instance: a case near miss is refused
	// (exit 2, naming the flag and the name to type), the exact name is
	// stored with its sys_id; offline, the name is stored as typed.
	if err := sim.Sim.Seed(strings.NewReader(`{"sys_user_group": [{"sys_id": "` + snowsim.DemoGroupNetwork + `", "name": "Network"}]}`)); err != nil {
		t.Fatal(err)
	}
	r = h.run("pa55word\n", append(create, "--assignment-group-filter", "network")...)
	if r.code != 2 || !strings.Contains(r.stderr, `--assignment-group-filter: no group is named "network"; did you mean "Network"?`) {
		t.Errorf("gateway create with a case near miss: exit %d, stderr %q; want 2 and did you mean \"Network\"", r.code, r.stderr)
	}
	var g registry.Gateway
	h.json(&g, "pa55word\n", append(create, "--assignment-group-filter", "Network", "--escalation-group", snowsim.DemoGroupNetwork)...)
	if len(g.AssignmentGroupIDs) != 1 || g.AssignmentGroupIDs[0] != snowsim.DemoGroupNetwork || g.EscalationGroupID != snowsim.DemoGroupNetwork {
		t.Errorf("gateway create resolved the filter to %q, escalation to %q; want %s", g.AssignmentGroupIDs, g.EscalationGroupID, snowsim.DemoGroupNetwork)
	}
	out = h.ok("", "infra", "gateway", "show", "--id", g.ID)
	if !strings.Contains(out, "Network ("+snowsim.DemoGroupNetwork+")") || !strings.Contains(out, "assignment_groupIN"+snowsim.DemoGroupNetwork) {
		t.Errorf("gateway show lacks the resolved group:\n%s", out)
	}
	out = h.ok("pa55word\n", append(create, "--assignment-group-filter", "network", "--skip-instance-checks")...)
	if !strings.Contains(out, "Not checked against the instance") || !strings.Contains(out, "assignment_group.nameINnetwork") {
		t.Errorf("offline gateway create does not say what it stored:\n%s", out)
	}

	if r := h.run("", "infra", "gateway", "check", "--id", "gtw_00000000-0000-4000-8000-000000000000"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("gateway check of an unknown id: exit %d, stderr %q", r.code, r.stderr)
	}
}
