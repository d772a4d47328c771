package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/instancecheck"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

func init() { Register(gatewayCheck) }

// checkTimeout bounds all the checks of one gateway: an instance that does
// not answer fails its reachability check instead of holding the command.
const checkTimeout = 45 * time.Second

var gatewayCheck = Command{
	Path:  "infra gateway check",
	Short: "check a gateway against its ServiceNow instance; exit 1 if a check fails",
	Usage: "--id <gtw_…>",
	Long: `Reads, never writes, through the gateway's own credentials: that the
instance answers the API (not hibernating) over TLS; which auth gate refuses
the credentials, if one does; read rights on the gateway's tables and on
sys_journal_field, and the right to add work notes (judged from the
integration user's roles); that the user's time zone is UTC and that a
record's own sys_updated_on, as a plain date literal, finds it; that the
filter groups and the u_environment field exist; that each webhook's
Business Rule is present, active and in the Global scope; and the rate-limit
headroom when the instance sends X-RateLimit-* headers. A check whose
prerequisite failed is skipped. gateway create runs the same checks and
only warns.`,
	Example: "2501 infra gateway check --id gtw_0b7c…\n2501 infra gateway check --id gtw_0b7c… --output json",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "gateway id (required)")
		return func(ctx context.Context, c *Call) error {
			g, hooks, err := gatewayAndWebhooks(ctx, c, *id)
			if err != nil {
				return err
			}
			rep, err := checkInstance(ctx, c, g, hooks)
			if err != nil {
				return err
			}
			if err := c.Print(gatewayCheckOutput(rep), func(w io.Writer) {
				fmt.Fprintf(w, "Gateway %s (%s), instance %s:\n", g.ID, g.Name, g.InstanceURL)
				writeChecks(w, rep)
			}); err != nil {
				return err
			}
			if failed := failedChecks(rep); len(failed) > 0 {
				return fmt.Errorf("%d check(s) failed: %s", len(failed), strings.Join(failed, ", "))
			}
			return nil
		}
	},
}

// checkInstance runs the instance checks of g with its webhooks, through a
// client built from its credentials secret as the reconciler builds it.
func checkInstance(ctx context.Context, c *Call, g registry.Gateway, hooks []registry.Webhook) (instancecheck.Report, error) {
	sm, err := c.Secrets(ctx)
	if err != nil {
		return instancecheck.Report{}, err
	}
	// Unbudgeted: a check is an operator's look at the instance, also
	// while the gateway is paused.
	dial := func(ctx context.Context, opts ...servicenow.Option) (instancecheck.Instance, error) {
		return connect.New(connect.Config{Secrets: sm, Options: opts}).Client(ctx, g)
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return instancecheck.Run(ctx, instancecheck.Target{Gateway: g, Webhooks: hooks}, dial, instancecheck.WithClock(c.Now)), nil
}

// writeChecks prints one line per check: ✓ ok, ✗ failed with its fix,
// - skipped with why.
func writeChecks(w io.Writer, rep instancecheck.Report) {
	for _, ch := range rep.Checks {
		switch ch.Status {
		case instancecheck.OK:
			fmt.Fprintf(w, "  ✓ %-15s %s\n", ch.Name, ch.Detail)
		case instancecheck.Failed:
			fmt.Fprintf(w, "  ✗ %-15s %s. Fix: %s\n", ch.Name, ch.Detail, ch.Fix)
		default:
			fmt.Fprintf(w, "  - %-15s skipped: %s\n", ch.Name, ch.Detail)
		}
	}
}

func failedChecks(rep instancecheck.Report) []string {
	var names []string
	for _, ch := range rep.Checks {
		if ch.Status == instancecheck.Failed {
			names = append(names, ch.Name)
		}
	}
	return names
}

// warnChecks is the tail of gateway create: the instance checks as a
// warning that never fails the command, so a gateway can be registered
// before its instance is set up. With --output json the lines go to
// stderr, leaving stdout the gateway's JSON.
func warnChecks(ctx context.Context, c *Call, g registry.Gateway) {
	w := c.Stdout
	if c.JSON() {
		w = c.Stderr
	}
	// A gateway just created has no webhooks yet.
	rep, err := checkInstance(ctx, c, g, nil)
	if err != nil {
		fmt.Fprintf(w, "\nWarning: the instance checks did not run: %v\n", c.Explain(err))
		return
	}
	failed := failedChecks(rep)
	if len(failed) == 0 {
		if !c.JSON() {
			fmt.Fprintln(w, "\nInstance checks:")
			writeChecks(w, rep)
		}
		return
	}
	fmt.Fprintf(w, "\nWarning: %d instance check(s) failed (the gateway is registered all the same):\n", len(failed))
	writeChecks(w, rep)
	fmt.Fprintf(w, "Fix them, then: %s infra gateway check --id %s\n", Name, g.ID)
}
