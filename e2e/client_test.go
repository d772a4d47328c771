package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/cli"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// cli runs `2501 args…` in-process, the real command tree, with the
// system's environment, and returns its stdout; a failure ends the test.
func (s *system) cli(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	var stdout, stderr strings.Builder
	env := cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string {
			if k == schema.EnvStack {
				return "snowgate-e2e-no-stack" // never read a real stack's outputs
			}
			return s.env[k]
		},
		AWSConfig: func(context.Context, awsconfig.Options) (aws.Config, error) { return s.cfg, nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code := env.Run(ctx, args); code != cli.ExitOK {
		t.Fatalf("2501 %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// cliJSON runs a command with --output json and decodes what it prints.
func (s *system) cliJSON(t testing.TB, v any, stdin string, args ...string) {
	t.Helper()
	out := s.cli(t, stdin, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("2501 %s: decode %q: %v", strings.Join(args, " "), out, err)
	}
}

// createdWebhook is what `2501 infra webhook create --output json` prints
// that the suite uses; the whole output goes to the simulator.
type createdWebhook struct {
	registry.Webhook
	URL    string `json:"url"`
	Secret string `json:"secret"`
	raw    []byte
}

// setup is one gateway and its webhooks, made through the CLI.
type setup struct {
	// group is the sys_id of the assignment group the gateway is scoped
	// to; the test's records belong to it.
	group    string
	gateway  registry.Gateway
	incident createdWebhook
	change   createdWebhook
}

// The budget of the gateways the suite creates on the simulator, unless a
// test gives its own.
const (
	simRateLimit      = "360000/h"
	simMaxConcurrency = "16"
)

// createGateway creates a gateway for the simulator (basic auth) and one
// webhook per table, the change requests' signed with HMAC. The gateway is
// scoped to an assignment group of its own, created first, so that on a
// shared instance neither its Business Rules nor its reconciler see other
// tests' records (and its filter is exercised end to end). With loadRules
// each webhook's Business Rule, the CLI's JSON output as it is, is posted
// to the simulator as an administrator would paste it.
func (s *system) createGateway(t *testing.T, loadRules bool, extra ...string) setup {
	t.Helper()
	var st setup
	name := "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	groupName := awstest.UniqueName("e2e-group-")
	st.group = s.insert(t, "sys_user_group", map[string]string{"name": groupName, "description": t.Name()})["sys_id"]
	args := append([]string{"infra", "gateway", "create", "--name", name, "--instance-url", s.instanceURL,
		"--auth", "basic", "--username", s.simUser, "--password-stdin", "--assignment-group-filter", groupName}, extra...)
	if !slices.Contains(extra, "--rate-limit") && !remoteMode() {
		// The simulator takes far more than a small instance's default
		// budget; a test that is about the budget sets its own.
		args = append(args, "--rate-limit", simRateLimit, "--max-concurrency", simMaxConcurrency)
	}
	s.cliJSON(t, &st.gateway, s.simPass+"\n", args...)
	// The name is resolved to the group's sys_id, which the Business Rule
	// condition, the processor and the reconciler match on.
	if len(st.gateway.AssignmentGroupIDs) != 1 || st.gateway.AssignmentGroupIDs[0] != st.group {
		t.Fatalf("gateway create resolved --assignment-group-filter %s to %q, want [%s]", groupName, st.gateway.AssignmentGroupIDs, st.group)
	}
	for _, w := range []struct {
		hook           *createdWebhook
		table, signing string
	}{{&st.incident, "incident", registry.SigningSecret}, {&st.change, "change_request", registry.SigningHMAC}} {
		out := s.cli(t, "", "infra", "webhook", "create", "--name", name+"-"+w.table, "--source-type", "servicenow",
			"--event-type", w.table, "--gateway-id", st.gateway.ID, "--signing", w.signing, "--output", "json")
		if err := json.Unmarshal([]byte(out), w.hook); err != nil {
			t.Fatalf("decode webhook create output %q: %v", out, err)
		}
		w.hook.raw = []byte(out)
		if loadRules {
			s.loadRule(t, w.hook.raw)
		}
	}
	return st
}

// loadRule posts the CLI's webhook output to the simulator's admin endpoint.
func (s *system) loadRule(t testing.TB, cliOutput []byte) {
	t.Helper()
	resp, body := s.simDo(t, http.MethodPost, "/sim/business_rules", cliOutput)
	if resp != http.StatusCreated {
		t.Fatalf("load Business Rule into the simulator: %d %s", resp, body)
	}
}

// setOutbound switches the simulator's outbound calls (webhooks).
func (s *system) setOutbound(t testing.TB, on bool) {
	t.Helper()
	if code, body := s.simDo(t, http.MethodPost, "/sim/outbound?enabled="+strconv.FormatBool(on), nil); code != http.StatusOK {
		t.Fatalf("switch simulator outbound calls: %d %s", code, body)
	}
}

// simDo sends one request to the simulator with its admin credentials and
// retries what its injected faults answer (429, 5xx): they happen before
// the request is handled, so a retry never applies a change twice.
func (s *system) simDo(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	// Not t.Context(): cleanups (switching outbound calls back on) run
	// after it is done.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, method, s.simURL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(s.simUser, s.simPass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return resp.StatusCode, raw
	}
}

// record is a ServiceNow record as the Table API returns it.
type record map[string]string

func (r record) modCount() int { n, _ := strconv.Atoi(r["sys_mod_count"]); return n }

func (s *system) simRecord(t testing.TB, method, path string, fields map[string]string) record {
	t.Helper()
	var body []byte
	if fields != nil {
		body, _ = json.Marshal(fields)
	}
	code, raw := s.simDo(t, method, path+"?sysparm_exclude_reference_link=true", body)
	if code/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, code, raw)
	}
	var out struct {
		Result record `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
	}
	return out.Result
}

// insert creates a record through the simulator's Table API, as a user of
// the instance would; its Business Rules fire.
func (s *system) insert(t testing.TB, table string, fields map[string]string) record {
	t.Helper()
	return s.simRecord(t, http.MethodPost, "/api/now/table/"+table, fields)
}

// update changes a record through the Table API.
func (s *system) update(t testing.TB, table, sysID string, fields map[string]string) record {
	t.Helper()
	return s.simRecord(t, http.MethodPatch, "/api/now/table/"+table+"/"+sysID, fields)
}

// get reads a record through the Table API.
func (s *system) get(t testing.TB, table, sysID string) record {
	t.Helper()
	return s.simRecord(t, http.MethodGet, "/api/now/table/"+table+"/"+sysID, nil)
}

// records reads every record of a table whose sys_id is in ids.
func (s *system) records(t testing.TB, table string, ids []string) map[string]record {
	t.Helper()
	code, raw := s.simDo(t, http.MethodGet, "/api/now/table/"+table+"?sysparm_exclude_reference_link=true&sysparm_query=sys_idIN"+strings.Join(ids, ","), nil)
	if code != http.StatusOK {
		t.Fatalf("query %s: %d %s", table, code, raw)
	}
	var out struct {
		Result []record `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	m := map[string]record{}
	for _, r := range out.Result {
		m[r["sys_id"]] = r
	}
	return m
}

// ticket is a ticket as `2501 infra ticket list --output json` prints it
// (docs/schemas/ticket.schema.json): the fields the suite reads.
type ticket struct {
	SysID       string `json:"sys_id"`
	Number      string `json:"number"`
	SysModCount int    `json:"sys_mod_count"`
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	LastOutcome string `json:"last_outcome"`
	JobID       string `json:"job_id"`
	WriteBack   string `json:"write_back"`
	LastError   string `json:"last_error"`
	Attempts    int    `json:"attempts"`
	Source      string `json:"source"`
	Priority    string `json:"priority"`
	JobState    string `json:"job_state"`
	// Job is the ticket's current or last job; nil before its first.
	Job *ticketJob `json:"job"`
}

// ticketJob is a ticket's job as `ticket show` and `ticket list` print it.
type ticketJob struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Episode int    `json:"episode"`
	Events  []struct {
		Type     string `json:"type"`
		Sequence int    `json:"sequence"`
		EventID  string `json:"event_id"`
		At       string `json:"at"`
	} `json:"events"`
	Results []struct {
		ResultID string `json:"result_id"`
		Status   string `json:"status"`
		At       string `json:"at"`
	} `json:"results"`
}

// resultIDs are the ids of the results recorded on the ticket's job, in
// its order.
func (tk ticket) resultIDs() []string {
	if tk.Job == nil {
		return nil
	}
	var ids []string
	for _, r := range tk.Job.Results {
		ids = append(ids, r.ResultID)
	}
	return ids
}

// show reads one ticket with `2501 infra ticket show`.
func (s *system) show(t testing.TB, gatewayID, table, sysID string) ticket {
	t.Helper()
	var list []ticket
	s.cliJSON(t, &list, "", "infra", "ticket", "show", "--gateway-id", gatewayID, "--table", table, "--sys-id", sysID)
	if len(list) != 1 {
		t.Fatalf("ticket show %s %s printed %d tickets; want 1", table, sysID, len(list))
	}
	return list[0]
}

// tickets lists the gateway's tickets with `2501 infra ticket list`, by
// sys_id.
func (s *system) tickets(t testing.TB, gatewayID string) map[string]ticket {
	t.Helper()
	var list []ticket
	s.cliJSON(t, &list, "", "infra", "ticket", "list", "--gateway-id", gatewayID, "--limit", "0")
	m := map[string]ticket{}
	for _, tk := range list {
		m[tk.SysID] = tk
	}
	return m
}

// settled reports whether a ticket holds a decision (no claim in flight,
// nothing to retry) on the record's current version. A claim in flight
// shows as the status processing: a claim sets it, and the decision that
// ends the claim replaces it.
func settled(tk ticket, rec record) bool {
	return final(tk) && tk.SysModCount == rec.modCount()
}

func final(tk ticket) bool {
	switch tk.Status {
	case "", state.StatusProcessing, state.StatusRetrying:
		return false
	}
	return true
}

// eventually polls check until it reports done or the deadline (plus the
// system's extra wait) passes; it then fails the test with what it was
// waiting for and the last state check described.
func (s *system) eventually(t testing.TB, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	timeout += s.wait
	deadline := time.Now().Add(timeout)
	for {
		done, st := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last state: %s", timeout, what, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitSettled waits until the record's ticket holds a decision on the
// record's current version and returns it.
func (s *system) waitSettled(t testing.TB, gatewayID, table, sysID string, timeout time.Duration) ticket {
	t.Helper()
	var tk ticket
	s.eventually(t, fmt.Sprintf("the ticket of %s %s to settle", table, sysID), timeout, func() (bool, string) {
		rec := s.get(t, table, sysID)
		tk = s.tickets(t, gatewayID)[sysID]
		return settled(tk, rec), fmt.Sprintf("record sys_mod_count %d; ticket %s", rec.modCount(), describe(tk))
	})
	return tk
}

func describe(tk ticket) string {
	if tk.SysID == "" {
		return "none"
	}
	job := "none"
	if j := tk.Job; j != nil {
		job = fmt.Sprintf("%s %s (episode %d, %d events, %d results)", j.ID, j.State, j.Episode, len(j.Events), len(j.Results))
	}
	return fmt.Sprintf("status %q reason %q last outcome %q sys_mod_count %d attempts %d error %q job %s",
		tk.Status, tk.Reason, tk.LastOutcome, tk.SysModCount, tk.Attempts, tk.LastError, job)
}

// waitJob waits until the record's ticket is settled with its job in the
// wanted state and the engine's answers to the job's events recorded on
// it, and returns it. (The writer ends a job before it writes and records
// the result that ends it, and results are applied side by side: the
// state alone does not say that the results are all in.)
func (s *system) waitJob(t testing.TB, gatewayID, table, sysID, jobState string, timeout time.Duration) ticket {
	t.Helper()
	return s.waitTicket(t, gatewayID, table, sysID, "its job "+jobState+" and answered", timeout, func(tk ticket) bool {
		return tk.Job != nil && tk.Job.State == jobState && s.answered(tk)
	})
}

// answered reports whether the ticket's job has recorded the demo
// engine's answers to each of its events.
func (s *system) answered(tk ticket) bool {
	if tk.Job == nil {
		return false
	}
	byID := map[string]event{}
	for _, ev := range decodeEvents(s.dispatch.all()) {
		byID[ev.EventID] = ev
	}
	have := tk.resultIDs()
	for _, e := range tk.Job.Events {
		ev, ok := byID[e.EventID]
		if !ok {
			return false
		}
		for _, id := range answers(ev) {
			if !slices.Contains(have, id) {
				return false
			}
		}
	}
	return true
}

// waitTicket waits until the record's ticket is settled and cond holds,
// and returns it.
func (s *system) waitTicket(t testing.TB, gatewayID, table, sysID, what string, timeout time.Duration, cond func(ticket) bool) ticket {
	t.Helper()
	var tk ticket
	s.eventually(t, fmt.Sprintf("the ticket of %s %s to settle with %s", table, sysID, what), timeout, func() (bool, string) {
		rec := s.get(t, table, sysID)
		tk = s.tickets(t, gatewayID)[sysID]
		return settled(tk, rec) && cond(tk), fmt.Sprintf("record sys_mod_count %d; ticket %s", rec.modCount(), describe(tk))
	})
	return tk
}

// waitResults waits until the ticket's job has recorded every one of the
// results and the ticket is settled, and returns it.
func (s *system) waitResults(t testing.TB, gatewayID, table, sysID string, rs []result, timeout time.Duration) ticket {
	t.Helper()
	var tk ticket
	s.eventually(t, fmt.Sprintf("%d results recorded on %s %s", len(rs), table, sysID), timeout, func() (bool, string) {
		rec := s.get(t, table, sysID)
		tk = s.tickets(t, gatewayID)[sysID]
		have := tk.resultIDs()
		var missing []string
		for _, r := range rs {
			if !slices.Contains(have, r.ResultID) {
				missing = append(missing, r.Status+" "+r.ResultID)
			}
		}
		return len(missing) == 0 && settled(tk, rec), fmt.Sprintf("missing %v; record sys_mod_count %d; ticket %s", missing, rec.modCount(), describe(tk))
	})
	return tk
}

// person is the system as a user of the instance who is not the gateway's
// integration user sees it: what it writes is a person's. It skips the
// test when there is no such user.
func (s *system) person(t testing.TB) *system {
	t.Helper()
	if !s.hasPerson() {
		t.Skipf("needs a user other than the integration user (%s, %s)", envPersonUser, envPersonPassword)
	}
	return s.someone()
}

// someone is the system as a person sees it when there is one, else as
// the integration user: for the changes whose author does not matter (a
// field update is a person's unless the writer made it, whoever signs in).
func (s *system) someone() *system {
	if !s.hasPerson() {
		return s
	}
	p := *s
	p.simUser, p.simPass = s.personUser, s.personPass
	return &p
}

func (s *system) hasPerson() bool { return s.personUser != "" && s.personUser != s.integrationUser }

// entry is a comment or work note, as sys_journal_field holds it.
type entry struct {
	SysID     string `json:"sys_id"`
	Field     string `json:"element"`
	Text      string `json:"value"`
	Author    string `json:"sys_created_by"`
	CreatedOn string `json:"sys_created_on"`
}

// journal reads a record's comments and work notes from sys_journal_field
// through the Table API, oldest first.
func (s *system) journal(t testing.TB, sysID string) []entry {
	t.Helper()
	q := "element_id=" + sysID + "^elementINcomments,work_notes^ORDERBYsys_created_on"
	code, raw := s.simDo(t, http.MethodGet, "/api/now/table/sys_journal_field?sysparm_limit=10000&sysparm_query="+url.QueryEscape(q), nil)
	if code != http.StatusOK {
		t.Fatalf("read the journal of %s: %d %s", sysID, code, raw)
	}
	var out struct {
		Result []entry `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode the journal of %s: %v", sysID, err)
	}
	return out.Result
}

// ofField keeps the entries of one journal field.
func ofField(es []entry, field string) []entry {
	var out []entry
	for _, e := range es {
		if e.Field == field {
			out = append(out, e)
		}
	}
	return out
}

// byAuthor keeps the entries one user wrote.
func byAuthor(es []entry, user string) []entry {
	var out []entry
	for _, e := range es {
		if e.Author == user {
			out = append(out, e)
		}
	}
	return out
}

// repeated returns the journal texts entered more than once.
func repeated(es []entry) []string {
	n := map[string]int{}
	for _, e := range es {
		n[e.Field+": "+e.Text]++
	}
	var out []string
	for text, c := range n {
		if c > 1 {
			out = append(out, fmt.Sprintf("%d× %s", c, text))
		}
	}
	sort.Strings(out)
	return out
}

// containing counts the entries whose text contains sub.
func containing(es []entry, sub string) int {
	n := 0
	for _, e := range es {
		if strings.Contains(e.Text, sub) {
			n++
		}
	}
	return n
}

// texts lists the entries' texts, for failure messages.
func texts(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Field+": "+e.Text)
	}
	return out
}

// depth is a queue's visible plus in-flight messages.
func (s *system) depth(t testing.TB, name string) int {
	t.Helper()
	res, err := s.sqs.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(s.queue(name)),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("queue attributes of %s: %v", name, err)
	}
	n := 0
	for _, v := range res.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// simTime formats a time as ServiceNow's glide_date_time (UTC).
func simTime(t time.Time) string { return t.UTC().Format(time.DateTime) }
