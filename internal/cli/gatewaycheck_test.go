package cli_test

import (
	"strings"
	"testing"

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

	if r := h.run("", "infra", "gateway", "check", "--id", "gtw_00000000-0000-4000-8000-000000000000"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("gateway check of an unknown id: exit %d, stderr %q", r.code, r.stderr)
	}
}
