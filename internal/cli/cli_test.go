package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/cli"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const apiURL = "https://abc123.execute-api.eu-west-1.amazonaws.com"

// harness runs the real command tree against the emulator, with this
// test's own tables, secret prefix and clock.
type harness struct {
	t      *testing.T
	cfg    aws.Config
	table  string
	prefix string
	env    map[string]string

	mu  sync.Mutex
	now time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	res := awstest.Resources(t)
	h := &harness{
		t: t, cfg: awstest.Config(t), table: res.RegistryTable,
		prefix: awstest.UniqueName("snowgate-test-") + "/",
		now:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	h.env = map[string]string{
		schema.EnvRegistryTable: res.RegistryTable,
		schema.EnvStateTable:    res.StateTable,
		schema.EnvAPIURL:        apiURL + "/",
		schema.EnvSecretPrefix:  h.prefix,
		// No stack exists in the emulator: any lookup fails fast and clearly.
		schema.EnvStack: awstest.UniqueName("nostack-"),
	}
	return h
}

func (h *harness) advance(d time.Duration) { h.mu.Lock(); h.now = h.now.Add(d); h.mu.Unlock() }

func (h *harness) clock() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now }

type result struct {
	stdout, stderr string
	code           int
}

// run runs `2501 args…` with stdin and returns what it printed.
func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr strings.Builder
	env := cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return h.env[k] },
		AWSConfig: func(ctx context.Context, opts awsconfig.Options) (aws.Config, error) {
			if opts.Endpoint == "" {
				return h.cfg, nil
			}
			// An explicit endpoint (the unreachable-endpoint case): one attempt.
			cfg, err := awsconfig.Load(ctx, awsconfig.Options{Endpoint: opts.Endpoint, StaticCredentials: true})
			cfg.RetryMaxAttempts = 1
			return cfg, err
		},
		Now: h.clock,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := env.Run(ctx, args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs a command that must succeed.
func (h *harness) ok(stdin string, args ...string) string {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("2501 %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// json runs a command with --output json and decodes its output into v.
func (h *harness) json(v any, stdin string, args ...string) {
	h.t.Helper()
	out := h.ok(stdin, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		h.t.Fatalf("2501 %s: decode %q: %v", strings.Join(args, " "), out, err)
	}
}

// gateway creates a gateway with basic auth and returns it.
func (h *harness) gateway(name string, extra ...string) registry.Gateway {
	h.t.Helper()
	var g registry.Gateway
	args := append([]string{"infra", "gateway", "create", "--name", name, "--instance-url", "https://acme.service-now.com",
		"--auth", "basic", "--username", "svc", "--password-stdin"}, extra...)
	h.json(&g, "pa55word\n", args...)
	return g
}

func (h *harness) store() *registry.Store {
	return registry.New(dynamodb.NewFromConfig(h.cfg), h.table)
}

func (h *harness) secret(arn string) (string, bool) {
	h.t.Helper()
	out, err := secretsmanager.NewFromConfig(h.cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", false
	}
	return aws.ToString(out.SecretString), true
}

// secretNames lists this test's secrets.
func (h *harness) secretNames() []string {
	h.t.Helper()
	var names []string
	p := secretsmanager.NewListSecretsPaginator(secretsmanager.NewFromConfig(h.cfg), &secretsmanager.ListSecretsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			h.t.Fatalf("list secrets: %v", err)
		}
		for _, s := range page.SecretList {
			if name := aws.ToString(s.Name); strings.HasPrefix(name, h.prefix) {
				names = append(names, name)
			}
		}
	}
	return names
}

// items counts the registry table's items.
func (h *harness) items() int {
	h.t.Helper()
	out, err := dynamodb.NewFromConfig(h.cfg).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(h.table)})
	if err != nil {
		h.t.Fatalf("scan: %v", err)
	}
	return len(out.Items)
}

// field returns the value after "Label:" in text output.
func field(t *testing.T, out, label string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), label+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", label, out)
	return ""
}

func TestHelp(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	for _, args := range [][]string{nil, {"help"}, {"--help"}, {"help", "infra"}} {
		out := h.ok("", args...)
		for _, want := range []string{"infra gateway create", "infra webhook rotate-secret"} {
			if !strings.Contains(out, want) {
				t.Errorf("2501 %v lacks %q:\n%s", args, want, out)
			}
		}
	}
	for _, cmd := range []string{
		"infra gateway create", "infra gateway list", "infra gateway show", "infra gateway update", "infra gateway delete", "infra gateway resume",
		"infra webhook create", "infra webhook list", "infra webhook show", "infra webhook update", "infra webhook rotate-secret", "infra webhook delete",
	} {
		t.Run(cmd, func(t *testing.T) {
			for _, args := range [][]string{append(strings.Fields(cmd), "--help"), append(strings.Fields(cmd), "-h"), append([]string{"help"}, strings.Fields(cmd)...)} {
				out := h.ok("", args...)
				for _, want := range []string{"Usage:", "Examples:\n", "2501 " + cmd + " --", "--output"} {
					if !strings.Contains(out, want) {
						t.Errorf("2501 %v lacks %q:\n%s", args, want, out)
					}
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	inactive := h.gateway("dormant", "--active=false")
	active := h.gateway("prod")
	// A second active gateway makes auto-selection ambiguous.
	h.gateway("staging")
	unknownGW := "gtw_00000000-0000-4000-8000-000000000000"
	unknownWH := "whk_00000000-0000-4000-8000-000000000000"
	before := h.items()
	secretsBefore := len(h.secretNames())
	create := func(extra ...string) []string {
		return append([]string{"infra", "gateway", "create", "--name", "x", "--instance-url", "https://x.service-now.com"}, extra...)
	}
	hook := func(extra ...string) []string {
		return append([]string{"infra", "webhook", "create", "--name", "x", "--source-type", "servicenow"}, extra...)
	}

	tests := []struct {
		name   string
		stdin  string
		args   []string
		env    map[string]string // overrides
		code   int
		stderr string
	}{
		{name: "unknown command", args: []string{"infra", "gatway", "list"}, code: 2, stderr: `2501: unknown command "infra gatway list"`},
		{name: "group without command", args: []string{"infra", "gateway"}, code: 2, stderr: "2501: gateway: choose a command: check, create, delete, list, resume, show, update"},
		{name: "unknown flag", args: []string{"infra", "webhook", "list", "--colour"}, code: 2, stderr: "2501: webhook list: --colour is not a flag of this command"},
		{name: "positional argument", args: []string{"infra", "webhook", "show", "whk_1"}, code: 2, stderr: `unexpected argument "whk_1"`},
		{name: "bad output format", args: []string{"infra", "gateway", "list", "--output", "yaml"}, code: 2, stderr: "--output must be text or json"},
		{name: "gateway: missing name", args: []string{"infra", "gateway", "create", "--instance-url", "https://x.service-now.com", "--auth", "basic"}, code: 2, stderr: "2501: gateway create: --name is required"},
		{name: "gateway: missing instance", args: []string{"infra", "gateway", "create", "--name", "x"}, code: 2, stderr: "--instance-url is required"},
		{name: "gateway: plain http", args: create("--instance-url", "http://x.service-now.com", "--auth", "basic"), code: 2, stderr: "--instance-url must use https"},
		{name: "gateway: missing auth", args: create(), code: 2, stderr: "--auth is required"},
		{name: "gateway: unknown auth", args: create("--auth", "kerberos"), code: 2, stderr: "--auth must be basic, oauth-client-credentials or oauth-password"},
		{name: "gateway: basic without username", stdin: "pw\n", args: create("--auth", "basic", "--password-stdin"), code: 2, stderr: "--auth basic needs --username"},
		{name: "gateway: basic without password", args: create("--auth", "basic", "--username", "u"), code: 2, stderr: "--auth basic needs --password-stdin"},
		{name: "gateway: client id with basic", stdin: "pw\n", args: create("--auth", "basic", "--username", "u", "--password-stdin", "--client-id", "c"), code: 2, stderr: "--client-id is not used with --auth basic"},
		{name: "gateway: empty stdin", args: create("--auth", "basic", "--username", "u", "--password-stdin"), code: 2, stderr: "stdin has no password"},
		{name: "gateway: oauth-password with one line", stdin: "pw\n", args: create("--auth", "oauth-password", "--username", "u", "--client-id", "c", "--password-stdin", "--client-secret-stdin"), code: 2, stderr: "stdin has no client secret"},
		{name: "gateway: dedup window", stdin: "pw\n", args: create("--auth", "basic", "--username", "u", "--password-stdin", "--dedup-window-minutes", "-5"), code: 2, stderr: "--dedup-window-minutes must be -1"},
		{name: "gateway: bad bool", args: []string{"infra", "gateway", "update", "--id", active.ID, "--active=maybe"}, code: 2, stderr: `invalid value "maybe" for --active: want true or false`},
		{name: "gateway: malformed id", args: []string{"infra", "gateway", "show", "--id", "gtw_123"}, code: 2, stderr: `--id "gtw_123" is not a gateway id`},
		{name: "gateway: unknown id", args: []string{"infra", "gateway", "show", "--id", unknownGW}, code: 1, stderr: "gateway " + unknownGW + " not found"},
		{name: "gateway: rate limit without its unit", stdin: "pw\n", args: create("--auth", "basic", "--username", "u", "--password-stdin", "--rate-limit", "1000"), code: 2,
			stderr: `2501: gateway create: --rate-limit "1000": give requests per hour, such as 1000/h (or default, 3600/h)`},
		{name: "gateway: rate limit of none", args: []string{"infra", "gateway", "update", "--id", active.ID, "--rate-limit", "0/h"}, code: 2,
			stderr: "2501: gateway update: --rate-limit must be at least 1/h (or default, 3600/h)"},
		{name: "gateway: rate limit too high", args: []string{"infra", "gateway", "update", "--id", active.ID, "--rate-limit", "5000000/hour"}, code: 2,
			stderr: "--rate-limit 5000000/h is more than the budget counts: at most 3600000/h"},
		{name: "gateway: max concurrency too high", stdin: "pw\n", args: create("--auth", "basic", "--username", "u", "--password-stdin", "--max-concurrency", "65"), code: 2,
			stderr: "2501: gateway create: --max-concurrency must be 1 to 64 requests at once (or 0, the default 2)"},
		{name: "gateway: max concurrency negative", args: []string{"infra", "gateway", "update", "--id", active.ID, "--max-concurrency", "-1"}, code: 2,
			stderr: "--max-concurrency must be 1 to 64 requests at once"},
		{name: "gateway: max concurrency not a number", args: []string{"infra", "gateway", "update", "--id", active.ID, "--max-concurrency", "two"}, code: 2,
			stderr: `invalid value "two" for --max-concurrency`},
		{name: "gateway: resume without id", args: []string{"infra", "gateway", "resume"}, code: 2, stderr: "2501: gateway resume: --id is required"},
		{name: "gateway: resume unknown", args: []string{"infra", "gateway", "resume", "--id", unknownGW}, code: 1, stderr: "gateway " + unknownGW + " not found"},
		{name: "gateway: update nothing", args: []string{"infra", "gateway", "update", "--id", active.ID}, code: 2, stderr: "nothing to change"},
		{name: "gateway: update unknown", args: []string{"infra", "gateway", "update", "--id", unknownGW, "--name", "n"}, code: 1, stderr: "not found"},
		{name: "gateway: delete unknown", args: []string{"infra", "gateway", "delete", "--id", unknownGW}, code: 1, stderr: "not found"},
		{name: "webhook: missing name", args: []string{"infra", "webhook", "create", "--source-type", "servicenow", "--event-type", "incident"}, code: 2, stderr: "2501: webhook create: --name is required"},
		{name: "webhook: missing source type", args: []string{"infra", "webhook", "create", "--name", "x", "--event-type", "incident"}, code: 2, stderr: "--source-type is required"},
		{name: "webhook: unknown source type", args: hook("--source-type", "jira", "--event-type", "incident"), code: 2, stderr: "2501: webhook create: --source-type must be servicenow"},
		{name: "webhook: missing event type", args: hook(), code: 2, stderr: "--event-type is required"},
		{name: "webhook: unknown event type", args: hook("--event-type", "problem"), code: 2, stderr: "2501: webhook create: --event-type must be incident or change_request"},
		{name: "webhook: unknown signing", args: hook("--event-type", "incident", "--signing", "jwt"), code: 2, stderr: "--signing must be secret or hmac"},
		{name: "webhook: malformed gateway id", args: hook("--event-type", "incident", "--gateway-id", "prod"), code: 2, stderr: `--gateway-id "prod" is not a gateway id`},
		{name: "webhook: unknown gateway", args: hook("--event-type", "incident", "--gateway-id", unknownGW), code: 1, stderr: "gateway " + unknownGW + " not found"},
		{name: "webhook: inactive gateway", args: hook("--event-type", "incident", "--gateway-id", inactive.ID), code: 1, stderr: "gateway " + inactive.ID + " (dormant) is inactive"},
		{name: "webhook: two active gateways", args: hook("--event-type", "incident"), code: 2, stderr: "2 active gateways, choose one with --gateway-id: "},
		{name: "webhook: no API URL", args: hook("--event-type", "incident", "--gateway-id", active.ID), env: map[string]string{schema.EnvAPIURL: ""}, code: 1, stderr: "no API URL: set --api-url or SNOWGATE_API_URL"},
		{name: "webhook: malformed id", args: []string{"infra", "webhook", "show", "--id", "whk_x"}, code: 2, stderr: `--id "whk_x" is not a webhook id`},
		{name: "webhook: missing id", args: []string{"infra", "webhook", "delete"}, code: 2, stderr: "--id is required"},
		{name: "webhook: unknown id", args: []string{"infra", "webhook", "show", "--id", unknownWH}, code: 1, stderr: "webhook " + unknownWH + " not found"},
		{name: "webhook: delete unknown", args: []string{"infra", "webhook", "delete", "--id", unknownWH}, code: 1, stderr: "not found"},
		{name: "webhook: rotate unknown", args: []string{"infra", "webhook", "rotate-secret", "--id", unknownWH}, code: 1, stderr: "not found"},
		{name: "webhook: negative grace", args: []string{"infra", "webhook", "rotate-secret", "--id", unknownWH, "--grace", "-1h"}, code: 2, stderr: "--grace must not be negative"},
		{name: "webhook: bad grace", args: []string{"infra", "webhook", "rotate-secret", "--id", unknownWH, "--grace", "a day"}, code: 2, stderr: "invalid value"},
		{name: "missing table", args: []string{"infra", "gateway", "list", "--registry-table", "no-such-table"}, code: 1, stderr: `DynamoDB table not found (registry table "no-such-table")`},
		{name: "missing table on create", stdin: "pw\n", args: create("--auth", "basic", "--username", "u", "--password-stdin", "--registry-table", "no-such-table"), code: 1, stderr: "DynamoDB table not found"},
		{name: "no registry table anywhere", args: []string{"infra", "webhook", "list"}, env: map[string]string{schema.EnvRegistryTable: ""}, code: 1, stderr: "no registry table: set --registry-table or SNOWGATE_REGISTRY_TABLE, or deploy the stack (read stack"},
		{name: "unreachable DynamoDB", args: []string{"infra", "gateway", "list", "--endpoint-url", "http://127.0.0.1:9"}, code: 1, stderr: "cannot reach http://127.0.0.1:9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = h.env[k]
				h.env[k] = v
			}
			defer func() {
				for k, v := range saved {
					h.env[k] = v
				}
			}()
			r := h.run(tc.stdin, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.stderr)
			}
			if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "2501: ") {
				t.Errorf("stderr = %q, want one line starting with \"2501: \"", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
	if got := h.items(); got != before {
		t.Errorf("registry holds %d items after the bad commands, want %d (nothing half-written)", got, before)
	}
	if got := len(h.secretNames()); got != secretsBefore {
		t.Errorf("%d secrets after the bad commands, want %d (a secret created before a failed write must be deleted)", got, secretsBefore)
	}
}
