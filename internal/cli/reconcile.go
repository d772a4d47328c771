package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/watermark"
)

func init() {
	Register(Command{
		Path:  "infra reconcile",
		Short: "enqueue the ServiceNow changes whose webhook was lost (the scheduled reconciler, or a backfill)",
		Usage: "[--gateway-id gtw_…] [--event-type incident|change_request] [--since 24h]",
		Long: "Without --since it runs exactly what the two-minute schedule runs: from each gateway × table's\n" +
			"watermark minus the overlap. With --since it reads every change since then (a backfill); records\n" +
			"already processed at their current version are skipped, so a backfill never dispatches twice.\n" +
			"A backfill moves the watermark only when it started at or before the watermark.\n" +
			"Progress goes to stderr: a bar on a terminal, one line per gateway × table otherwise.",
		Example: "2501 infra reconcile --gateway-id gtw_… --event-type incident --since 24h",
		Flags: func(fs *pflag.FlagSet) Action {
			gatewayID := fs.String("gateway-id", "", "only this gateway (default: every active gateway)")
			eventType := fs.String("event-type", "", "only this table: incident or change_request (default: every table with a webhook)")
			since := fs.String("since", "", "read changes since a duration ago (24h) or an RFC 3339 time (default: from the watermark)")
			overlap := fs.Duration("overlap", reconcile.DefaultOverlap, "how far before the watermark to start reading")
			return func(ctx context.Context, c *Call) error {
				if *gatewayID != "" && !registry.ValidGatewayID(*gatewayID) {
					return Usagef("--gateway-id %q is not a gateway id", *gatewayID)
				}
				if *eventType != "" && !slices.Contains(registry.EventTypes, *eventType) {
					return Usagef("--event-type %q: want one of %s", *eventType, strings.Join(registry.EventTypes, ", "))
				}
				from, err := parseSince(*since, c.Now())
				if err != nil {
					return err
				}
				o := reconcile.Options{GatewayID: *gatewayID, Table: *eventType}
				if !from.IsZero() {
					if o.Since = c.Now().Sub(from); o.Since <= 0 {
						return Usagef("--since %q is in the future", *since)
					}
				}
				r, err := newReconciler(ctx, c, *overlap)
				if err != nil {
					return err
				}
				p := newProgress(c.Stderr)
				o.Progress = p.update
				rep, err := r.Run(ctx, o)
				p.finish()
				if err != nil {
					return err
				}
				if err := c.Print(reconcileOutput(rep), func(w io.Writer) { printReport(w, rep) }); err != nil {
					return err
				}
				if n := rep.Failed(); n > 0 {
					return fmt.Errorf("%d of %d passes failed (see above); the watermarks keep what succeeded", n, len(rep.Results)+len(rep.Due))
				}
				return nil
			}
		},
	})
}

func newReconciler(ctx context.Context, c *Call, overlap time.Duration) (*reconcile.Reconciler, error) {
	reg, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	tickets, err := ticketStore(ctx, c)
	if err != nil {
		return nil, err
	}
	stateTable, err := c.StateTable(ctx)
	if err != nil {
		return nil, err
	}
	intakeURL, err := c.IntakeQueueURL(ctx)
	if err != nil {
		return nil, err
	}
	db, err := c.DynamoDB(ctx)
	if err != nil {
		return nil, err
	}
	sqsClient, err := c.SQS(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := c.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	b, err := budgets(ctx, c)
	if err != nil {
		return nil, err
	}
	// The gateway's budget bounds a backfill too; from a terminal a
	// request may wait for its token a while.
	pool := connect.New(connect.Config{Secrets: sec, Budget: b, Wait: time.Minute})
	return reconcile.New(reconcile.Deps{
		Registry:   reg,
		Tickets:    tickets,
		Watermarks: watermark.New(db, stateTable),
		Intake:     queue.NewSender(sqsClient, intakeURL),
		Connector:  reconcile.Connections{Pool: pool},
		// The summary is the CLI's output; the per-pass JSON lines are for
		// the function's logs.
		Logger: slog.New(slog.DiscardHandler),
		Now:    c.Now,
	}, reconcile.Config{
		Overlap: overlap,
		// A backfill from a terminal has no function deadline; Ctrl-C
		// stops it and the watermark keeps what was enqueued.
		GatewayTimeout: 24 * time.Hour,
	}), nil
}

// progress shows how far each gateway × table pass has read: a bar redrawn
// in place on a terminal, one line per finished pass otherwise (logs, CI).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	drawn bool
	start time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

func (p *progress) update(res reconcile.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	final := res.Done || res.Stopped != ""
	if !p.tty {
		if final {
			fmt.Fprintf(p.w, "%s %s: %s, %d scanned, %d enqueued, %d skipped, %d pages, %d calls\n",
				res.GatewayID, res.Table, status(res), res.Scanned, res.Enqueued, res.Skipped, res.Pages, res.Calls)
		}
		return
	}
	// Fraction of the time range from the pass's start to now covered so
	// far: the pass reads in sys_updated_on order.
	frac := 1.0
	if !final && !res.Position.IsZero() {
		total := time.Since(res.From).Seconds()
		if total > 0 {
			frac = min(max(res.Position.UpdatedOn.Sub(res.From).Seconds()/total, 0), 1)
		}
	} else if !final {
		frac = 0
	}
	const width = 30
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r\033[K%s %-14s [%s%s] %3.0f%%  %d scanned  %d enqueued  %d pages",
		short(res.GatewayID), res.Table, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		frac*100, res.Scanned, res.Enqueued, res.Pages)
	p.drawn = true
	if final {
		fmt.Fprintf(p.w, "  %s\n", status(res))
		p.drawn = false
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func status(res reconcile.Result) string {
	switch {
	case res.Err != nil:
		return "failed: " + res.Err.Error()
	case res.Done:
		return "done"
	default:
		return "stopped at " + res.Stopped + "; the next run continues"
	}
}

func printReport(w io.Writer, rep reconcile.Report) {
	if len(rep.Results) == 0 && len(rep.Due) == 0 {
		fmt.Fprintln(w, "Nothing to reconcile: no active gateway with an active webhook.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tTABLE\tFROM\tSCANNED\tENQUEUED\tSKIPPED\tPAGES\tCALLS\tRESULT")
	for _, r := range rep.Results {
		from := "-"
		if !r.From.IsZero() {
			from = r.From.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.GatewayID, dash(r.Table), from,
			r.Scanned, r.Enqueued, r.Skipped, r.Pages, r.Calls, status(r))
	}
	_ = tw.Flush()
	due := 0
	for _, d := range rep.Due {
		due += d.Enqueued
		if d.Err != nil {
			fmt.Fprintf(w, "due change requests of %s: failed: %v\n", d.GatewayID, d.Err)
		}
	}
	open, reopened, watchCalls := 0, 0, 0
	for _, o := range rep.Watched {
		open, reopened, watchCalls = open+o.Open, reopened+o.Enqueued, watchCalls+o.Calls
		if o.Err != nil {
			fmt.Fprintf(w, "open jobs of %s: failed: %v\n", o.GatewayID, o.Err)
		}
	}
	stuck := 0
	for _, st := range rep.Stuck {
		stuck += st.Enqueued
		if st.Err != nil {
			fmt.Fprintf(w, "stuck tickets of %s: failed: %v\n", st.GatewayID, st.Err)
		}
	}
	t := rep.Totals()
	fmt.Fprintf(w, "\n%d gateways, %d passes: %d records scanned, %d enqueued, %d already processed; %d due change requests re-enqueued; "+
		"%d open jobs re-checked, %d enqueued; %d stuck tickets re-enqueued; %d ServiceNow calls.\n",
		rep.Gateways, len(rep.Results), t.Scanned, t.Enqueued, t.Skipped, due, open, reopened, stuck, t.Calls+watchCalls)
}
