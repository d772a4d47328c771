package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

func init() {
	RegisterGroup("infra ticket", "what the processor did with each record")
	Register(Command{
		Path:    "infra ticket list",
		Short:   "list tickets, most recently updated first",
		Usage:   "[--gateway-id gtw_…] [--status accepted|awaiting_mention|…] [--job-state open|succeeded|…] [--since 1h|2026-03-01T00:00:00Z] [--limit n]",
		Example: "2501 infra ticket list --status failed --since 24h\n2501 infra ticket list --job-state open",
		Flags: func(fs *pflag.FlagSet) Action {
			gatewayID := fs.String("gateway-id", "", "only this gateway's tickets (default: every gateway)")
			status := fs.String("status", "", "only tickets with this status: "+strings.Join(ticketStatuses, ", "))
			jobState := fs.String("job-state", "", "only tickets whose job is in this state: "+strings.Join(state.JobStates, ", "))
			since := fs.String("since", "", "only tickets updated since a duration ago (1h) or an RFC 3339 time")
			limit := fs.Int("limit", 100, "at most this many tickets per gateway (0: all)")
			return func(ctx context.Context, c *Call) error {
				from, err := parseSince(*since, c.Now())
				if err != nil {
					return err
				}
				if err := checkWord("status", *status, ticketStatuses); err != nil {
					return err
				}
				if err := checkWord("job-state", *jobState, state.JobStates); err != nil {
					return err
				}
				tickets, err := ticketStore(ctx, c)
				if err != nil {
					return err
				}
				ids, err := gatewayIDs(ctx, c, *gatewayID)
				if err != nil {
					return err
				}
				all := []state.Ticket{}
				for _, id := range ids {
					// The index holds what the table prints; JSON is the whole ticket.
					ts, err := tickets.List(ctx, state.ListOptions{GatewayID: id, Status: *status, JobState: *jobState, Since: from, Limit: *limit, Full: c.JSON()})
					if err != nil {
						return err
					}
					all = append(all, ts...)
				}
				sort.SliceStable(all, func(i, j int) bool { return all[i].UpdatedAt.After(all[j].UpdatedAt) })
				return c.Print(ticketListOutput(all), func(w io.Writer) { printTickets(w, all) })
			}
		},
	})
	Register(Command{
		Path:    "infra ticket show",
		Short:   "show one record's ticket",
		Usage:   "--table incident|change_request --sys-id <sys_id> [--gateway-id gtw_…]",
		Example: "2501 infra ticket show --table incident --sys-id 9d385017c611228701d22104cc95c371",
		Flags: func(fs *pflag.FlagSet) Action {
			table := fs.String("table", "", "ServiceNow table (required)")
			sysID := fs.String("sys-id", "", "record sys_id (required)")
			gatewayID := fs.String("gateway-id", "", "the gateway (default: every gateway that has a ticket for it)")
			return func(ctx context.Context, c *Call) error {
				if *table == "" || *sysID == "" {
					return Usagef("--table and --sys-id are required")
				}
				tickets, err := ticketStore(ctx, c)
				if err != nil {
					return err
				}
				ids, err := gatewayIDs(ctx, c, *gatewayID)
				if err != nil {
					return err
				}
				found := []state.Ticket{}
				for _, id := range ids {
					t, err := tickets.Get(ctx, state.Key{GatewayID: id, Table: *table, SysID: *sysID})
					if errors.Is(err, state.ErrNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					found = append(found, t)
				}
				if len(found) == 0 {
					return fmt.Errorf("no ticket for %s %s", *table, *sysID)
				}
				return c.Print(ticketListOutput(found), func(w io.Writer) {
					for i, t := range found {
						if i > 0 {
							fmt.Fprintln(w)
						}
						printTicket(w, t)
					}
				})
			}
		},
	})
}

// ticketStatuses are the statuses a ticket can have, as the processor
// records them.
var ticketStatuses = []string{
	state.StatusAccepted, state.StatusAwaitingMention, state.StatusOutOfScope, state.StatusDeduplicated, state.StatusDeferred,
	state.StatusExpired, state.StatusFailed, state.StatusRetrying, state.StatusProcessing,
}

// checkWord checks that a filter flag, when given, is one of words.
func checkWord(flag, v string, words []string) error {
	if v != "" && !slices.Contains(words, v) {
		return Usagef("--%s %q: want one of %s", flag, v, strings.Join(words, ", "))
	}
	return nil
}

func ticketStore(ctx context.Context, c *Call) (*state.Store, error) {
	table, err := c.StateTable(ctx)
	if err != nil {
		return nil, err
	}
	db, err := c.DynamoDB(ctx)
	if err != nil {
		return nil, err
	}
	return state.New(db, table), nil
}

// gatewayIDs is the one given, or every registered gateway.
func gatewayIDs(ctx context.Context, c *Call, id string) ([]string, error) {
	if id != "" {
		if !registry.ValidGatewayID(id) {
			return nil, Usagef("--gateway-id %q is not a gateway id", id)
		}
		return []string{id}, nil
	}
	reg, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	gs, err := reg.Gateways(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(gs))
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, Usagef("--since %q: want a duration (1h) or an RFC 3339 time", s)
}

func printTickets(w io.Writer, ts []state.Ticket) {
	if len(ts) == 0 {
		fmt.Fprintln(w, "No tickets.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPDATED\tNUMBER\tTABLE\tSYS_ID\tVERSION\tSTATUS\tJOB\tLAST\tREASON\tGATEWAY")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.UpdatedAt.UTC().Format(time.RFC3339), dash(t.Number), t.Table,
			t.SysID, t.SysModCount, t.Status, dash(jobState(t)), t.LastOutcome, dash(truncate(t.Reason, 60)), t.GatewayID)
	}
	tw.Flush()
}

func printTicket(w io.Writer, t state.Ticket) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Number", t.Number)
	row("Table", t.Table)
	row("Sys ID", t.SysID)
	row("Gateway", t.GatewayID)
	row("Status", t.Status)
	row("Reason", t.Reason)
	row("Last outcome", t.LastOutcome+" at "+t.LastOutcomeAt.UTC().Format(time.RFC3339))
	row("Version", fmt.Sprint(t.SysModCount)+" (updated in ServiceNow "+t.SysUpdatedOn+" UTC)")
	if j := t.Job; j != nil {
		row("Job", fmt.Sprintf("%s (%s, episode %d)", j.ID, j.State, j.Episode))
		for _, e := range j.Events {
			row("  Event", fmt.Sprintf("#%d %s %s at %s", e.Sequence, e.Type, e.EventID, e.At.UTC().Format(time.RFC3339)))
		}
		for _, r := range j.Results {
			row("  Result", fmt.Sprintf("%s %s at %s", r.Status, r.ResultID, r.At.UTC().Format(time.RFC3339)))
		}
	} else {
		row("Job", t.JobID)
	}
	row("Duplicate of", strings.TrimSpace(t.DuplicateOfNumber+" "+t.DuplicateOf))
	row("Due", t.DueAt)
	row("Write-back", t.WriteBack)
	row("Last error", t.LastError)
	row("Attempts", fmt.Sprint(t.Attempts))
	row("Short description", t.ShortDescription)
	row("State", t.State)
	row("Assignment group", t.AssignmentGroupName)
	row("Environment", t.Environment)
	row("First seen", t.FirstSeenAt.UTC().Format(time.RFC3339))
	row("Updated", t.UpdatedAt.UTC().Format(time.RFC3339))
	tw.Flush()
}

// jobState is the state of the ticket's job, "" when it never had one.
func jobState(t state.Ticket) string {
	if t.Job == nil {
		return ""
	}
	return t.Job.State
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
