package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
)

func credentials(t *testing.T, h *harness, arn string) registry.Credentials {
	t.Helper()
	doc, ok := h.secret(arn)
	if !ok {
		t.Fatalf("secret %s does not exist", arn)
	}
	var c registry.Credentials
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatalf("secret %s is not a credentials document: %v", arn, err)
	}
	return c
}

// rawItem returns a registry item as JSON text, to check what is stored.
func rawItem(t *testing.T, h *harness, pk string) string {
	t.Helper()
	out, err := dynamodb.NewFromConfig(h.cfg).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(h.table), Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: pk}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out.Item)
	return string(b)
}

// effective is a stored gateway with its job settings' defaults applied,
// as --output json shows them.
func effective(g registry.Gateway) registry.Gateway {
	g.Mode, g.Mention, g.OnSuccess, g.OnFailure, g.ResolveCloseCode = g.JobMode(), g.MentionToken(), g.SuccessAction(), g.FailureAction(), g.CloseCode()
	b := g.BudgetSettings().WithDefaults()
	g.RateLimitPerHour, g.MaxConcurrency = b.RatePerHour, b.MaxConcurrency
	return g
}

func TestGatewayLifecycle(t *testing.T) {
	h := newHarness(t)

	out := h.ok("s3cret-pa55\n", "infra", "gateway", "create", "--name", "prod", "--instance-url", "https://acme.service-now.com/",
		"--auth", "basic", "--username", "svc_snowgate", "--password-stdin", "--assignment-group-filter", "Network,Database",
		"--environment-filter", "prod", "--dedup-window-minutes", "-1", "--write-back=false", "--description", "main instance",
		// The instance is not reachable from the test: registered offline.
		"--skip-instance-checks")
	if !strings.HasPrefix(out, "Gateway created!\n") {
		t.Errorf("create output starts %q, want \"Gateway created!\"", out)
	}
	for _, want := range []string{"Not checked against the instance (--skip-instance-checks)", "Network, Database (names, matched exactly: not resolved to sys_ids)"} {
		if !strings.Contains(out, want) {
			t.Errorf("offline create output lacks %q:\n%s", want, out)
		}
	}
	id := field(t, out, "ID")
	if !registry.ValidGatewayID(id) {
		t.Fatalf("created id %q is not a gateway id", id)
	}
	if strings.Contains(out, "s3cret-pa55") {
		t.Error("create output shows the password")
	}

	g, err := h.store().Gateway(context.Background(), id)
	if err != nil {
		t.Fatalf("stored gateway: %v", err)
	}
	want := registry.Gateway{
		ID: id, Name: "prod", Type: registry.SourceServiceNow, Description: "main instance", Active: true,
		InstanceURL: "https://acme.service-now.com", Auth: registry.AuthBasic, Username: "svc_snowgate",
		CredentialsSecretARN: g.CredentialsSecretARN, AssignmentGroupFilter: "Network,Database", EnvironmentFilter: "prod",
		DedupWindowMinutes: -1, WriteBack: false, CreatedAt: h.clock(), UpdatedAt: h.clock(),
	}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("stored gateway (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(registry.Credentials{Auth: registry.AuthBasic, Username: "svc_snowgate", Password: "s3cret-pa55", InstanceURL: "https://acme.service-now.com"}, credentials(t, h, g.CredentialsSecretARN)); diff != "" {
		t.Errorf("credentials secret (-want +got):\n%s", diff)
	}
	if names := h.secretNames(); len(names) != 1 || names[0] != h.prefix+"gateways/"+id {
		t.Errorf("secrets = %q, want [%sgateways/%s]", names, h.prefix, id)
	}
	if raw := rawItem(t, h, registry.GatewayKey(id)); strings.Contains(raw, "s3cret-pa55") {
		t.Error("the registry item contains the password")
	}

	t.Run("list", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "list")
		if !strings.Contains(out, id) || !strings.Contains(out, "assignment_group.nameINNetwork,Database") {
			t.Errorf("list lacks the gateway:\n%s", out)
		}
		var list []registry.Gateway
		h.json(&list, "", "infra", "gateway", "list")
		if diff := cmp.Diff([]registry.Gateway{effective(g)}, list, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("list --output json (-want +got):\n%s", diff)
		}
	})

	t.Run("show", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "show", "--id", id)
		for _, want := range []string{"Instance URL:", "https://acme.service-now.com", "Dedup window:", "off", "Webhooks:", "none",
			"(Active is true AND Assignment group.Name is one of Network, Database AND Environment is one of prod)"} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		var v struct {
			registry.Gateway
			Webhooks []registry.Webhook `json:"webhooks"`
		}
		h.json(&v, "", "infra", "gateway", "show", "--id", id)
		if v.ID != id || v.Webhooks == nil || len(v.Webhooks) != 0 {
			t.Errorf("show --output json = %+v, want the gateway and an empty webhook list", v)
		}
	})

	t.Run("update", func(t *testing.T) {
		h.advance(1)
		var got registry.Gateway
		h.json(&got, "", "infra", "gateway", "update", "--id", id, "--name", "production", "--active=false", "--dedup-window-minutes", "45")
		if got.Name != "production" || got.Active || got.DedupWindowMinutes != 45 || got.EnvironmentFilter != "prod" || !got.UpdatedAt.Equal(h.clock()) {
			t.Errorf("updated = %+v, want renamed, inactive, dedup 45, filters kept, updated now", got)
		}
		stored, _ := h.store().Gateway(context.Background(), id)
		if diff := cmp.Diff(got, effective(stored), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("stored after update (-output +stored):\n%s", diff)
		}
	})

	t.Run("new password", func(t *testing.T) {
		h.ok("n3w-pa55\n", "infra", "gateway", "update", "--id", id, "--password-stdin")
		if got := credentials(t, h, g.CredentialsSecretARN); got.Password != "n3w-pa55" || got.Username != "svc_snowgate" {
			t.Errorf("credentials after update = %+v, want the new password and the same user", got)
		}
	})

	t.Run("switch to oauth", func(t *testing.T) {
		r := h.run("", "infra", "gateway", "update", "--id", id, "--auth", "oauth-client-credentials", "--client-id", "cid")
		if r.code != 2 || !strings.Contains(r.stderr, "--auth oauth-client-credentials needs --client-secret-stdin") {
			t.Errorf("switching auth without the new secret: exit %d, %q; want 2 and a request for --client-secret-stdin", r.code, r.stderr)
		}
		h.ok("csecret\n", "infra", "gateway", "update", "--id", id, "--auth", "oauth-client-credentials", "--client-id", "cid", "--client-secret-stdin")
		want := registry.Credentials{Auth: registry.AuthOAuthClientCredentials, ClientID: "cid", ClientSecret: "csecret", InstanceURL: "https://acme.service-now.com"}
		if diff := cmp.Diff(want, credentials(t, h, g.CredentialsSecretARN)); diff != "" {
			t.Errorf("credentials after switching (-want +got):\n%s", diff)
		}
		stored, _ := h.store().Gateway(context.Background(), id)
		if stored.Auth != registry.AuthOAuthClientCredentials || stored.ClientID != "cid" || stored.Username != "" {
			t.Errorf("stored auth = %s, client %q, user %q; want oauth-client-credentials, cid, no user", stored.Auth, stored.ClientID, stored.Username)
		}
	})

	t.Run("delete", func(t *testing.T) {
		var res struct {
			Deleted  string   `json:"deleted"`
			Webhooks []string `json:"deleted_webhooks"`
		}
		h.json(&res, "", "infra", "gateway", "delete", "--id", id)
		if res.Deleted != id {
			t.Errorf("delete --output json = %+v", res)
		}
		if _, err := h.store().Gateway(context.Background(), id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("gateway after delete: %v, want ErrNotFound", err)
		}
		if _, ok := h.secret(g.CredentialsSecretARN); ok {
			t.Error("the credentials secret survived the gateway")
		}
		if out := h.ok("", "infra", "gateway", "list"); !strings.Contains(out, "No gateways") {
			t.Errorf("list after delete:\n%s", out)
		}
	})
}

func TestGatewayAuthModes(t *testing.T) {
	h := newHarness(t)
	const loopback = "http://127.0.0.1:8080"
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  registry.Credentials
	}{
		{
			name: "oauth client credentials", stdin: "client-s3cret\n",
			args: []string{"--auth", "oauth-client-credentials", "--client-id", "cid", "--client-secret-stdin"},
			want: registry.Credentials{Auth: registry.AuthOAuthClientCredentials, ClientID: "cid", ClientSecret: "client-s3cret", InstanceURL: loopback},
		},
		{
			name: "oauth password: password then client secret", stdin: "pw\r\nclient-s3cret\n",
			args: []string{"--auth", "oauth-password", "--username", "u", "--client-id", "cid", "--password-stdin", "--client-secret-stdin"},
			want: registry.Credentials{Auth: registry.AuthOAuthPassword, Username: "u", Password: "pw", ClientID: "cid", ClientSecret: "client-s3cret", InstanceURL: loopback},
		},
		{
			name: "basic, password without newline", stdin: "pw",
			args: []string{"--auth", "basic", "--username", "u", "--password-stdin"},
			want: registry.Credentials{Auth: registry.AuthBasic, Username: "u", Password: "pw", InstanceURL: loopback},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g registry.Gateway
			h.json(&g, tc.stdin, append([]string{"infra", "gateway", "create", "--name", "n", "--instance-url", loopback}, tc.args...)...)
			if diff := cmp.Diff(tc.want, credentials(t, h, g.CredentialsSecretARN)); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
			if g.Auth != tc.want.Auth || g.ClientID != tc.want.ClientID || g.Username != tc.want.Username {
				t.Errorf("gateway auth fields = %s %q %q, want %s %q %q", g.Auth, g.Username, g.ClientID, tc.want.Auth, tc.want.Username, tc.want.ClientID)
			}
		})
	}
}

func TestGatewayDeleteInUse(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("prod")
	var hook struct {
		ID   string `json:"id"`
		Path string `json:"path"`
	}
	h.json(&hook, "", "infra", "webhook", "create", "--name", "inc", "--source-type", "servicenow", "--event-type", "incident", "--signing", "hmac")

	r := h.run("", "infra", "gateway", "delete", "--id", g.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "is used by 1 webhook(s) ("+hook.ID+")") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("delete in use: exit %d, %q; want 1 naming the webhook and --force", r.code, r.stderr)
	}
	out := h.ok("", "infra", "gateway", "delete", "--id", g.ID, "--force")
	if !strings.Contains(out, hook.ID) || !strings.Contains(out, "deactivate its Business Rule") {
		t.Errorf("forced delete output:\n%s", out)
	}
	if n := h.items(); n != 0 {
		t.Errorf("registry holds %d items after the forced delete, want 0", n)
	}
	if names := h.secretNames(); len(names) != 0 {
		t.Errorf("secrets left after the forced delete: %q", names)
	}
}

// A stdin flag switched off changes nothing, so it is not a change.
func TestGatewayUpdateNothingToChange(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("prod")
	r := h.run("", "infra", "gateway", "update", "--id", g.ID, "--password-stdin=false")
	if r.code != 2 || !strings.Contains(r.stderr, "nothing to change") {
		t.Errorf("update --password-stdin=false: exit %d, %q; want 2 and nothing to change", r.code, r.stderr)
	}
	if stored, _ := h.store().Gateway(context.Background(), g.ID); !stored.UpdatedAt.Equal(g.UpdatedAt) {
		t.Errorf("the gateway was written: updated %s, want %s", stored.UpdatedAt, g.UpdatedAt)
	}
}

// gatewaySettings is the job settings part of a gateway's JSON output.
type gatewaySettings struct {
	Org              string `json:"org"`
	Mode             string `json:"mode"`
	Mention          string `json:"mention"`
	OnSuccess        string `json:"on_success"`
	OnFailure        string `json:"on_failure"`
	ResolveCloseCode string `json:"resolve_close_code"`
	DedupNote        bool   `json:"dedup_note"`
}

var defaultSettings = gatewaySettings{Mode: "automatic", Mention: "@2501", OnSuccess: "resolve", OnFailure: "escalate", ResolveCloseCode: "Solution provided", DedupNote: true}

func TestGatewayJobSettings(t *testing.T) {
	h := newHarness(t)
	create := []string{"infra", "gateway", "create", "--instance-url", "https://acme.service-now.com", "--auth", "basic",
		"--username", "svc", "--password-stdin", "--skip-instance-checks"}

	t.Run("create", func(t *testing.T) {
		tests := []struct {
			name  string
			flags []string
			want  gatewaySettings
			// stored is what the registry item holds: only what was given.
			stored registry.Gateway
		}{
			{name: "defaults", want: defaultSettings},
			{name: "semi-automatic", flags: []string{"--mode", "semi-automatic", "--mention", "@ops-bot", "--org", "acme"},
				want:   gatewaySettings{Org: "acme", Mode: "semi-automatic", Mention: "@ops-bot", OnSuccess: "resolve", OnFailure: "escalate", ResolveCloseCode: "Solution provided", DedupNote: true},
				stored: registry.Gateway{Org: "acme", Mode: "semi-automatic", Mention: "@ops-bot"}},
			{name: "outbound mapping", flags: []string{"--on-success", "comment", "--on-failure", "note", "--resolve-close-code", "Workaround provided", "--dedup-note=false"},
				want:   gatewaySettings{Mode: "automatic", Mention: "@2501", OnSuccess: "comment", OnFailure: "note", ResolveCloseCode: "Workaround provided", DedupNote: false},
				stored: registry.Gateway{OnSuccess: "comment", OnFailure: "note", ResolveCloseCode: "Workaround provided", DedupNoteOff: true}},
			{name: "the defaults typed", flags: []string{"--mode", "automatic", "--on-failure", "escalate", "--dedup-note=true"},
				want:   defaultSettings,
				stored: registry.Gateway{Mode: "automatic", OnFailure: "escalate"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var got struct {
					ID string `json:"id"`
					gatewaySettings
				}
				h.json(&got, "pw\n", append(append(create, "--name", tc.name), tc.flags...)...)
				if diff := cmp.Diff(tc.want, got.gatewaySettings); diff != "" {
					t.Errorf("create %v --output json (-want +got):\n%s", tc.flags, diff)
				}
				g, err := h.store().Gateway(context.Background(), got.ID)
				if err != nil {
					t.Fatal(err)
				}
				settings := func(g registry.Gateway) registry.Gateway {
					return registry.Gateway{Org: g.Org, Mode: g.Mode, Mention: g.Mention, OnSuccess: g.OnSuccess, OnFailure: g.OnFailure,
						ResolveCloseCode: g.ResolveCloseCode, DedupNoteOff: g.DedupNoteOff}
				}
				if diff := cmp.Diff(tc.stored, settings(g)); diff != "" {
					t.Errorf("stored settings (-want +got):\n%s", diff)
				}
			})
		}
	})

	var g struct {
		ID string `json:"id"`
		gatewaySettings
	}
	r := h.run("pw\n", append(create, "--name", "prod", "--output", "json")...)
	if r.code != 0 {
		t.Fatalf("create: exit %d, %q", r.code, r.stderr)
	}
	decode(t, []byte(r.stdout), &g)
	// Escalating (the default) to no group: warned once, on stderr.
	if n := strings.Count(r.stderr, "--escalation-group"); n != 1 || !strings.Contains(r.stderr, "Warning: --on-failure escalate without an escalation group") {
		t.Errorf("create without an escalation group: stderr %q, want one warning naming --escalation-group", r.stderr)
	}
	if strings.Contains(r.stdout, "Warning") {
		t.Errorf("the warning reached stdout (the JSON): %q", r.stdout)
	}

	t.Run("update only what is given", func(t *testing.T) {
		steps := []struct {
			flags []string
			want  gatewaySettings
			warn  bool
		}{
			{flags: []string{"--mode", "semi-automatic"}, want: func() gatewaySettings { s := defaultSettings; s.Mode = "semi-automatic"; return s }()},
			{flags: []string{"--mention", "@robot", "--org", "acme"}, want: func() gatewaySettings {
				s := defaultSettings
				s.Mode, s.Mention, s.Org = "semi-automatic", "@robot", "acme"
				return s
			}()},
			{flags: []string{"--on-success", "none", "--resolve-close-code", "Closed/Resolved by Caller", "--dedup-note=false"}, want: func() gatewaySettings {
				s := defaultSettings
				s.Mode, s.Mention, s.Org, s.OnSuccess, s.ResolveCloseCode, s.DedupNote = "semi-automatic", "@robot", "acme", "none", "Closed/Resolved by Caller", false
				return s
			}()},
			{flags: []string{"--on-failure", "escalate"}, warn: true, want: func() gatewaySettings {
				s := defaultSettings
				s.Mode, s.Mention, s.Org, s.OnSuccess, s.ResolveCloseCode, s.DedupNote = "semi-automatic", "@robot", "acme", "none", "Closed/Resolved by Caller", false
				return s
			}()},
			{flags: []string{"--on-failure", "note", "--org", ""}, want: func() gatewaySettings {
				s := defaultSettings
				s.Mode, s.Mention, s.OnSuccess, s.OnFailure, s.ResolveCloseCode, s.DedupNote = "semi-automatic", "@robot", "none", "note", "Closed/Resolved by Caller", false
				return s
			}()},
		}
		for _, st := range steps {
			r := h.run("", append([]string{"infra", "gateway", "update", "--id", g.ID, "--output", "json"}, st.flags...)...)
			if r.code != 0 {
				t.Fatalf("update %v: exit %d, %q", st.flags, r.code, r.stderr)
			}
			var got gatewaySettings
			decode(t, []byte(r.stdout), &got)
			if diff := cmp.Diff(st.want, got); diff != "" {
				t.Errorf("update %v (-want +got):\n%s", st.flags, diff)
			}
			if warned := strings.Contains(r.stderr, "--escalation-group"); warned != st.warn {
				t.Errorf("update %v: stderr %q, want a warning: %v", st.flags, r.stderr, st.warn)
			}
		}
	})

	t.Run("show", func(t *testing.T) {
		out := h.ok("", "infra", "gateway", "show", "--id", g.ID)
		for _, want := range [][2]string{{"Mode", "semi-automatic"}, {"Mention", "@robot"}, {"On success", "none"},
			{"On failure", "note"}, {"Close code", "Closed/Resolved by Caller"}, {"Dedup note", "off"}} {
			if got := field(t, out, want[0]); got != want[1] {
				t.Errorf("gateway show: %s: %q, want %q", want[0], got, want[1])
			}
		}
		if strings.Contains(out, "Org:") {
			t.Errorf("gateway show prints an Org line for a gateway without one:\n%s", out)
		}
		var shown, listed []gatewaySettings
		var one gatewaySettings
		h.json(&one, "", "infra", "gateway", "show", "--id", g.ID)
		shown = append(shown, one)
		var all []struct {
			ID string `json:"id"`
			gatewaySettings
		}
		h.json(&all, "", "infra", "gateway", "list")
		for _, x := range all {
			if x.ID == g.ID {
				listed = append(listed, x.gatewaySettings)
			}
		}
		if diff := cmp.Diff(shown, listed); diff != "" {
			t.Errorf("gateway list and gateway show disagree (-show +list):\n%s", diff)
		}
	})

	t.Run("escalation with a group", func(t *testing.T) {
		r := h.run("", "infra", "gateway", "update", "--id", g.ID, "--on-failure", "escalate", "--escalation-group", "Ops", "--skip-instance-checks")
		if r.code != 0 || strings.Contains(r.stderr, "Warning") {
			t.Errorf("escalate with a group: exit %d, stderr %q; want 0 and no warning", r.code, r.stderr)
		}
		if got := field(t, h.ok("", "infra", "gateway", "show", "--id", g.ID), "On failure"); got != "escalate" {
			t.Errorf("gateway show after setting a group: On failure: %q, want escalate", got)
		}
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"create: mode", append(append(create, "--name", "x"), "--mode", "manual"), "--mode must be automatic or semi-automatic"},
			{"create: on success", append(append(create, "--name", "x"), "--on-success", "close"), "--on-success must be resolve, comment or none"},
			{"create: on failure", append(append(create, "--name", "x"), "--on-failure", "page"), "--on-failure must be escalate, note or none"},
			{"create: empty mention", append(append(create, "--name", "x"), "--mention", ""), "--mention cannot be empty (the default is @2501)"},
			{"create: mention with a space", append(append(create, "--name", "x"), "--mention", "@my bot"), `--mention "@my bot" cannot contain spaces`},
			{"create: long mention", append(append(create, "--name", "x"), "--mention", "@"+strings.Repeat("m", 40)), "--mention is 41 characters long; at most 40"},
			{"create: empty close code", append(append(create, "--name", "x"), "--resolve-close-code", ""), "--resolve-close-code cannot be empty"},
			{"create: long org", append(append(create, "--name", "x"), "--org", strings.Repeat("o", 101)), "--org is 101 characters long; at most 100"},
			{"update: empty mention", []string{"infra", "gateway", "update", "--id", g.ID, "--mention", ""}, "--mention cannot be empty"},
			{"update: mode", []string{"infra", "gateway", "update", "--id", g.ID, "--mode", "Automatic"}, "--mode must be automatic or semi-automatic"},
			{"update: org with a newline", []string{"infra", "gateway", "update", "--id", g.ID, "--org", "a\nb"}, "--org cannot contain control characters"},
			{"update: bad dedup note", []string{"infra", "gateway", "update", "--id", g.ID, "--dedup-note=maybe"}, "--dedup-note"},
		}
		before := h.items()
		beforeGateway, _ := h.store().Gateway(context.Background(), g.ID)
		for _, tc := range tests {
			r := h.run("pw\n", tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: exit %d, %q; want 2 and %q", tc.name, r.code, r.stderr, tc.want)
			}
		}
		if n := h.items(); n != before {
			t.Errorf("refused commands left %d registry items, want %d", n, before)
		}
		if after, _ := h.store().Gateway(context.Background(), g.ID); !after.UpdatedAt.Equal(beforeGateway.UpdatedAt) {
			t.Error("a refused update wrote the gateway")
		}
	})
}

// Without --secret-prefix or its variable, and with no stack to read the
// output from, the secrets go under the stack's default prefix,
// snowgate/<stack>/, the one its functions are granted.
func TestSecretPrefixDefaultsToTheStacks(t *testing.T) {
	h := newHarness(t)
	delete(h.env, schema.EnvSecretPrefix)
	h.prefix = schema.SecretPrefix(h.env[schema.EnvStack])
	g := h.gateway("prod")
	if names := h.secretNames(); len(names) != 1 || names[0] != h.prefix+"gateways/"+g.ID {
		t.Errorf("secrets = %q, want [%sgateways/%s]", names, h.prefix, g.ID)
	}
	h.ok("", "infra", "gateway", "delete", "--id", g.ID)
}

// A gateway on a host that is neither ServiceNow's nor loopback needs
// --allow-custom-host, which show prints and update turns off.
func TestGatewayCustomHost(t *testing.T) {
	h := newHarness(t)
	create := []string{"infra", "gateway", "create", "--name", "proxied", "--instance-url", "https://itsm.acme.example",
		"--auth", "basic", "--username", "svc", "--password-stdin", "--skip-instance-checks"}

	r := h.run("pa55word\n", create...)
	if r.code != 2 || !strings.Contains(r.stderr, "is not a ServiceNow instance") || !strings.Contains(r.stderr, "pass --allow-custom-host") {
		t.Errorf("create on a custom host without the flag: exit %d, stderr %q; want 2 saying to pass --allow-custom-host", r.code, r.stderr)
	}
	if n := len(h.secretNames()); n != 0 {
		t.Errorf("a refused create left %d secrets", n)
	}

	var g struct {
		registry.Gateway
		AllowCustomHost bool `json:"allow_custom_host"`
	}
	h.json(&g, "pa55word\n", append(create, "--allow-custom-host")...)
	if !g.AllowCustomHost || g.InstanceURL != "https://itsm.acme.example" {
		t.Fatalf("created %s, allow_custom_host %v; want the custom host allowed", g.InstanceURL, g.AllowCustomHost)
	}
	if out := h.ok("", "infra", "gateway", "show", "--id", g.ID); !strings.Contains(out, "Custom host:") || !strings.Contains(out, "allowed (--allow-custom-host)") {
		t.Errorf("show lacks the custom host line:\n%s", out)
	}

	r = h.run("", "infra", "gateway", "update", "--id", g.ID, "--allow-custom-host=false")
	if r.code != 2 || !strings.Contains(r.stderr, "--allow-custom-host=false") {
		t.Errorf("turned off on the custom host: exit %d, stderr %q; want 2", r.code, r.stderr)
	}
	var v map[string]any
	h.json(&v, "", "infra", "gateway", "update", "--id", g.ID, "--instance-url", "https://acme.service-now.com", "--allow-custom-host=false", "--skip-instance-checks")
	if v["allow_custom_host"] != false || v["instance_url"] != "https://acme.service-now.com" {
		t.Errorf("update back to ServiceNow = %v, want allow_custom_host false", v)
	}
	if out := h.ok("", "infra", "gateway", "show", "--id", g.ID); strings.Contains(out, "Custom host:") {
		t.Errorf("show of a gateway without the permission prints a custom host line:\n%s", out)
	}
}
