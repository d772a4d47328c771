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

// demoStep is one change made through the Table API.
type demoStep struct {
	what   string
	table  string
	update string // "" creates; otherwise the label of the record to update
	label  string // names the created record for later steps
	fields map[string]string
	expect string
}

// Demo makes a few changes in the simulator through its Table API, as people
// working in ServiceNow would, waits for snowgate to handle them and prints
// what happened to each record. env is make dev's env file.
func Demo(ctx context.Context, env map[string]string, out io.Writer) error {
	simURL, user, pass := env[EnvSimURL], env[EnvSimUser], env[EnvSimPassword]
	if simURL == "" {
		return fmt.Errorf("%w: %s is not set", ErrNotRunning, EnvSimURL)
	}
	at := func(d time.Duration) string { return time.Now().UTC().Add(d).Format("2006-01-02 15:04:05") }
	steps := []demoStep{
		{what: "create incident", table: registry.TableIncident, label: "checkout", expect: "accepted", fields: map[string]string{
			"short_description": "Checkout API returns 502 for some requests", "priority": "2", "impact": "2", "urgency": "2",
			"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": "lb-web-01", "u_environment": "production"}},
		{what: "raise its priority", table: registry.TableIncident, update: "checkout", expect: "accepted", fields: map[string]string{
			"priority": "1", "impact": "1", "state": "2"}},
		{what: "create the same incident again", table: registry.TableIncident, label: "duplicate", expect: "deduplicated", fields: map[string]string{
			"short_description": "Checkout API returns 502 for some requests", "priority": "2", "impact": "2", "urgency": "2",
			"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": "lb-web-01", "u_environment": "production"}},
		{what: "create a change in its window", table: registry.TableChangeRequest, label: "change-now", expect: "accepted", fields: map[string]string{
			"short_description": "Restart lb-web-01 with new TLS settings", "type": "normal", "approval": "approved", "state": "-1",
			"assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": "lb-web-01", "u_environment": "production",
			"start_date": at(-10 * time.Minute), "end_date": at(50 * time.Minute)}},
		{what: "create a change starting in an hour", table: registry.TableChangeRequest, label: "change-later", expect: "deferred", fields: map[string]string{
			"short_description": "Resize orders-db volume", "type": "standard", "approval": "approved", "state": "-2",
			"assignment_group": snowsim.DemoGroupDatabase, "cmdb_ci": "orders-db-01", "u_environment": "production",
			"start_date": at(time.Hour), "end_date": at(2 * time.Hour)}},
	}
	sim := &tableClient{base: simURL, user: user, pass: pass}
	records := map[string]record{}
	var touched []record
	fmt.Fprintf(out, "Changes in the ServiceNow simulator (%s):\n", simURL)
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
		if s.label != "" {
			records[s.label] = rec
		}
		touched = append(touched, rec)
		fmt.Fprintf(out, "  %-36s %s %s (expect %s)\n", s.what, rec.Number, rec.SysID, s.expect)
	}
	if env[schema.EnvStateTable] == "" {
		return nil
	}
	fmt.Fprintf(out, "\nWaiting for snowgate to process them...\n\n")
	return printOutcomes(ctx, env, touched, out)
}

// printOutcomes waits (up to 20s) until every touched record has a final
// status in the state table, then prints them.
func printOutcomes(ctx context.Context, env map[string]string, touched []record, out io.Writer) error {
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{
		Endpoint: env["AWS_ENDPOINT_URL"], Region: env["AWS_REGION"], StaticCredentials: true,
	})
	if err != nil {
		return err
	}
	ddb := dynamodb.NewFromConfig(cfg)
	gws, err := registry.New(ddb, env[schema.EnvRegistryTable]).Gateways(ctx)
	if err != nil {
		return fmt.Errorf("list gateways: %w", err)
	}
	var gatewayID string
	for _, g := range gws {
		if g.InstanceURL == env[EnvSimURL] {
			gatewayID = g.ID
		}
	}
	if gatewayID == "" {
		return fmt.Errorf("no gateway for the simulator at %s", env[EnvSimURL])
	}
	st := state.New(ddb, env[schema.EnvStateTable])
	want := map[string]bool{}
	for _, r := range touched {
		want[r.SysID] = true
	}
	var tickets []state.Ticket
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, err := st.List(ctx, state.ListOptions{GatewayID: gatewayID})
		if err != nil {
			return err
		}
		tickets = tickets[:0]
		done := true
		for _, t := range all {
			if want[t.SysID] {
				tickets = append(tickets, t)
				if t.Status == "" || t.Status == state.StatusProcessing || t.Status == state.StatusRetrying {
					done = false
				}
			}
		}
		if (done && len(tickets) == len(uniq(touched))) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tTABLE\tSTATUS\tREASON")
	for _, t := range tickets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Number, t.Table, t.Status, t.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if missing := len(uniq(touched)) - len(tickets); missing > 0 {
		fmt.Fprintf(out, "\n%d record(s) not seen by snowgate yet: is the simulator's outbound switched off,\n"+
			"or a function not built (make build-local)? The reconciler catches up within two minutes.\n", missing)
	}
	fmt.Fprintf(out, "\nMore: bin/2501 infra ticket list\n")
	return nil
}

func uniq(recs []record) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[r.SysID] = true
	}
	return m
}

type record struct {
	SysID  string `json:"sys_id"`
	Number string `json:"number"`
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
