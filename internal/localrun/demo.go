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
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/queue"
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
	// expect is the ticket status the decision must end in; "" checks the
	// job only.
	expect string
	// dupOf labels the record this one must be a duplicate of.
	dupOf string
	// job is what the ticket's job must show after the decision.
	job demoJob
	// outcome is what the engine's result, written back by the writer,
	// must have done to the record in ServiceNow (checked after the steps).
	outcome demoOutcome
}

// demoJob is what a step expects of the ticket's job.
type demoJob string

const (
	// jobCreated: a job whose first event is its job.created.
	jobCreated demoJob = "job created"
	// jobUpdated: the same job as before the step, which now has exactly
	// one job.created and one job.updated: news for the job, not a
	// second job.
	jobUpdated demoJob = "job.updated on the same job"
)

// demoOutcome is what a step expects the writer to do with the engine's
// final result.
type demoOutcome string

const (
	// outcomeResolved: the incident is Resolved (6) with close notes, and
	// its job succeeded.
	outcomeResolved demoOutcome = "resolved"
	// outcomeEscalated: the incident is assigned to the gateway's
	// escalation group with the engine's work note, and its job escalated.
	outcomeEscalated demoOutcome = "escalated"
)

// DemoDecisionTimeout bounds the wait for snowgate's decision on each step.
const DemoDecisionTimeout = 20 * time.Second

// DemoResultTimeout bounds the wait for each result to reach ServiceNow:
// the demo engine's delay, the writer, and a margin.
const DemoResultTimeout = 45 * time.Second

// DemoOptions adjust a demo run; the zero value is make demo's.
type DemoOptions struct {
	// Tag ends the demo records' short descriptions; default the time of
	// day, so that each run's incidents are its own.
	Tag string
	// Timeout bounds the wait for each decision; default DemoDecisionTimeout.
	Timeout time.Duration
	// ResultTimeout bounds the wait for each written-back result; default
	// DemoResultTimeout.
	ResultTimeout time.Duration
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
// Then it waits for the results make dev's demo engine sends to be written
// back (an incident resolved, a "[fail]" one escalated), reading the
// records from the simulator.
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
	if o.ResultTimeout <= 0 {
		o.ResultTimeout = DemoResultTimeout
	}
	simURL, user, pass := env[EnvSimURL], env[EnvSimUser], env[EnvSimPassword]
	if simURL == "" {
		return fmt.Errorf("%w: %s is not set", ErrNotRunning, EnvSimURL)
	}
	steps := demoSteps(o.Tag, time.Now())
	sim := &tableClient{base: simURL, user: user, pass: pass}
	var tickets *demoTickets
	if env[schema.EnvStateTable] != "" {
		var err error
		if tickets, err = openDemoTickets(ctx, env); err != nil {
			return err
		}
	}
	records := map[string]record{}
	jobs := map[string]string{} // label → job id
	var touched []record
	var waitFor []demoStep
	var differed, named []string
	differ := func(s demoStep, rec record, why string) {
		differed = append(differed, fmt.Sprintf("%q (%s): %s", s.what, rec.Number, why))
		named = append(named, fmt.Sprintf("%q (%s)", s.what, rec.Number))
	}
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
		label := s.label
		if s.update != "" {
			label = s.update
		}
		records[label] = rec
		touched = append(touched, rec)
		expect := announce(s, records)
		fmt.Fprintf(out, "  %-36s %s (expect %s) ... ", s.what, rec.Number, expect)
		if tickets == nil {
			fmt.Fprintln(out, "not checked")
			continue
		}
		t, err := tickets.decided(ctx, rec, o.Timeout)
		if err != nil {
			// Nothing is being decided: the later steps would only wait too.
			fmt.Fprintln(out, "no decision")
			differ(s, rec, err.Error())
			break
		}
		got, ok := checkDecision(s, t, records, jobs[label])
		if t.Job != nil && jobs[label] == "" {
			jobs[label] = t.Job.ID
		}
		if !ok {
			fmt.Fprintf(out, "DIFFERS: %s\n", got)
			differ(s, rec, fmt.Sprintf("%s, expected %s", got, expect))
			continue
		}
		fmt.Fprintln(out, got)
		if s.outcome != "" {
			waitFor = append(waitFor, s)
		}
	}
	if tickets == nil {
		fmt.Fprintf(out, "\nNo state table in the env file: outcomes not checked.\n")
		return nil
	}
	if len(waitFor) > 0 {
		fmt.Fprintf(out, "\nResults of the demo engine, written back to ServiceNow by the writer:\n")
	}
	for _, s := range waitFor {
		rec := records[s.label]
		expect := outcomeAnnouncement(s.outcome, tickets.gateway)
		fmt.Fprintf(out, "  %-36s %s (expect %s) ... ", string(s.outcome), rec.Number, expect)
		got, err := tickets.outcome(ctx, sim, rec, s.outcome, o.ResultTimeout)
		if err != nil {
			fmt.Fprintf(out, "DIFFERS: %v\n", err)
			differ(s, rec, err.Error())
			continue
		}
		fmt.Fprintln(out, got)
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
	fmt.Fprintf(out, "\nEvery step went as announced. More: bin/2501 infra ticket list, bin/2501 infra ticket show <sys_id>\n")
	return nil
}

// demoSteps are make demo's changes. tag makes the run's records its own:
// without it a second run within the dedup window would find its first
// incident a duplicate of the previous run's.
func demoSteps(tag string, now time.Time) []demoStep {
	at := func(d time.Duration) string { return now.UTC().Add(d).Format("2006-01-02 15:04:05") }
	checkout := "Checkout API returns 502 for some requests (demo " + tag + ")"
	incident := func(short, group, ci string) map[string]string {
		return map[string]string{
			"short_description": short, "priority": "2", "impact": "2", "urgency": "2",
			"state": "1", "assignment_group": group, "cmdb_ci": snowsim.DemoCI(ci), "u_environment": "production"}
	}
	return []demoStep{
		{what: "create incident", table: registry.TableIncident, label: "checkout", expect: state.StatusAccepted,
			job: jobCreated, outcome: outcomeResolved, fields: incident(checkout, snowsim.DemoGroupNetwork, "lb-web-01")},
		{what: "create the same incident again", table: registry.TableIncident, label: "duplicate", expect: state.StatusDeduplicated,
			dupOf: "checkout", fields: incident(checkout, snowsim.DemoGroupNetwork, "lb-web-01")},
		{what: "create an incident the engine fails", table: registry.TableIncident, label: "failing", expect: state.StatusAccepted,
			job: jobCreated, outcome: outcomeEscalated,
			fields: incident("Disk full on orders-db-02 "+demoengine.MarkerFail+" (demo "+tag+")", snowsim.DemoGroupDatabase, "orders-db-02")},
		// Held open by the marker, so the job is still open when the
		// change moves on, whatever the engine's delay.
		{what: "create a change, Scheduled", table: registry.TableChangeRequest, label: "change-now", expect: state.StatusAccepted,
			job: jobCreated, fields: map[string]string{
				"short_description": "Restart lb-web-01 with new TLS settings " + demoengine.MarkerHold + " (demo " + tag + ")",
				"type":              "normal", "approval": "approved", "state": "-2",
				"assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("lb-web-01"), "u_environment": "production",
				"start_date": at(-10 * time.Minute), "end_date": at(50 * time.Minute)}},
		{what: "move the change to Implement", table: registry.TableChangeRequest, update: "change-now", job: jobUpdated,
			fields: map[string]string{"state": "-1"}},
		{what: "create a change starting in an hour", table: registry.TableChangeRequest, label: "change-later", expect: state.StatusDeferred, fields: map[string]string{
			"short_description": "Resize orders-db volume (demo " + tag + ")", "type": "standard", "approval": "approved", "state": "-2",
			"assignment_group": snowsim.DemoGroupDatabase, "cmdb_ci": snowsim.DemoCI("orders-db-01"), "u_environment": "production",
			"start_date": at(time.Hour), "end_date": at(2 * time.Hour)}},
	}
}

// announce is what a step says it expects.
func announce(s demoStep, records map[string]record) string {
	var parts []string
	if s.expect != "" {
		e := s.expect
		if s.dupOf != "" {
			e += " as a duplicate of " + records[s.dupOf].Number
		}
		parts = append(parts, e)
	}
	if s.job != "" {
		parts = append(parts, string(s.job))
	}
	return strings.Join(parts, ", ")
}

// checkDecision compares a decided ticket with what the step expects and
// says what it found. jobBefore is the id of the record's job before the
// step ("" for a new record).
func checkDecision(s demoStep, t state.Ticket, records map[string]record, jobBefore string) (string, bool) {
	var got []string
	ok := true
	if s.expect != "" {
		g := t.Status
		if t.DuplicateOfNumber != "" {
			g += " as a duplicate of " + t.DuplicateOfNumber
		}
		got = append(got, g)
		ok = t.Status == s.expect && (s.dupOf == "" || t.DuplicateOf == records[s.dupOf].SysID)
	}
	count := func(typ string) int {
		n := 0
		if t.Job != nil {
			for _, e := range t.Job.Events {
				if e.Type == typ {
					n++
				}
			}
		}
		return n
	}
	switch s.job {
	case jobCreated:
		switch {
		case t.Job == nil:
			got, ok = append(got, "no job"), false
		case len(t.Job.Events) == 0 || t.Job.Events[0].Type != queue.EventJobCreated:
			got, ok = append(got, "job "+t.Job.ID+" without its job.created"), false
		default:
			got = append(got, "job "+t.Job.ID+" created")
		}
	case jobUpdated:
		switch {
		case t.Job == nil:
			got, ok = append(got, "no job"), false
		case t.Job.ID != jobBefore:
			got, ok = append(got, fmt.Sprintf("a second job %s (the first was %s)", t.Job.ID, jobBefore)), false
		case count(queue.EventJobCreated) != 1 || count(queue.EventJobUpdated) != 1:
			got, ok = append(got, fmt.Sprintf("job %s with %d job.created and %d job.updated",
				t.Job.ID, count(queue.EventJobCreated), count(queue.EventJobUpdated))), false
		default:
			got = append(got, fmt.Sprintf("job %s: job.created, then job.updated", t.Job.ID))
		}
	}
	return strings.Join(got, ", "), ok
}

func outcomeAnnouncement(o demoOutcome, gw registry.Gateway) string {
	switch o {
	case outcomeResolved:
		return "state Resolved with close notes"
	case outcomeEscalated:
		group := gw.EscalationGroup
		if group == "" {
			group = "the escalation group (the gateway has none)"
		}
		return "assigned to " + group + " with the engine's work note"
	}
	return string(o)
}

// demoTickets reads the demo gateway's tickets from the state table.
type demoTickets struct {
	st        *state.Store
	gatewayID string
	gateway   registry.Gateway
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
			return &demoTickets{st: state.New(ddb, env[schema.EnvStateTable]), gatewayID: g.ID, gateway: g}, nil
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

// outcome waits until the engine's final result on a record's job was
// written back as o says, and describes what it found. The writer applies
// a result by updating the record in ServiceNow, and records it on the
// ticket's job: both must show it.
func (d *demoTickets) outcome(ctx context.Context, sim *tableClient, rec record, o demoOutcome, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := state.Key{GatewayID: d.gatewayID, Table: rec.table, SysID: rec.SysID}
	seen := "nothing yet"
	for {
		got, done, err := d.checkOutcome(ctx, sim, key, rec, o)
		switch {
		case err != nil && ctx.Err() == nil:
			return "", err
		case done:
			return got, nil
		case got != "":
			seen = got
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not %s within %s (%s): is the writer built (make build-local), "+
				"or make dev's engine off?", o, timeout, seen)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// checkOutcome looks once: done when the record and the job show o;
// otherwise got says what they show.
func (d *demoTickets) checkOutcome(ctx context.Context, sim *tableClient, key state.Key, rec record, o demoOutcome) (got string, done bool, err error) {
	t, err := d.st.Get(ctx, key)
	if err != nil {
		return "", false, err
	}
	fields, err := sim.get(ctx, rec.table, rec.SysID)
	if err != nil {
		return "", false, err
	}
	var notes []map[string]string
	if o == outcomeEscalated {
		if notes, err = sim.list(ctx, snowsim.TableJournal, "element_id="+rec.SysID+"^element=work_notes"); err != nil {
			return "", false, err
		}
	}
	got, done = judgeOutcome(o, t.Job, fields, notes, d.gateway)
	return got, done, nil
}

// judgeOutcome decides whether a job, its record's fields and the
// record's work notes show the outcome o, and says what they show.
func judgeOutcome(o demoOutcome, job *state.Job, fields map[string]string, notes []map[string]string, gw registry.Gateway) (string, bool) {
	if job == nil {
		return "no job", false
	}
	switch o {
	case outcomeResolved:
		got := fmt.Sprintf("job %s, record in state %s", job.State, fields["state"])
		if job.State == state.JobSucceeded && fields["state"] == "6" && fields["close_notes"] != "" {
			return fmt.Sprintf("job succeeded, Resolved, close notes %q", fields["close_notes"]), true
		}
		if fields["state"] == "6" && fields["close_notes"] == "" {
			got += " without close notes"
		}
		return got, false
	case outcomeEscalated:
		group := fields["assignment_group"]
		if group == "" {
			group = "none"
		}
		got := fmt.Sprintf("job %s, assignment group %s", job.State, group)
		if job.State != state.JobEscalated || gw.EscalationGroupID == "" || fields["assignment_group"] != gw.EscalationGroupID {
			return got, false
		}
		for _, n := range notes {
			// The engine's note on this job's failure, however the writer
			// frames it.
			if v := n["value"]; strings.Contains(v, demoengine.NotePrefix) && strings.Contains(v, job.ID) && strings.Contains(v, queue.ResultFailed) {
				return fmt.Sprintf("job escalated, assigned to %s, work note %q", gw.EscalationGroup, v), true
			}
		}
		return got + ", no work note from the engine", false
	}
	return "unknown outcome " + string(o), false
}

// print shows the final state of every record the demo touched.
func (d *demoTickets) print(ctx context.Context, touched []record, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tTABLE\tSTATUS\tJOB\tREASON")
	seen := map[string]bool{}
	for _, r := range touched {
		if seen[r.SysID] {
			continue
		}
		seen[r.SysID] = true
		t, err := d.st.Get(ctx, state.Key{GatewayID: d.gatewayID, Table: r.table, SysID: r.SysID})
		switch {
		case errors.Is(err, state.ErrNotFound):
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tnot seen by snowgate\n", r.Number, r.table)
		case err != nil:
			return err
		default:
			job := "-"
			if t.Job != nil {
				job = t.Job.State
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Number, t.Table, t.Status, job, t.Reason)
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

// get reads a record's fields, references as sys_ids.
func (c *tableClient) get(ctx context.Context, table, sysID string) (map[string]string, error) {
	var out struct {
		Result map[string]any `json:"result"`
	}
	if err := c.read(ctx, "/api/now/table/"+table+"/"+sysID+"?sysparm_exclude_reference_link=true", &out); err != nil {
		return nil, err
	}
	return stringFields(out.Result), nil
}

// list reads the records of a table that an encoded query selects.
func (c *tableClient) list(ctx context.Context, table, query string) ([]map[string]string, error) {
	var out struct {
		Result []map[string]any `json:"result"`
	}
	path := "/api/now/table/" + table + "?sysparm_exclude_reference_link=true&sysparm_query=" + url.QueryEscape(query)
	if err := c.read(ctx, path, &out); err != nil {
		return nil, err
	}
	recs := make([]map[string]string, 0, len(out.Result))
	for _, r := range out.Result {
		recs = append(recs, stringFields(r))
	}
	return recs, nil
}

// stringFields keeps the string fields of a record (the Table API reads
// every value as a string).
func stringFields(r map[string]any) map[string]string {
	out := make(map[string]string, len(r))
	for k, v := range r {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func (c *tableClient) read(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("decode GET %s: %w", path, err)
	}
	return nil
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
