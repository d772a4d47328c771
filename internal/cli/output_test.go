package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/cli"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// schemaDir holds the documented shape of every --output json.
const schemaDir = "../../docs/schemas"

// noJSONOutput lists commands that print nothing a script would parse, so
// that they need no schema; each with the reason.
var noJSONOutput = map[string]string{}

// jsonCase runs one command with --output json against the emulator and
// validates what it printed against its schema.
type jsonCase struct {
	name   string // subtest name; the path when empty
	path   string // the command, as registered
	schema string // file name under docs/schemas
	// args returns the command's flags (without --output json) and its
	// stdin; it may prepare what the command needs.
	args func(t *testing.T, f *jsonFixture) (flags []string, stdin string)
	// check looks further at a valid output (and may remember ids).
	check func(t *testing.T, f *jsonFixture, out []byte)
}

// jsonFixture is what the cases share: a harness whose environment names
// every table and queue, a ServiceNow simulator, and what earlier cases
// created.
type jsonFixture struct {
	h   *harness
	sim *snowsim.Server

	gatewayID   string
	secretHook  string // webhook signed with a secret
	hmacHook    string // webhook signed with HMAC
	claimToken  string // of a ticket left in processing
	incidentIDs []string
}

// jsonCases are every command path that prints JSON, in the order they
// run (later cases use what earlier ones made).
func jsonCases() []jsonCase {
	return []jsonCase{
		{path: "infra gateway create", schema: "gateway.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--name", "ops", "--instance-url", f.sim.URL, "--auth", "basic", "--username", "svc",
					"--password-stdin", "--description", "the ops instance", "--assignment-group-filter", "Network",
					"--org", "acme", "--mode", "semi-automatic", "--on-success", "comment", "--dedup-note=false"}, "pa55word\n"
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var g struct {
					ID       string   `json:"id"`
					GroupIDs []string `json:"assignment_group_ids"`
					Scope    string   `json:"scope"`
				}
				decode(t, out, &g)
				f.gatewayID = g.ID
				if len(g.GroupIDs) != 1 || g.Scope != "active=true^assignment_groupIN"+g.GroupIDs[0] {
					t.Errorf("gateway create: assignment_group_ids %q, scope %q; want Network's sys_id in both", g.GroupIDs, g.Scope)
				}
			}},
		{path: "infra gateway check", schema: "gateway-check.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				// Before any webhook: the simulator has none of their rules.
				return []string{"--id", f.gatewayID}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					OK     bool `json:"ok"`
					Checks []struct {
						Name   string `json:"name"`
						Status string `json:"status"`
					} `json:"checks"`
				}
				decode(t, out, &v)
				if !v.OK || len(v.Checks) != 9 {
					t.Errorf("gateway check against the simulator: ok %v with %d checks, want true with 9:\n%s", v.OK, len(v.Checks), out)
				}
			}},
		{path: "infra gateway list", schema: "gateway-list.schema.json",
			args: noFlags},
		{path: "infra webhook create", schema: "webhook-created.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--name", "ops-incidents", "--source-type", "servicenow", "--event-type", "incident", "--gateway-id", f.gatewayID}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				f.secretHook = createdID(t, out)
			}},
		{name: "infra webhook create --signing hmac", path: "infra webhook create", schema: "webhook-created.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--name", "ops-changes", "--source-type", "servicenow", "--event-type", "change_request",
					"--gateway-id", f.gatewayID, "--signing", "hmac", "--description", "signed"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				f.hmacHook = createdID(t, out)
			}},
		{path: "infra webhook rotate-secret", schema: "webhook-created.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.secretHook, "--grace", "1h"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					Secrets []struct {
						Current   bool   `json:"current"`
						ExpiresAt string `json:"expires_at"`
					} `json:"secrets"`
				}
				decode(t, out, &v)
				if len(v.Secrets) != 2 || !v.Secrets[0].Current || v.Secrets[1].ExpiresAt == "" {
					t.Errorf("secrets after a rotation with grace = %+v, want the current one and one expiring", v.Secrets)
				}
			}},
		{name: "infra webhook rotate-secret hmac", path: "infra webhook rotate-secret", schema: "webhook-created.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.hmacHook, "--grace", "1h"}, ""
			}},
		{path: "infra webhook list", schema: "webhook-list.schema.json",
			args: noFlags},
		{path: "infra webhook show", schema: "webhook.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return []string{"--id", f.hmacHook}, "" }},
		{path: "infra webhook update", schema: "webhook.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.secretHook, "--description", "incidents of ops"}, ""
			}},
		{path: "infra gateway show", schema: "gateway-show.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				// A budget with every key: a learned limit, tokens and a
				// slot taken, then a pause.
				f.drawOnBudget(t)
				return []string{"--id", f.gatewayID}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					Webhooks []struct {
						ID string `json:"id"`
					} `json:"webhooks"`
					Budget map[string]any `json:"budget"`
				}
				decode(t, out, &v)
				if len(v.Webhooks) != 2 {
					t.Errorf("gateway show lists %d webhooks, want 2", len(v.Webhooks))
				}
				if v.Budget["paused"] != true || v.Budget["learned_limit_per_hour"] == nil || v.Budget["slots_in_use"] != 1.0 {
					t.Errorf("gateway show's budget = %v, want it paused, with a learned limit and a slot in use", v.Budget)
				}
			}},
		{path: "infra gateway resume", schema: "gateway-resume.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return []string{"--id", f.gatewayID}, "" },
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					Resumed bool   `json:"resumed"`
					Cause   string `json:"pause_cause"`
				}
				decode(t, out, &v)
				if !v.Resumed || v.Cause != string(budget.CauseRateLimited) {
					t.Errorf("gateway resume = %s, want the rate_limited pause lifted", out)
				}
			}},
		{name: "infra gateway resume when not paused", path: "infra gateway resume", schema: "gateway-resume.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return []string{"--id", f.gatewayID}, "" }},
		{name: "infra gateway show without its state table", path: "infra gateway show", schema: "gateway-show.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.gatewayID, "--state-table", "no-such-table"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v map[string]any
				decode(t, out, &v)
				if _, ok := v["budget"]; ok || v["budget_unavailable"] == nil {
					t.Errorf("gateway show without its state table = %s, want budget_unavailable and no budget", out)
				}
			}},
		{path: "infra gateway update", schema: "gateway.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.gatewayID, "--escalation-group", "Ops escalations", "--dedup-window-minutes", "45"}, ""
			}},
		{path: "infra reconcile", schema: "reconcile.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				for range 2 {
					f.h.advance(time.Second)
					rec, err := f.sim.Sim.Insert("incident", map[string]string{"short_description": "lost webhook", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"})
					if err != nil {
						t.Fatal(err)
					}
					f.incidentIDs = append(f.incidentIDs, rec["sys_id"])
				}
				f.h.advance(2 * time.Minute)
				return []string{"--since", "1h"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					Passes []struct {
						Table     string `json:"table"`
						Scanned   int    `json:"scanned"`
						Watermark *struct {
							SysID string `json:"sys_id"`
						} `json:"watermark"`
					} `json:"passes"`
				}
				decode(t, out, &v)
				found := false
				for _, p := range v.Passes {
					if p.Table == "incident" && p.Scanned > 0 && p.Watermark != nil && p.Watermark.SysID != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("reconcile passes = %+v, want an incident pass that scanned records and has a watermark", v.Passes)
				}
			}},
		{path: "infra ticket list", schema: "ticket-list.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				f.putTickets(t)
				return []string{"--gateway-id", f.gatewayID}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var ts []map[string]any
				decode(t, out, &ts)
				if len(ts) != 4 {
					t.Errorf("ticket list printed %d tickets, want 4", len(ts))
				}
			}},
		{path: "infra ticket show", schema: "ticket-list.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--table", "change_request", "--sys-id", "cccc0003"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var ts []map[string]any
				decode(t, out, &ts)
				if len(ts) != 1 || ts[0]["job"] != nil || ts[0]["job_state"] != nil {
					t.Errorf("ticket show of a ticket that never had a job = %s, want one ticket without job and job_state", out)
				}
			}},
		{name: "infra ticket show with a job", path: "infra ticket show", schema: "ticket-list.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--table", "incident", "--sys-id", "aaaa0001"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var ts []struct {
					JobState string `json:"job_state"`
					Job      struct {
						ID      string           `json:"id"`
						Events  []map[string]any `json:"events"`
						Results []map[string]any `json:"results"`
					} `json:"job"`
				}
				decode(t, out, &ts)
				if len(ts) != 1 || ts[0].JobState != state.JobSucceeded || ts[0].Job.ID != "job_aaaa0001" || len(ts[0].Job.Events) != 2 || len(ts[0].Job.Results) != 2 {
					t.Errorf("ticket show of a ticket with a job = %s, want its succeeded job with 2 events and 2 results", out)
				}
			}},
		{path: "infra dlq list", schema: "dlq-list.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				f.h.send(f.h.env[schema.EnvIntakeDLQURL],
					sqsMessage{Body: intakeBody(t, f.gatewayID, "dddd0001"), Attrs: map[string]string{queue.AttrSource: "String=webhook"}},
					sqsMessage{Body: "not json{", Attrs: map[string]string{queue.AttrSource: "String=reconcile"}})
				return []string{"--queue", "intake"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var ms []map[string]any
				decode(t, out, &ms)
				if len(ms) != 2 {
					t.Errorf("dlq list printed %d messages, want 2", len(ms))
				}
			}},
		{name: "infra dlq redrive --dry-run", path: "infra dlq redrive", schema: "dlq-redrive.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return []string{"--dry-run"}, "" }},
		{path: "infra dlq redrive", schema: "dlq-redrive.schema.json",
			args: noFlags},
		{path: "infra webhook delete", schema: "webhook-delete.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return []string{"--id", f.secretHook}, "" }},
		{path: "version", schema: "version.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) { return nil, "" }},
		{path: "infra gateway delete", schema: "gateway-delete.schema.json",
			args: func(t *testing.T, f *jsonFixture) ([]string, string) {
				return []string{"--id", f.gatewayID, "--force"}, ""
			},
			check: func(t *testing.T, f *jsonFixture, out []byte) {
				var v struct {
					DeletedWebhooks []string `json:"deleted_webhooks"`
				}
				decode(t, out, &v)
				if diff := cmp.Diff([]string{f.hmacHook}, v.DeletedWebhooks); diff != "" {
					t.Errorf("deleted_webhooks (-want +got):\n%s", diff)
				}
			}},
	}
}

func noFlags(*testing.T, *jsonFixture) ([]string, string) { return nil, "" }

// drawOnBudget has the gateway's budget learn a limit, lend a slot, spend
// tokens, and be paused, as the functions would.
func (f *jsonFixture) drawOnBudget(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g, err := f.h.store().Gateway(ctx, f.gatewayID)
	if err != nil {
		t.Fatal(err)
	}
	b := budget.New(dynamodb.NewFromConfig(f.h.cfg), f.h.env[schema.EnvStateTable], budget.Options{Now: f.h.clock})
	if err := b.Observe(ctx, g.ID, g.BudgetSettings(), budget.RateLimit{Limit: 1000, Remaining: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, g.ID, g.BudgetSettings(), 3); err != nil {
		t.Fatal(err)
	}
	until := f.h.clock().Add(time.Hour)
	if err := b.Pause(ctx, g.ID, until, budget.CauseRateLimited, "429 until "+until.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, out []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
}

func createdID(t *testing.T, out []byte) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	decode(t, out, &v)
	return v.ID
}

// putTickets stores tickets as the processor leaves them: decided in
// several ways, and one still claimed (its claim token must not show).
func (f *jsonFixture) putTickets(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s := state.New(dynamodb.NewFromConfig(f.h.cfg), f.h.env[schema.EnvStateTable])
	f.claimToken = "claim-" + awstest.UniqueName("")
	put := func(table, sysID string, m state.Mirror, r *state.Result) {
		c := state.Claim{
			Key: state.Key{GatewayID: f.gatewayID, Table: table, SysID: sysID}, Mirror: m,
			SysModCount: 3, SysUpdatedOn: "2026-03-01 11:59:30", Source: queue.SourceWebhook, WebhookID: f.secretHook,
			Token: f.claimToken, Lease: time.Hour,
		}
		if _, err := s.Claim(ctx, c); err != nil {
			t.Fatalf("claim %s: %v", sysID, err)
		}
		if r == nil {
			return
		}
		r.Version = c.SysModCount
		if err := s.Finish(ctx, c.Key, c.Token, *r); err != nil {
			t.Fatalf("finish %s: %v", sysID, err)
		}
	}
	inc := state.Mirror{Number: "INC0010001", State: "1", Priority: "3", ShortDescription: "disk full", Description: "on db1",
		AssignmentGroup: "287ebd7da9fe198100f92cc8d1d2154e", AssignmentGroupName: "Network", ConfigurationItem: "b0c4030ac0a800090152e7a4564ca36c", Active: true}
	put("incident", "aaaa0001", inc, &state.Result{Status: state.StatusAccepted, Reason: "in scope", JobID: "job_aaaa0001", Fingerprint: "fp1", WriteBack: "done"})
	at := time.Date(2026, 3, 1, 12, 0, 1, 500_000_000, time.UTC)
	putJob(t, f.h, state.Key{GatewayID: f.gatewayID, Table: "incident", SysID: "aaaa0001"}, state.Job{
		ID: "job_aaaa0001", State: state.JobSucceeded, Episode: 1, Sequence: 2, OpenedAt: at, EndedAt: at.Add(time.Minute),
		Events: []state.JobEventRecord{
			{Type: queue.EventJobCreated, Sequence: 1, EventID: "evt_1", At: at},
			{Type: queue.EventJobUpdated, Sequence: 2, EventID: "evt_2", At: at.Add(time.Second)},
		},
		Results: []state.JobResultRecord{
			{ResultID: "res_1", Status: queue.ResultInProgress, At: at.Add(2 * time.Second), Applied: "work note"},
			{ResultID: "res_2", Status: queue.ResultSucceeded, At: at.Add(time.Minute), Applied: "resolved, comment"},
		},
	})
	dup := inc
	dup.Number = "INC0010002"
	put("incident", "bbbb0002", dup, &state.Result{Status: state.StatusDeduplicated, Reason: "same as INC0010001",
		Fingerprint: "fp1", DuplicateOf: "aaaa0001", DuplicateOfNumber: "INC0010001"})
	chg := state.Mirror{Number: "CHG0030001", State: "-2", ShortDescription: "patch", Active: true, Type: "normal", Approval: "approved",
		StartDate: "2026-03-02 08:00:00", EndDate: "2026-03-02 10:00:00"}
	put("change_request", "cccc0003", chg, &state.Result{Status: state.StatusDeferred, Reason: "window opens later",
		Due: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)})
	busy := inc
	busy.Number = "INC0010004"
	put("incident", "eeee0004", busy, nil)
}

// keyPrefixes start the keys of internal items: no output shows one.
var keyPrefixes = []string{"TICKET#", "GATEWAY#", "WEBHOOK#", "PATH#", "WATERMARK#", "BUDGET#", "FP#"}

// internalKey matches the names of internal fields, as JSON keys.
var internalKey = regexp.MustCompile(`^(pk|sk|kind|claim.*|lease.*|content_hash|fingerprint|decided_version|sha256|secret_hashes|signing_keys|secret_arn)$`)

// snakeCase is the form of every key.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// jsonKeys returns every object key in v, except those of maps whose keys
// are data (a message's attributes, by name).
func jsonKeys(v any, parent string) []string {
	var keys []string
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if parent != "attributes" {
				keys = append(keys, k)
			}
			keys = append(keys, jsonKeys(sub, k)...)
		}
	case []any:
		for _, sub := range v {
			keys = append(keys, jsonKeys(sub, parent)...)
		}
	}
	return keys
}

func TestJSONOutputMatchesSchema(t *testing.T) {
	res := awstest.Resources(t)
	h := &harness{t: t, cfg: awstest.Config(t), table: res.RegistryTable,
		prefix: awstest.UniqueName("snowgate-test-") + "/", now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h.env = res.Env()
	h.env[schema.EnvAPIURL] = apiURL + "/"
	h.env[schema.EnvSecretPrefix] = h.prefix
	h.env[schema.EnvStack] = awstest.UniqueName("nostack-")
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser("svc", "pa55word"), snowsim.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	// The groups the gateway's filter and escalation group resolve to.
	if err := sim.Sim.Seed(strings.NewReader(`{"sys_user_group": [
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "name": "Network"},
		{"sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03", "name": "Ops escalations"}]}`)); err != nil {
		t.Fatal(err)
	}
	f := &jsonFixture{h: h, sim: sim}
	schemas := compileSchemas(t)

	for _, tc := range jsonCases() {
		name := tc.name
		if name == "" {
			name = tc.path
		}
		ok := t.Run(name, func(t *testing.T) {
			h.t = t
			flags, stdin := tc.args(t, f)
			args := append(append(strings.Fields(tc.path), flags...), "--output", "json")
			r := h.run(stdin, args...)
			if r.code != 0 {
				t.Fatalf("2501 %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
			}
			out := []byte(r.stdout)
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("2501 %s printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
			}
			sch := schemas[tc.schema]
			if sch == nil {
				t.Fatalf("no schema %s", tc.schema)
			}
			if err := sch.Validate(inst); err != nil {
				t.Fatalf("2501 %s: output does not match %s: %v\n%s", strings.Join(args, " "), tc.schema, err, out)
			}
			if err := sch.Validate(withExtraKey(inst)); err == nil {
				t.Errorf("%s accepts the output with an undocumented key added: objects must be closed", tc.schema)
			}
			f.checkNoLeak(t, out)
			if tc.check != nil {
				tc.check(t, f, out)
			}
		})
		h.t = t
		if !ok {
			t.Fatalf("stopped after %s: the cases that follow use what it makes", name)
		}
	}
}

// withExtraKey returns inst with a key no schema documents added to its
// top-level object, or to the first object of a top-level array (inst
// itself is left alone unless it is an empty array, which it returns).
func withExtraKey(inst any) any {
	add := func(m map[string]any) map[string]any {
		out := map[string]any{"claim_token": "x"}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	switch v := inst.(type) {
	case map[string]any:
		return add(v)
	case []any:
		if len(v) > 0 {
			if m, ok := v[0].(map[string]any); ok {
				return append([]any{add(m)}, v[1:]...)
			}
		}
		return []any{map[string]any{"claim_token": "x"}}
	}
	return inst
}

// checkNoLeak fails when out has a key that is not snake_case or names an
// internal field, or holds a key prefix, the claim token, a webhook's
// secret hash or where its signing keys are kept.
func (f *jsonFixture) checkNoLeak(t *testing.T, out []byte) {
	t.Helper()
	for _, p := range keyPrefixes {
		if bytes.Contains(out, []byte(p)) {
			t.Errorf("output contains the key prefix %q:\n%s", p, out)
		}
	}
	var doc any
	decode(t, out, &doc)
	for _, k := range jsonKeys(doc, "") {
		if !snakeCase.MatchString(k) || internalKey.MatchString(k) {
			t.Errorf("output has the key %q: keys are snake_case product names, never internal fields", k)
		}
	}
	if f.claimToken != "" && bytes.Contains(out, []byte(f.claimToken)) {
		t.Errorf("output contains the claim token %q:\n%s", f.claimToken, out)
	}
	for _, id := range []string{f.secretHook, f.hmacHook} {
		if id == "" {
			continue
		}
		w, err := f.h.store().Webhook(context.Background(), id)
		if err != nil {
			continue // deleted
		}
		for _, s := range w.SecretHashes {
			if bytes.Contains(out, []byte(s.SHA256)) {
				t.Errorf("output contains the secret hash of %s:\n%s", id, out)
			}
		}
		for _, k := range w.SigningKeys {
			if bytes.Contains(out, []byte(k.SecretARN)) {
				t.Errorf("output contains the signing key ARN of %s:\n%s", id, out)
			}
		}
	}
}

// compileSchemas compiles every schema under docs/schemas, asserting
// formats (date-time, uri) as well as structure.
func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s (%v)", schemaDir, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, file := range files {
		abs, err := filepath.Abs(file)
		if err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(abs)
		if err != nil {
			t.Fatalf("compile %s: %v", file, err)
		}
		out[filepath.Base(file)] = sch
	}
	return out
}

// TestEveryJSONOutputHasASchemaTest fails when a registered command has no
// case in jsonCases (nor a reason in noJSONOutput), when a case names a
// command that does not exist or a schema that is not documented, and
// when docs/schemas/README.md disagrees with the cases.
func TestEveryJSONOutputHasASchemaTest(t *testing.T) {
	tested := map[string][]string{} // path -> schemas
	for _, tc := range jsonCases() {
		if !slices.Contains(tested[tc.path], tc.schema) {
			tested[tc.path] = append(tested[tc.path], tc.schema)
		}
	}
	registered := cli.CommandPaths()
	for _, p := range registered {
		if _, ok := tested[p]; !ok && noJSONOutput[p] == "" {
			t.Errorf("command %q prints --output json but has no case in jsonCases (add one, with its schema under docs/schemas)", p)
		}
	}
	for p := range tested {
		if !slices.Contains(registered, p) {
			t.Errorf("jsonCases tests %q, which is not a registered command", p)
		}
	}
	for p := range noJSONOutput {
		if !slices.Contains(registered, p) {
			t.Errorf("noJSONOutput lists %q, which is not a registered command", p)
		}
	}

	// The README's table: one row per command, naming its schema.
	readme, err := os.ReadFile(filepath.Join(schemaDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `2501 ([a-z -]+)` \\| \\[([a-z-]+\\.schema\\.json)\\]")
	documented := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = append(documented[m[1]], m[2])
	}
	for _, m := range []map[string][]string{tested, documented} {
		for _, v := range m {
			sort.Strings(v)
		}
	}
	if diff := cmp.Diff(tested, documented); diff != "" {
		t.Errorf("docs/schemas/README.md lists other commands or schemas than jsonCases tests (-tested +documented):\n%s", diff)
	}
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	for _, file := range files {
		if !strings.Contains(string(readme), "("+filepath.Base(file)+")") {
			t.Errorf("docs/schemas/README.md does not link %s", filepath.Base(file))
		}
	}
}

// TestSchemaEnumsMatchTheCode fails when a documented list of values
// drifts from the one the code validates against.
func TestSchemaEnumsMatchTheCode(t *testing.T) {
	read := func(file string) map[string]any {
		b, err := os.ReadFile(filepath.Join(schemaDir, file))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return doc
	}
	enum := func(doc map[string]any, path ...string) []string {
		var v any = doc
		for _, p := range path {
			v = v.(map[string]any)[p]
		}
		var out []string
		for _, x := range v.(map[string]any)["enum"].([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	gateway, ticket := read("gateway.schema.json"), read("ticket.schema.json")
	tests := []struct {
		name       string
		documented []string
		code       []string
	}{
		{"gateway mode", enum(gateway, "properties", "mode"), registry.Modes},
		{"gateway on_success", enum(gateway, "properties", "on_success"), registry.SuccessActions},
		{"gateway on_failure", enum(gateway, "properties", "on_failure"), registry.FailureActions},
		{"gateway show budget pause_cause", enum(read("gateway-show.schema.json"), "properties", "budget", "properties", "pause_cause"),
			[]string{string(budget.CauseRateLimited), string(budget.CauseOverloaded), string(budget.CauseUnavailable), string(budget.CauseAuth), string(budget.CauseOperator)}},
		{"ticket job_state", enum(ticket, "properties", "job_state"), state.JobStates},
		{"ticket job.state", enum(ticket, "properties", "job", "properties", "state"), state.JobStates},
		{"ticket job result status", enum(ticket, "properties", "job", "properties", "results", "items", "properties", "status"), queue.ResultStatuses},
		{"ticket job event type", enum(ticket, "properties", "job", "properties", "events", "items", "properties", "type"),
			[]string{queue.EventJobCreated, queue.EventJobUpdated, queue.EventJobFollowUp, queue.EventJobCancelled}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.code, tc.documented); diff != "" {
			t.Errorf("%s: the schema's enum differs from the code's list (-code +schema):\n%s", tc.name, diff)
		}
	}
	// The statuses ticket list --status accepts, in any order.
	statuses, accepted := enum(ticket, "properties", "status"), cli.TicketStatuses()
	slices.Sort(statuses)
	slices.Sort(accepted)
	if diff := cmp.Diff(accepted, statuses); diff != "" {
		t.Errorf("ticket status: the schema's enum differs from what ticket list --status accepts (-code +schema):\n%s", diff)
	}
}

// TestSchemasAreClosedAndDescribed checks what makes a schema a contract:
// every object lists its properties and allows no others (so a leaked
// field fails validation), and every property says what it means.
func TestSchemasAreClosedAndDescribed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s (%v)", schemaDir, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		name := filepath.Base(file)
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", name, doc["$schema"])
		}
		if doc["description"] == nil {
			t.Errorf("%s: no description", name)
		}
		walkSchema(t, name, "#", doc)
	}
}

func walkSchema(t *testing.T, file, at string, s map[string]any) {
	t.Helper()
	if props, ok := s["properties"].(map[string]any); ok {
		if s["additionalProperties"] != false {
			t.Errorf("%s %s: an object with properties needs \"additionalProperties\": false", file, at)
		}
		for k, v := range props {
			p, _ := v.(map[string]any)
			if p["description"] == nil && p["$ref"] == nil {
				t.Errorf("%s %s/properties/%s: no description", file, at, k)
			}
			walkSchema(t, file, at+"/properties/"+k, p)
		}
	} else if s["type"] == "object" {
		if _, isMap := s["additionalProperties"].(map[string]any); !isMap {
			t.Errorf("%s %s: an object needs its properties listed (or a value schema for a map)", file, at)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			walkSchema(t, file, at+"/"+k, sub)
		}
	}
}

// TestPrintTakesAView fails when a command passes anything but a JSON view
// to c.Print: a call to one of the *Output converters or a *JSON literal,
// both declared in output.go. Printing a storage struct directly is how
// internal fields leaked before.
func TestPrintTakesAView(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Print" || len(call.Args) != 2 {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "c" {
				return true
			}
			calls++
			if !isView(call.Args[0]) {
				t.Errorf("%s: c.Print's first argument must be a view from output.go (a fooOutput(…) call or a fooJSON{…} literal)", fset.Position(call.Pos()))
			}
			return true
		})
	}
	if calls == 0 {
		t.Error("found no c.Print call: has printing moved? Update this test")
	}
}

func isView(e ast.Expr) bool {
	switch v := e.(type) {
	case *ast.CallExpr:
		id, ok := v.Fun.(*ast.Ident)
		return ok && strings.HasSuffix(id.Name, "Output")
	case *ast.CompositeLit:
		id, ok := v.Type.(*ast.Ident)
		return ok && strings.HasSuffix(id.Name, "JSON")
	}
	return false
}
