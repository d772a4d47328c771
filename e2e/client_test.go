package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	"github.com/snowgate/snowgate/internal/queue"
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
	return fmt.Sprintf("status %q reason %q last outcome %q sys_mod_count %d attempts %d error %q",
		tk.Status, tk.Reason, tk.LastOutcome, tk.SysModCount, tk.Attempts, tk.LastError)
}

// jobs receives every job on the dispatch queue, deleting each, until the
// queue has been empty for a moment; it returns the gateway's jobs. In a
// deployed system the queue is shared: run the suite where no engine
// consumes it.
func (s *system) jobs(t testing.TB, gatewayID string) []queue.JobEvent {
	t.Helper()
	url := s.queue(schema.EnvDispatchQueueURL)
	var out []queue.JobEvent
	empty := 0
	for empty < 2 {
		res, err := s.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive jobs: %v", err)
		}
		if len(res.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for _, m := range res.Messages {
			var j queue.JobEvent
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &j); err != nil {
				t.Errorf("dispatch queue holds a message that is not a job: %q", aws.ToString(m.Body))
			} else if j.GatewayID == gatewayID {
				out = append(out, j)
			}
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := s.sqs.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del}); err != nil {
			t.Fatalf("delete jobs: %v", err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SysModCount < out[j].SysModCount })
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

// jobContent is what a job says about the record, without the update
// time: two jobs with equal content dispatched the same record state.
func jobContent(j queue.JobEvent) string {
	tk := j.Ticket
	tk.SysUpdatedOn = ""
	b, _ := json.Marshal(tk)
	return j.Table + "/" + j.SysID + " " + string(b)
}

// duplicates returns the record states dispatched more than once.
func duplicates(jobs []queue.JobEvent) []string {
	seen := map[string]int{}
	for _, j := range jobs {
		seen[jobContent(j)]++
	}
	var dup []string
	for c, n := range seen {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%d× %s", n, c))
		}
	}
	sort.Strings(dup)
	return dup
}

// bySysID groups jobs by record, in dispatch order of versions.
func bySysID(jobs []queue.JobEvent) map[string][]queue.JobEvent {
	m := map[string][]queue.JobEvent{}
	for _, j := range jobs {
		m[j.SysID] = append(m[j.SysID], j)
	}
	return m
}

// simTime formats a time as ServiceNow's glide_date_time (UTC).
func simTime(t time.Time) string { return t.UTC().Format(time.DateTime) }
