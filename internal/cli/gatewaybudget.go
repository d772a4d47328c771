package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
)

func init() {
	Register(gatewayResume)
}

// budgetFlagsUsage is the synopsis of the budget flags.
const budgetFlagsUsage = "[--rate-limit N/h] [--max-concurrency N]"

// registerBudget declares the budget flags of gateway create and update.
func (f *gatewayFlags) registerBudget(fs *pflag.FlagSet) {
	fs.StringVar(&f.rateLimit, "rate-limit", "", fmt.Sprintf("ServiceNow requests an hour for this gateway, across every function: N/h or N/hour, 1 to %d "+
		"(default %d/h; \"%s\" goes back to it), with a burst of a tenth of N, at most %d, on top",
		budget.MaxRatePerHour, budget.DefaultRatePerHour, registration.RateLimitDefault, budget.DefaultBurst))
	fs.IntVar(&f.maxConcurrency, "max-concurrency", 0, fmt.Sprintf("ServiceNow requests in flight at once for this gateway, 1 to %d (default %d; 0 goes back to it)",
		budget.MaxMaxConcurrency, budget.DefaultMaxConcurrency))
}

// budgetChanges are the budget settings given on the command line.
func (f *gatewayFlags) budgetChanges(c *Call, ch *registration.GatewayChanges) error {
	if c.Set("rate-limit") {
		n, err := registration.ParseRateLimit(f.rateLimit)
		if err != nil {
			return usage(err)
		}
		ch.RateLimitPerHour = &n
	}
	if c.Set("max-concurrency") {
		ch.MaxConcurrency = &f.maxConcurrency
	}
	return nil
}

// budgets returns the ServiceNow budgets over the resolved state table.
func budgets(ctx context.Context, c *Call) (*budget.Budget, error) {
	table, err := c.StateTable(ctx)
	if err != nil {
		return nil, err
	}
	db, err := c.DynamoDB(ctx)
	if err != nil {
		return nil, err
	}
	return budget.New(db, table, budget.Options{Now: c.Now}), nil
}

// budgetLive is a gateway's budget as gateway show found it: its status,
// or why it could not be read.
type budgetLive struct {
	status      *budget.Status
	unavailable string
}

// readBudget reads the gateway's budget now. A state table that cannot be
// found or read does not fail gateway show: the settings are the
// registry's, and only the live status is missing.
func readBudget(ctx context.Context, c *Call, g registry.Gateway) budgetLive {
	b, err := budgets(ctx, c)
	if err == nil {
		var st budget.Status
		if st, err = b.Status(ctx, g.ID, g.BudgetSettings()); err == nil {
			return budgetLive{status: &st}
		}
	}
	return budgetLive{unavailable: oneLine(c.Explain(err).Error())}
}

// writeBudgetSettings writes the gateway's budget settings, defaults
// applied and named.
func writeBudgetSettings(line func(label string, v any), g registry.Gateway) {
	s := g.BudgetSettings().WithDefaults()
	rate := fmt.Sprintf("%d requests/h", s.RatePerHour)
	if g.RateLimitPerHour <= 0 {
		rate += " (default)"
	}
	line("Rate limit", rate+fmt.Sprintf(", burst %d", s.Burst))
	concurrency := fmt.Sprintf("%d requests at once", s.MaxConcurrency)
	if s.MaxConcurrency == 1 {
		concurrency = "1 request at a time"
	}
	if g.MaxConcurrency <= 0 {
		concurrency += " (default)"
	}
	line("Concurrency", concurrency)
}

// writeBudgetLive writes what the budget holds now: tokens and slots, what
// the instance taught it, and any pause with how to lift it.
func writeBudgetLive(w io.Writer, line func(label string, v any), id string, live budgetLive, now time.Time) {
	st := live.status
	if st == nil {
		line("Budget now", "unavailable ("+live.unavailable+"); the settings above apply")
		return
	}
	line("Budget now", fmt.Sprintf("%s of %d tokens, %d of %d slots in use", tokens(st.Tokens), st.Burst, st.SlotsInUse, st.MaxConcurrency))
	if st.LearnedLimit > 0 {
		learned := fmt.Sprintf("%d/h from the instance (X-RateLimit-Limit", st.LearnedLimit)
		if !st.LearnedAt.IsZero() {
			learned += ", " + st.LearnedAt.UTC().Format(time.RFC3339)
		}
		learned += ")"
		if st.Rate < st.ConfiguredRate {
			learned += fmt.Sprintf(": %d/h in force, burst %d", st.Rate, st.Burst)
		} else {
			learned += ": the rate limit stays in force"
		}
		line("Learned limit", learned)
	}
	switch {
	case !st.Paused && st.Failures > 0:
		line("Paused", fmt.Sprintf("no (%d failures in a row)", st.Failures))
	case !st.Paused:
		line("Paused", "no")
	default:
		until := "until " + when(st.PausedUntil, now)
		if st.ProbeRequired {
			until = "until a probe succeeds, the next at " + when(st.PausedUntil, now)
		}
		paused := until + ": " + string(st.PauseCause)
		if st.PauseReason != "" {
			paused += ", " + st.PauseReason
		}
		if !st.PausedAt.IsZero() {
			paused += "; since " + st.PausedAt.UTC().Format(time.RFC3339)
		}
		line("Paused", paused)
		fmt.Fprintf(w, "  %-17s to lift it now: %s infra gateway resume --id %s\n", "", Name, id)
	}
}

// tokens prints a token count to a tenth, rounded down (as it could be
// taken).
func tokens(t float64) string {
	return strconv.FormatFloat(math.Floor(t*10)/10, 'f', -1, 64)
}

// when is an RFC 3339 time with how far from now it is.
func when(t, now time.Time) string {
	s := t.UTC().Format(time.RFC3339)
	if d := t.Sub(now).Round(time.Second); d > 0 {
		s += " (in " + d.String() + ")"
	}
	return s
}

var gatewayResume = Command{
	Path:  "infra gateway resume",
	Short: "lift a gateway's pause now: requests to its ServiceNow instance go again",
	Usage: "--id <gtw_…>",
	Long: `A gateway is paused when its instance says "later" (429 with Retry-After or
X-RateLimit-Reset: rate_limited), when its API queue is full (429 without
Retry-After: overloaded), after repeated 5xx answers or timeouts
(unavailable), or when its credentials or roles are refused (401 or 403:
auth, until a probe succeeds). gateway show prints the pause: until when,
its cause and reason. While paused, the processor, the reconciler and the
writer hold the gateway's messages until the pause ends instead of spending
their retries; other gateways are not slowed.

resume ends the pause at once, whatever its cause, and resets the count of
consecutive failures. Use it once the cause is fixed (new credentials or
roles, an instance back up, a raised rate limit rule); a pause that is
lifted while the cause remains comes back with the next failed request.
A gateway that is not paused is left as it is.`,
	Example: "2501 infra gateway resume --id gtw_0b7c…\n2501 infra gateway resume --id gtw_0b7c… --output json",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "gateway id (required)")
		return func(ctx context.Context, c *Call) error {
			if err := checkGatewayID("id", *id); err != nil {
				return err
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			g, err := store.Gateway(ctx, *id)
			if err != nil {
				return notFound(err, "gateway", *id)
			}
			b, err := budgets(ctx, c)
			if err != nil {
				return err
			}
			before, err := b.Status(ctx, g.ID, g.BudgetSettings())
			if err != nil {
				return err
			}
			// Nothing to lift or reset: no write, so a gateway that never
			// drew on its budget gets no budget item from this.
			if before.Paused || before.Failures > 0 {
				if err := b.Resume(ctx, g.ID); err != nil {
					return err
				}
			}
			return c.Print(gatewayResumedOutput(g.ID, before), func(w io.Writer) {
				if !before.Paused {
					fmt.Fprintf(w, "Gateway %s (%s) is not paused: nothing to lift.\n", g.ID, g.Name)
					if before.Failures > 0 {
						fmt.Fprintf(w, "Its count of %d failures in a row starts again.\n", before.Failures)
					}
					return
				}
				what := "its pause until " + before.PausedUntil.UTC().Format(time.RFC3339)
				if before.ProbeRequired {
					what = "its pause until a probe succeeds"
				}
				fmt.Fprintf(w, "Gateway %s (%s) resumed: lifted %s (%s", g.ID, g.Name, what, before.PauseCause)
				if before.PauseReason != "" {
					fmt.Fprintf(w, ": %s", before.PauseReason)
				}
				fmt.Fprintln(w, ").")
				fmt.Fprintln(w, "Requests to the instance go again now; messages already held for the pause come back when their hold ends.")
			})
		}
	},
}
