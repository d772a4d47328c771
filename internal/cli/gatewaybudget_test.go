package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/schema"
)

// budgets returns the budget over the harness's state table, on its clock:
// what the functions draw on.
func (h *harness) budgets() *budget.Budget {
	return budget.New(dynamodb.NewFromConfig(h.cfg), h.env[schema.EnvStateTable], budget.Options{Now: h.clock})
}

// row is a line of gateway show's text output.
func row(label, value string) string { return fmt.Sprintf("  %-17s %s\n", label+":", value) }

// gatewayBudget is the budget settings of gateway show --output json.
type gatewayBudget struct {
	ID               string `json:"id"`
	RateLimitPerHour int    `json:"rate_limit_per_hour"`
	Burst            int    `json:"burst"`
	MaxConcurrency   int    `json:"max_concurrency"`
}

func TestGatewayBudgetSettings(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	settings := func(id string) gatewayBudget {
		t.Helper()
		var v gatewayBudget
		h.json(&v, "", "infra", "gateway", "show", "--id", id)
		return v
	}
	stored := func(id string) (rate, concurrency int) {
		t.Helper()
		g, err := h.store().Gateway(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return g.RateLimitPerHour, g.MaxConcurrency
	}

	plain := h.gateway("plain", "--skip-instance-checks")
	if r, c := stored(plain.ID); r != 0 || c != 0 {
		t.Errorf("a gateway created without budget flags stores rate %d, concurrency %d; want 0 and 0 (the defaults)", r, c)
	}
	if diff := cmp.Diff(gatewayBudget{plain.ID, budget.DefaultRatePerHour, budget.DefaultBurst, budget.DefaultMaxConcurrency}, settings(plain.ID)); diff != "" {
		t.Errorf("show of a gateway with the defaults (-want +got):\n%s", diff)
	}
	out := h.ok("", "infra", "gateway", "show", "--id", plain.ID)
	for _, want := range []string{row("Rate limit", "3600 requests/h (default), burst 20"), row("Concurrency", "2 requests at once (default)")} {
		if !strings.Contains(out, want) {
			t.Errorf("show of a gateway with the defaults lacks %q:\n%s", want, out)
		}
	}

	small := h.gateway("small", "--skip-instance-checks", "--rate-limit", "120/h", "--max-concurrency", "1")
	if r, c := stored(small.ID); r != 120 || c != 1 {
		t.Errorf("created with --rate-limit 120/h --max-concurrency 1: stored rate %d, concurrency %d", r, c)
	}
	if diff := cmp.Diff(gatewayBudget{small.ID, 120, 12, 1}, settings(small.ID)); diff != "" {
		t.Errorf("show of a small gateway: a tenth of the rate as burst (-want +got):\n%s", diff)
	}

	steps := []struct {
		name     string
		flags    []string
		rate, cc int // stored
		text     []string
	}{
		{"rate per hour, spelled out", []string{"--rate-limit", "1000/hour"}, 1000, 1,
			[]string{row("Rate limit", "1000 requests/h, burst 20"), row("Concurrency", "1 request at a time")}},
		{"concurrency back to the default", []string{"--max-concurrency", "0"}, 1000, 0,
			[]string{row("Concurrency", "2 requests at once (default)")}},
		{"an unrelated change keeps them", []string{"--description", "renamed"}, 1000, 0, nil},
		{"both", []string{"--rate-limit", "500/h", "--max-concurrency", "8"}, 500, 8,
			[]string{row("Rate limit", "500 requests/h, burst 20"), row("Concurrency", "8 requests at once")}},
		{"rate back to the default", []string{"--rate-limit", "default"}, 0, 8,
			[]string{row("Rate limit", "3600 requests/h (default), burst 20")}},
	}
	for _, st := range steps {
		out := h.ok("", append([]string{"infra", "gateway", "update", "--id", small.ID}, st.flags...)...)
		if r, c := stored(small.ID); r != st.rate || c != st.cc {
			t.Errorf("%s: stored rate %d, concurrency %d; want %d, %d", st.name, r, c, st.rate, st.cc)
		}
		for _, want := range st.text {
			if !strings.Contains(out, want) {
				t.Errorf("%s: update's output lacks %q:\n%s", st.name, want, out)
			}
		}
	}
}

func TestGatewayShowBudget(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	g := h.gateway("prod", "--skip-instance-checks", "--max-concurrency", "3")
	stored, err := h.store().Gateway(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := h.budgets()

	t.Run("never drawn on", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "show", "--id", g.ID)
		for _, want := range []string{row("Budget now", "20 of 20 tokens, 0 of 3 slots in use"), row("Paused", "no")} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Learned limit:") {
			t.Errorf("show of a gateway whose instance never sent a limit has a learned limit:\n%s", out)
		}
	})

	// The instance sends a limit below the rate, a request holds a slot and
	// its tokens, then the instance says later.
	if err := b.Observe(ctx, g.ID, stored.BudgetSettings(), budget.RateLimit{Limit: 1000, Remaining: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, g.ID, stored.BudgetSettings(), 5); err != nil {
		t.Fatal(err)
	}
	now := h.clock()
	until := now.Add(90 * time.Minute)
	if err := b.Pause(ctx, g.ID, until, budget.CauseRateLimited, "429 until 2026-03-01T13:30:00Z"); err != nil {
		t.Fatal(err)
	}

	t.Run("text", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "show", "--id", g.ID)
		for _, want := range []string{
			row("Rate limit", "3600 requests/h (default), burst 20"),
			row("Concurrency", "3 requests at once"),
			row("Budget now", "15 of 20 tokens, 1 of 3 slots in use"),
			row("Learned limit", "1000/h from the instance (X-RateLimit-Limit, 2026-03-01T12:00:00Z): 980/h in force, burst 20"),
			row("Paused", "until 2026-03-01T13:30:00Z (in 1h30m0s): rate_limited, 429 until 2026-03-01T13:30:00Z; since 2026-03-01T12:00:00Z"),
			"to lift it now: 2501 infra gateway resume --id " + g.ID + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		var v struct {
			Budget            map[string]any `json:"budget"`
			BudgetUnavailable *string        `json:"budget_unavailable"`
		}
		h.json(&v, "", "infra", "gateway", "show", "--id", g.ID)
		want := map[string]any{
			"rate_per_hour": 980.0, "burst": 20.0, "learned_limit_per_hour": 1000.0, "learned_at": "2026-03-01T12:00:00Z",
			"tokens": 15.0, "max_concurrency": 3.0, "slots_in_use": 1.0,
			"paused": true, "paused_until": "2026-03-01T13:30:00Z", "paused_at": "2026-03-01T12:00:00Z",
			"pause_cause": "rate_limited", "pause_reason": "429 until 2026-03-01T13:30:00Z", "consecutive_failures": 0.0,
		}
		if diff := cmp.Diff(want, v.Budget); diff != "" {
			t.Errorf("show --output json budget (-want +got):\n%s", diff)
		}
		if v.BudgetUnavailable != nil {
			t.Errorf("budget_unavailable = %q next to a budget", *v.BudgetUnavailable)
		}
	})

	t.Run("tokens come back", func(t *testing.T) {
		// 980/h is a token every 3674 ms: 18 s give back 4.9 of the 5
		// taken, shown rounded down.
		h.advance(18 * time.Second)
		out := h.ok("", "infra", "gateway", "show", "--id", g.ID)
		if want := row("Budget now", "19.8 of 20 tokens, 1 of 3 slots in use"); !strings.Contains(out, want) {
			t.Errorf("show 18 s later lacks %q:\n%s", want, out)
		}
	})

	t.Run("resume", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "resume", "--id", g.ID)
		want := "Gateway " + g.ID + " (prod) resumed: lifted its pause until 2026-03-01T13:30:00Z (rate_limited: 429 until 2026-03-01T13:30:00Z).\n"
		if !strings.HasPrefix(out, want) {
			t.Errorf("resume printed %q, want it to start %q", out, want)
		}
		st, err := b.Status(ctx, g.ID, stored.BudgetSettings())
		if err != nil {
			t.Fatal(err)
		}
		if st.Paused || st.SlotsInUse != 1 {
			t.Errorf("after resume: paused %v, %d slots in use; want not paused, the slot still held", st.Paused, st.SlotsInUse)
		}
		if out := h.ok("", "infra", "gateway", "show", "--id", g.ID); !strings.Contains(out, row("Paused", "no")) || strings.Contains(out, "gateway resume") {
			t.Errorf("show after resume:\n%s", out)
		}
		again := h.ok("", "infra", "gateway", "resume", "--id", g.ID)
		if want := "Gateway " + g.ID + " (prod) is not paused: nothing to lift.\n"; again != want {
			t.Errorf("a second resume printed %q, want %q", again, want)
		}
	})

	t.Run("auth pause waits for a probe", func(t *testing.T) {
		if _, err := b.Trip(ctx, g.ID, budget.CauseAuth, "401 Unauthorized"); err != nil {
			t.Fatal(err)
		}
		out := h.ok("", "infra", "gateway", "show", "--id", g.ID)
		if want := strings.TrimSuffix(row("Paused", "until a probe succeeds, the next at "), "\n"); !strings.Contains(out, want) || !strings.Contains(out, ": auth, 401 Unauthorized (1 in a row)") {
			t.Errorf("show of an auth pause lacks %q and its cause:\n%s", want, out)
		}
		var res struct {
			Resumed  bool   `json:"resumed"`
			Cause    string `json:"pause_cause"`
			Probe    bool   `json:"probe_required"`
			Failures int    `json:"consecutive_failures"`
		}
		h.json(&res, "", "infra", "gateway", "resume", "--id", g.ID)
		if !res.Resumed || res.Cause != "auth" || !res.Probe || res.Failures != 1 {
			t.Errorf("resume of an auth pause = %+v, want the auth pause lifted, its probe and its one failure reported", res)
		}
		st, err := b.Status(ctx, g.ID, stored.BudgetSettings())
		if err != nil {
			t.Fatal(err)
		}
		if st.Paused || st.ProbeRequired || st.Failures != 0 {
			t.Errorf("after resume: %+v, want no pause, no probe, no failures", st)
		}
	})
}

func TestGatewayShowBudgetUnavailable(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("prod", "--skip-instance-checks", "--rate-limit", "600/h")
	tests := []struct {
		name   string
		env    map[string]string
		flags  []string
		reason string
	}{
		{"table not found", nil, []string{"--state-table", "no-such-table"}, `DynamoDB table not found (registry table "` + h.table + `", state table "no-such-table")`},
		{"no state table anywhere", map[string]string{schema.EnvStateTable: ""}, nil, "no state table: set --state-table or SNOWGATE_STATE_TABLE, or deploy the stack"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = h.env[k]
				h.env[k] = v
			}
			defer func() {
				for k, v := range saved {
					h.env[k] = v
				}
			}()
			args := append([]string{"infra", "gateway", "show", "--id", g.ID}, tc.flags...)
			out := h.ok("", args...)
			for _, want := range []string{row("Rate limit", "600 requests/h, burst 20"), strings.TrimSuffix(row("Budget now", "unavailable ("), "\n") + tc.reason} {
				if !strings.Contains(out, want) {
					t.Errorf("show lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "Paused:") {
				t.Errorf("show claims a pause state it could not read:\n%s", out)
			}
			var v struct {
				gatewayBudget
				Budget      map[string]any `json:"budget"`
				Unavailable string         `json:"budget_unavailable"`
			}
			h.json(&v, "", args...)
			if v.Budget != nil || !strings.Contains(v.Unavailable, tc.reason) || v.RateLimitPerHour != 600 {
				t.Errorf("show --output json: budget %v, budget_unavailable %q, rate %d; want no budget, the reason, the settings", v.Budget, v.Unavailable, v.RateLimitPerHour)
			}
			r := h.run("", "infra", "gateway", "resume", "--id", g.ID, "--state-table", "no-such-table")
			if r.code != 1 || !strings.Contains(r.stderr, "DynamoDB table not found") {
				t.Errorf("resume without its state table: exit %d, %q; want 1 and the missing table", r.code, r.stderr)
			}
		})
	}
}
