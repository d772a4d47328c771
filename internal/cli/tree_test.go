package cli_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/cli"
	"github.com/snowgate/snowgate/internal/schema"
)

// groupPaths and commandPaths are the documented command tree.
var (
	groupPaths   = []string{"", "infra", "infra gateway", "infra webhook", "infra ticket", "infra dlq", "completion"}
	commandPaths = []string{
		"infra gateway create", "infra gateway list", "infra gateway show", "infra gateway update", "infra gateway delete",
		"infra webhook create", "infra webhook list", "infra webhook show", "infra webhook update", "infra webhook rotate-secret", "infra webhook delete",
		"infra ticket list", "infra ticket show", "infra dlq list", "infra dlq redrive", "infra reconcile",
		"completion bash", "completion zsh", "completion fish", "completion powershell", "version",
	}
)

func TestHelpOnEveryLevel(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	for _, path := range append(slices.Clone(groupPaths), commandPaths...) {
		words := strings.Fields(path)
		t.Run("2501 "+path, func(t *testing.T) {
			for _, args := range [][]string{append(slices.Clone(words), "--help"), append(slices.Clone(words), "-h"), append([]string{"help"}, words...)} {
				r := h.run("", args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("2501 %v: exit %d, stderr %q; want 0 and nothing", args, r.code, r.stderr)
				}
				want := []string{"Usage:", strings.TrimSpace("2501 " + path), "--help"}
				if slices.Contains(groupPaths, path) {
					want = append(want, "Commands:")
				} else {
					want = append(want, "Flags:")
				}
				if strings.HasPrefix(path, "infra") {
					want = append(want, "--output", "--registry-table", "--endpoint-url") // the global flags
				}
				for _, w := range want {
					if !strings.Contains(r.stdout, w) {
						t.Errorf("2501 %v lacks %q:\n%s", args, w, r.stdout)
					}
				}
			}
		})
	}
	// A group lists every command below it.
	out := h.ok("", "infra", "--help")
	for _, path := range commandPaths {
		if strings.HasPrefix(path, "infra ") && !strings.Contains(out, "2501 "+path+" ") {
			t.Errorf("2501 infra --help does not list %q:\n%s", path, out)
		}
	}
	if out := h.ok(""); !strings.Contains(out, "2501 completion bash") || !strings.Contains(out, "2501 version") {
		t.Errorf("2501 without arguments does not list completion and version:\n%s", out)
	}
}

// TestDocumentedFlags keeps the documented interface: every flag the docs
// and the Business Rule instructions use stays where it is.
func TestDocumentedFlags(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	flags := map[string][]string{
		"infra gateway create":        {"--name", "--instance-url", "--auth", "--username", "--client-id", "--password-stdin", "--client-secret-stdin", "--assignment-group-filter", "--environment-filter", "--dedup-window-minutes", "--write-back", "--escalation-group", "--active", "--description"},
		"infra gateway list":          {},
		"infra gateway show":          {"--id"},
		"infra gateway update":        {"--id", "--name", "--active", "--instance-url", "--auth", "--password-stdin"},
		"infra gateway delete":        {"--id", "--force"},
		"infra webhook create":        {"--name", "--source-type", "--event-type", "--gateway-id", "--description", "--signing"},
		"infra webhook list":          {"--gateway-id"},
		"infra webhook show":          {"--id"},
		"infra webhook update":        {"--id", "--name", "--description", "--active"},
		"infra webhook rotate-secret": {"--id", "--grace"},
		"infra webhook delete":        {"--id"},
		"infra ticket list":           {"--gateway-id", "--status", "--since", "--limit"},
		"infra ticket show":           {"--table", "--sys-id", "--gateway-id"},
		"infra dlq list":              {"--queue", "--max"},
		"infra dlq redrive":           {"--queue", "--max", "--dry-run"},
		"infra reconcile":             {"--gateway-id", "--event-type", "--since", "--overlap"},
	}
	global := []string{"--output", "--api-url", "--registry-table", "--state-table", "--intake-queue-url", "--intake-dlq-url",
		"--dispatch-queue-url", "--dispatch-dlq-url", "--secret-prefix", "--stack", "--region", "--endpoint-url"}
	for path, want := range flags {
		out := h.ok("", append(strings.Fields(path), "--help")...)
		for _, f := range append(want, global...) {
			if !strings.Contains(out, "  "+f+" ") && !strings.Contains(out, "  "+f+"\n") {
				t.Errorf("2501 %s --help has no flag %s:\n%s", path, f, out)
			}
		}
	}
}

func TestCommandLineErrors(t *testing.T) {
	h := &harness{t: t, env: map[string]string{schema.EnvRegistryTable: "unused"}}
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{name: "unknown command", args: []string{"infr", "gateway", "list"}, stderr: `2501: unknown command "infr gateway list" (did you mean "infra"? see 2501 help)`},
		{name: "unknown subcommand", args: []string{"infra", "gateway", "lst"}, stderr: `2501: unknown command "infra gateway lst" (did you mean "infra gateway list"?`},
		{name: "unknown group with flags", args: []string{"infra", "gatway", "list", "--name", "x"}, stderr: `2501: unknown command "infra gatway list"`},
		{name: "group without command", args: []string{"infra", "webhook"}, stderr: "2501: webhook: choose a command: create, delete, list, rotate-secret, show, update"},
		{name: "unknown help topic", args: []string{"help", "infra", "nope"}, stderr: `2501: unknown command "infra nope"`},
		{name: "unknown flag", args: []string{"infra", "webhook", "create", "--gateway", "gtw_1"}, stderr: "2501: webhook create: --gateway is not a flag of this command (see 2501 infra webhook create --help)"},
		{name: "unknown flag before the command", args: []string{"--colour", "infra", "webhook", "list"}, stderr: "2501: --colour is not a flag of this command"},
		{name: "single dash", args: []string{"infra", "webhook", "create", "-gateway-id", "gtw_1"}, stderr: "2501: webhook create: -gateway-id is not a flag: write --gateway-id"},
		{name: "missing value", args: []string{"infra", "webhook", "delete", "--id"}, stderr: "2501: webhook delete: --id needs a value"},
		{name: "bad number", args: []string{"infra", "dlq", "list", "--max", "many"}, stderr: `2501: dlq list: invalid value "many" for --max: want a whole number`},
		{name: "bad duration", args: []string{"infra", "reconcile", "--overlap", "soon"}, stderr: `2501: reconcile: invalid value "soon" for --overlap: want a duration`},
		{name: "argument", args: []string{"infra", "gateway", "delete", "gtw_1"}, stderr: `2501: gateway delete: unexpected argument "gtw_1"`},
		{name: "argument to version", args: []string{"version", "now"}, stderr: `2501: version: unexpected argument "now"`},
		{name: "unknown shell", args: []string{"completion", "tcsh"}, stderr: `2501: unknown command "completion tcsh"`},
		{name: "completion without shell", args: []string{"completion"}, stderr: "2501: completion: choose a command: bash, fish, powershell, zsh"},
		{name: "bad output", args: []string{"version", "--output", "yaml"}, stderr: "2501: version: --output must be text or json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run("", tc.args...)
			if r.code != 2 {
				t.Errorf("2501 %v: exit %d, want 2", tc.args, r.code)
			}
			if !strings.HasPrefix(r.stderr, tc.stderr) && !strings.Contains(r.stderr, tc.stderr) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("2501 %v: stderr = %q, want one line containing %q", tc.args, r.stderr, tc.stderr)
			}
			if r.stdout != "" {
				t.Errorf("2501 %v: stdout = %q, want nothing", tc.args, r.stdout)
			}
		})
	}
}

func TestGlobalFlagsAnywhere(t *testing.T) {
	h := newHarness(t)
	h.gateway("prod")
	for _, args := range [][]string{
		{"--output", "json", "infra", "gateway", "list"},
		{"infra", "--output", "json", "gateway", "list"},
		{"infra", "gateway", "list", "--output=json"},
	} {
		var gws []map[string]any
		out := h.ok("", args...)
		if err := json.Unmarshal([]byte(out), &gws); err != nil || len(gws) != 1 {
			t.Errorf("2501 %v = %q (%v), want a JSON list of one gateway", args, out, err)
		}
	}
}

func TestVersion(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	out := h.ok("", "version")
	for _, want := range []string{"2501 version ", "\ncommit:  ", "\nbuilt:   ", "\ngo:      go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("2501 version lacks %q:\n%s", want, out)
		}
	}
	for _, flag := range []string{"--version", "-v"} {
		if out := h.ok("", flag); !strings.HasPrefix(out, "2501 ") || !strings.Contains(out, "(commit ") || strings.Count(out, "\n") != 1 {
			t.Errorf("2501 %s = %q, want one line: 2501 <version> (commit …, built …)", flag, out)
		}
	}
	var v map[string]any
	h.json(&v, "", "version")
	for _, key := range []string{"version", "commit", "build_date", "modified", "go_version", "platform"} {
		if _, ok := v[key]; !ok {
			t.Errorf("2501 version --output json = %v, lacks %q", v, key)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	marks := map[string]string{
		"bash":       "# bash completion V2 for 2501",
		"zsh":        "#compdef 2501",
		"fish":       "complete -c 2501 ",
		"powershell": "Register-ArgumentCompleter",
	}
	for shell, mark := range marks {
		t.Run(shell, func(t *testing.T) {
			out := h.ok("", "completion", shell)
			if !strings.Contains(out, mark) {
				t.Fatalf("2501 completion %s lacks %q:\n%.400s", shell, mark, out)
			}
			if shell != "bash" {
				return
			}
			bash, err := exec.LookPath("bash")
			if err != nil {
				t.Skip("no bash to check the script's syntax")
			}
			path := filepath.Join(t.TempDir(), "2501.bash")
			if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("bash -n on the completion script: %v\n%s", err, b)
			}
		})
	}
}

// complete runs cobra's completion request, as the shell scripts do, and
// returns the candidates (value and description) and the directive.
func (h *harness) complete(args ...string) (candidates []string, directive string) {
	h.t.Helper()
	r := h.run("", append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		h.t.Fatalf("2501 __complete %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) > 1 {
		candidates = lines[:len(lines)-1]
	}
	return candidates, lines[len(lines)-1]
}

func TestCompleteIDs(t *testing.T) {
	h := newHarness(t)
	prod := h.gateway("prod")
	staging := h.gateway("staging")
	h.ok("", "infra", "webhook", "create", "--name", "prod-incidents", "--source-type", "servicenow", "--event-type", "incident", "--gateway-id", prod.ID)
	hooks, err := h.store().Webhooks(context.Background(), "")
	if err != nil || len(hooks) != 1 {
		t.Fatalf("webhooks = %v, %v; want one", hooks, err)
	}
	gateways := []string{prod.ID + "\tprod", staging.ID + "\tstaging"}
	slices.Sort(gateways)
	webhooks := []string{hooks[0].ID + "\tprod-incidents (incident)"}

	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"infra", "gateway", "show", "--id", ""}, gateways},
		{[]string{"infra", "gateway", "delete", "--force", "--id", "gtw_"}, gateways},
		{[]string{"infra", "gateway", "update", "--id", prod.ID[:12]}, []string{prod.ID + "\tprod"}},
		{[]string{"infra", "gateway", "resume", "--id", ""}, gateways},
		{[]string{"infra", "gateway", "update", "--rate-limit", ""}, []string{"default", "1000/h", "3600/h"}},
		{[]string{"infra", "gateway", "update", "--max-concurrency", ""}, nil},
		{[]string{"infra", "webhook", "create", "--name", "x", "--gateway-id", ""}, gateways},
		{[]string{"infra", "webhook", "list", "--gateway-id", ""}, gateways},
		{[]string{"infra", "ticket", "list", "--gateway-id", ""}, gateways},
		{[]string{"infra", "reconcile", "--gateway-id", ""}, gateways},
		{[]string{"infra", "webhook", "show", "--id", ""}, webhooks},
		{[]string{"infra", "webhook", "rotate-secret", "--id", "whk_"}, webhooks},
		{[]string{"infra", "webhook", "delete", "--id", "gtw_"}, nil},
		{[]string{"infra", "webhook", "create", "--event-type", ""}, []string{"incident", "change_request"}},
		{[]string{"infra", "gateway", "list", "--output", ""}, []string{"text", "json"}},
		{[]string{"infra", "dlq", "redrive", "--queue", ""}, []string{"intake", "dispatch", "results"}},
		{[]string{"infra", "gateway", "create", "--mode", ""}, []string{"automatic", "semi-automatic"}},
		{[]string{"infra", "gateway", "update", "--on-success", ""}, []string{"resolve", "comment", "none"}},
		{[]string{"infra", "gateway", "create", "--on-failure", ""}, []string{"escalate", "note", "none"}},
		{[]string{"infra", "ticket", "list", "--job-state", ""}, []string{"open", "succeeded", "failed", "partial", "escalated", "cancelled"}},
		{[]string{"infra", "ticket", "list", "--status", ""}, []string{"accepted", "awaiting_mention", "out_of_scope", "deduplicated", "deferred", "expired", "failed", "retrying", "processing"}},
	}
	for _, tc := range tests {
		got, directive := h.complete(tc.args...)
		if len(got) > 0 && strings.HasPrefix(got[0], "gtw_") {
			slices.Sort(got) // the registry lists gateways in no particular order
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("2501 __complete %q mismatch (-want +got):\n%s", tc.args, diff)
		}
		if directive != ":4" { // ShellCompDirectiveNoFileComp
			t.Errorf("2501 __complete %q directive = %q, want :4 (no file names)", tc.args, directive)
		}
	}
}

func TestCompleteIDsQuietlyWithoutRegistry(t *testing.T) {
	defer cli.SetCompletionTimeout(500 * time.Millisecond)()
	// An endpoint that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "no registry table", args: []string{"infra", "gateway", "show", "--id", ""}, env: map[string]string{schema.EnvRegistryTable: ""}},
		{name: "missing table", args: []string{"infra", "webhook", "show", "--registry-table", "no-such-table", "--id", ""}},
		{name: "unreachable endpoint", args: []string{"infra", "webhook", "list", "--endpoint-url", "http://127.0.0.1:9", "--gateway-id", ""}},
		{name: "endpoint that never answers", args: []string{"infra", "gateway", "delete", "--endpoint-url", "http://" + ln.Addr().String(), "--id", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				old := h.env[k]
				h.env[k] = v
				defer func() { h.env[k] = old }()
			}
			start := time.Now()
			got, directive := h.complete(tc.args...)
			if len(got) != 0 || directive != ":4" {
				t.Errorf("2501 __complete %q = %q %s, want no candidates and :4", tc.args, got, directive)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("2501 __complete %q took %v, want it bounded by the completion timeout", tc.args, d)
			}
		})
	}
}

func TestReferenceIsCurrent(t *testing.T) {
	h := &harness{t: t, env: map[string]string{}}
	got := h.ok("", "docs", "cli-reference")
	want, err := os.ReadFile(filepath.Join("..", "..", cli.ReferencePath))
	if err != nil {
		t.Fatalf("read the committed reference: %v (generate it with `make docs`)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s is stale: regenerate it with `make docs` (go run ./cli/2501 docs cli-reference > %s) and commit it; (-committed +generated):\n%s",
			cli.ReferencePath, cli.ReferencePath, diff)
	}
	for _, path := range commandPaths {
		if !strings.Contains(got, "\n## 2501 "+path+"\n") {
			t.Errorf("the reference has no section for 2501 %s", path)
		}
	}
}
