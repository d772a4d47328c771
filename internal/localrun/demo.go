package localrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// ErrNotRunning is returned by Demo when make dev is not running.
var ErrNotRunning = errors.New("make dev is not running")

// ReadEnvFile parses the export lines make dev writes.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s): start it in another terminal", ErrNotRunning, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return env, nil
}

// demoStep is one change made through the Table API, and the decision
// snowgate is expected to take on it.
type demoStep struct {
	what   string
	table  string
	update string // "" creates; otherwise the label of the record to update
	label  string // names the created record for later steps
	fields map[string]string
	expect string
	// dupOf labels the record this one must be a duplicate of.
	dupOf string
}

// DemoDecisionTimeout bounds the wait for snowgate's decision on each step.
const DemoDecisionTimeout = 20 * time.Second

// DemoOptions adjust a demo run; the zero value is make demo's.
type DemoOptions struct {
	// Tag ends the demo incidents' short descriptions; default the time of
	// day, so that each run's incidents are its own.
	Tag string
	// Timeout bounds the wait for each decision; default DemoDecisionTimeout.
	Timeout time.Duration
}

// ErrDemoDiffered is returned by Demo when a step's outcome is not the one
// it announced.
var ErrDemoDiffered = errors.New("the demo did not go as announced")

// Demo makes a few changes in the simulator through its Table API, as people
// working in ServiceNow would, and checks each against what snowgate
// decided: it waits (up to DemoDecisionTimeout) for the decision on one
// change before making the next, reading the ticket from the state table as
// the CLI does. Waiting is what makes the outcome certain: two identical
// incidents created within one batching window would otherwise be decided
// in whatever order the processor takes them, and the duplicate could win.
// It returns ErrDemoDiffered naming the steps whose outcome differed.
// env is make dev's env file.
func Demo(ctx context.Context, env map[string]string, out io.Writer) error {
	return DemoWith(ctx, env, out, DemoOptions{})
}

// DemoWith is Demo with options.
func DemoWith(ctx context.Context, env map[string]string, out io.Writer, o DemoOptions) error {
	if o.Tag == "" {
		o.Tag = time.Now().UTC().Format("15:04:05")
	}
	if o.Timeout <= 0 {
		o.Timeout = DemoDecisionTimeout
	}
	simURL, user, pass := env[EnvSimURL], env[EnvSimUser], env[EnvSimPassword]
	if simURL == "" {
		return fmt.Errorf("%w: %s is not set", ErrNotRunning, EnvSimURL)
	}
	at := func(d time.Duration) string { return time.Now().UTC().Add(d).Format("2006-01-02 15:04:05") }
	// Each run's incidents are its own: without the tag a second run within
	// the dedup window would find its first incident a duplicate of the
	// previous run's.
	checkout := "Checkout API returns 502 for some requests (demo " + o.Tag + ")"
	steps := []demoStep{
		{what: "create incident", table: registry.TableIncident, label: "checkout", expect: state.StatusAccepted, fields: map[string]string{
			"short_description": checkout, "priority": "2", "impact": "2", "urgency": "2",
			"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("lb-web-01"), "u_environment": "production"}},
		{what: "raise its priority", table: registry.TableIncident, update: "checkout", expect: state.StatusAccepted, fields: map[string]string{
			"priority": "1", "impact": "1", "state": "2"}},
		{what: "create the same incident again", table: registry.TableIncident, label: "duplicate", expect: state.StatusDeduplicated, dupOf: "checkout", fields: map[string]string{
			"short_description": checkout, "priority": "2", "impact": "2", "urgency": "2",
			"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("lb-web-01"), "u_environment": "production"}},
		{what: "create a change in its window", table: registry.TableChangeRequest, label: "change-now", expect: state.StatusAccepted, fields: map[string]string{
			"short_description": "Restart lb-web-01 with new TLS settings", "type": "normal", "approval": "approved", "state": "-1",
			"assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("lb-web-01"), "u_environment": "production",
			"start_date": at(-10 * time.Minute), "end_date": at(50 * time.Minute)}},
		{what: "create a change starting in an hour", table: registry.TableChangeRequest, label: "change-later", expect: state.StatusDeferred, fields: map[string]string{
			"short_description": "Resize orders-db volume", "type": "standard", "approval": "approved", "state": "-2",
			"assignment_group": snowsim.DemoGroupDatabase, "cmdb_ci": snowsim.DemoCI("orders-db-01"), "u_environment": "production",
			"start_date": at(time.Hour), "end_date": at(2 * time.Hour)}},
	}
	sim := &tableClient{base: simURL, user: user, pass: pass}
	var tickets *demoTickets
	if env[schema.EnvStateTable] != "" {
		var err error
		if tickets, err = openDemoTickets(ctx, env); err != nil {
			return err
		}
	}
	records := map[string]record{}
	var touched []record
	var differed, named []string
	fmt.Fprintf(out, "Changes in the ServiceNow simulator (%s), each checked against snowgate's decision:\n", simURL)
	for _, s := range steps {
		var rec record
		var err error
		if s.update == "" {
			rec, err = sim.create(ctx, s.table, s.fields)
		} else {
			rec, err = sim.update(ctx, s.table, records[s.update].SysID, s.fields)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		rec.table = s.table
		if s.label != "" {
			records[s.label] = rec
		}
		touched = append(touched, rec)
		expect := s.expect
		if s.dupOf != "" {
			expect += " as a duplicate of " + records[s.dupOf].Number
		}
		fmt.Fprintf(out, "  %-36s %s (expect %s) ... ", s.what, rec.Number, expect)
		if tickets == nil {
			fmt.Fprintln(out, "not checked")
			continue
		}
		t, err := tickets.decided(ctx, rec, o.Timeout)
		if err != nil {
			// Nothing is being decided: the later steps would only wait too.
			fmt.Fprintln(out, "no decision")
			differed = append(differed, fmt.Sprintf("%q (%s): %v", s.what, rec.Number, err))
			named = append(named, fmt.Sprintf("%q (%s)", s.what, rec.Number))
			break
		}
		got := t.Status
		if t.DuplicateOfNumber != "" {
			got += " as a duplicate of " + t.DuplicateOfNumber
		}
		ok := t.Status == s.expect && (s.dupOf == "" || t.DuplicateOf == records[s.dupOf].SysID)
		if !ok {
			fmt.Fprintf(out, "DIFFERS: %s\n", got)
			differed = append(differed, fmt.Sprintf("%q (%s): %s, expected %s", s.what, rec.Number, got, expect))
			named = append(named, fmt.Sprintf("%q (%s)", s.what, rec.Number))
			continue
		}
		fmt.Fprintln(out, got)
	}
	if tickets == nil {
		fmt.Fprintf(out, "\nNo state table in the env file: outcomes not checked.\n")
		return nil
	}
	fmt.Fprintln(out)
	if err := tickets.print(ctx, touched, out); err != nil {
		return err
	}
	if len(differed) > 0 {
		fmt.Fprintf(out, "\n%d step(s) did not go as announced:\n", len(differed))
		for _, d := range differed {
			fmt.Fprintf(out, "  %s\n", d)
		}
		return fmt.Errorf("%w: %s", ErrDemoDiffered, strings.Join(named, ", "))
	}
	fmt.Fprintf(out, "\nEvery step went as announced. More: bin/2501 infra ticket list\n")
	return nil
}

// demoTickets reads the demo gateway's tickets from the state table.
type demoTickets struct {
	st        *state.Store
	gatewayID string
}

func openDemoTickets(ctx context.Context, env map[string]string) (*demoTickets, error) {
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{
		Endpoint: env["AWS_ENDPOINT_URL"], Region: env["AWS_REGION"], StaticCredentials: true,
	})
	if err != nil {
		return nil, err
	}
	ddb := dynamodb.NewFromConfig(cfg)
	gws, err := registry.New(ddb, env[schema.EnvRegistryTable]).Gateways(ctx)
	if err != nil {
		return nil, fmt.Errorf("list gateways: %w", err)
	}
	for _, g := range gws {
		if g.InstanceURL == env[EnvSimURL] {
			return &demoTickets{st: state.New(ddb, env[schema.EnvStateTable]), gatewayID: g.ID}, nil
		}
	}
	return nil, fmt.Errorf("no gateway for the simulator at %s", env[EnvSimURL])
}

// decided waits until the ticket holds a finished decision on the record's
// version (or a later one), and returns it.
func (d *demoTickets) decided(ctx context.Context, rec record, timeout time.Duration) (state.Ticket, error) {
	version, err := strconv.Atoi(rec.SysModCount)
	if err != nil {
		return state.Ticket{}, fmt.Errorf("sys_mod_count %q of %s: %w", rec.SysModCount, rec.Number, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := state.Key{GatewayID: d.gatewayID, Table: rec.table, SysID: rec.SysID}
	seen := "no ticket"
	for {
		t, err := d.st.Get(ctx, key)
		switch {
		case err == nil && t.DecidedVersion != nil && *t.DecidedVersion >= version &&
			t.Status != state.StatusProcessing && t.Status != state.StatusRetrying:
			return t, nil
		case err == nil:
			seen = fmt.Sprintf("ticket %s", orNone(t.Status))
			if t.LastError != "" {
				seen += " (" + t.LastError + ")"
			}
		case !errors.Is(err, state.ErrNotFound) && ctx.Err() == nil:
			return state.Ticket{}, err
		}
		select {
		case <-ctx.Done():
			return state.Ticket{}, fmt.Errorf("no decision on version %d within %s (%s): is the simulator's outbound "+
				"switched off, or a function not built (make build-local)? The reconciler catches up within two minutes", version, timeout, seen)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// print shows the final state of every record the demo touched.
func (d *demoTickets) print(ctx context.Context, touched []record, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tTABLE\tSTATUS\tREASON")
	seen := map[string]bool{}
	for _, r := range touched {
		if seen[r.SysID] {
			continue
		}
		seen[r.SysID] = true
		t, err := d.st.Get(ctx, state.Key{GatewayID: d.gatewayID, Table: r.table, SysID: r.SysID})
		switch {
		case errors.Is(err, state.ErrNotFound):
			fmt.Fprintf(tw, "%s\t%s\t-\tnot seen by snowgate\n", r.Number, r.table)
		case err != nil:
			return err
		default:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Number, t.Table, t.Status, t.Reason)
		}
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "without a status"
	}
	return s
}

type record struct {
	SysID       string `json:"sys_id"`
	Number      string `json:"number"`
	SysModCount string `json:"sys_mod_count"`
	table       string
}

// tableClient is the little of the Table API the demo needs.
type tableClient struct {
	base, user, pass string
}

func (c *tableClient) create(ctx context.Context, table string, fields map[string]string) (record, error) {
	return c.do(ctx, http.MethodPost, "/api/now/table/"+table, fields)
}

func (c *tableClient) update(ctx context.Context, table, sysID string, fields map[string]string) (record, error) {
	return c.do(ctx, http.MethodPatch, "/api/now/table/"+table+"/"+sysID, fields)
}

func (c *tableClient) do(ctx context.Context, method, path string, fields map[string]string) (record, error) {
	body, err := json.Marshal(fields)
	if err != nil {
		return record{}, fmt.Errorf("encode fields: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return record{}, fmt.Errorf("build request: %w", err)
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return record{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return record{}, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	var out struct {
		Result record `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return record{}, fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return out.Result, nil
}
