package instancecheck_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/instancecheck"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

const (
	user     = "svc_snowgate"
	password = "s3cret"
	clientID = "3f1e0a"
	secret   = "client-secret"
)

var webhooks = []registry.Webhook{
	{ID: "whk_1", Name: "prod-incidents", EventType: "incident", Active: true},
	{ID: "whk_2", Name: "prod-changes", EventType: "change_request", Active: true},
}

// setup is one instance and the gateway checked against it.
type setup struct {
	opts     []snowsim.Option
	gateway  func(*registry.Gateway)
	creds    func(url string) servicenow.Auth
	rules    func(*snowsim.Rule)
	noRules  bool
	prepare  func(*snowsim.Sim)
	webhooks []registry.Webhook
	// handler wraps the simulator.
	handler func(http.Handler) http.Handler
}

// run serves a simulator holding a well set-up instance (a web service
// user in UTC with itil, a group, records, the gateway's rules in Global)
// changed by s, and checks the gateway against it.
func run(t *testing.T, s setup) instancecheck.Report {
	t.Helper()
	opts := append([]snowsim.Option{snowsim.WithWebServiceUser(user, password)}, s.opts...)
	sim := snowsim.New(opts...)
	if _, err := sim.Insert("sys_user_group", map[string]string{"name": "Network"}); err != nil {
		t.Fatal(err)
	}
	for _, table := range registry.EventTypes {
		if _, err := sim.Insert(table, map[string]string{"short_description": "disk full", "u_environment": "prod"}); err != nil {
			t.Fatal(err)
		}
	}
	hooks := webhooks
	if s.webhooks != nil {
		hooks = s.webhooks
	}
	if !s.noRules {
		for _, w := range hooks {
			rule := snowsim.Rule{Name: instancecheck.RuleName(w), Table: w.EventType, Script: "var sent = true;", Insert: true, Update: true}
			if s.rules != nil {
				s.rules(&rule)
			}
			if err := sim.AddBusinessRule(rule); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.prepare != nil {
		s.prepare(sim)
	}
	var h http.Handler = sim
	if s.handler != nil {
		h = s.handler(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	g := registry.Gateway{
		ID: "gtw_test", Name: "prod", InstanceURL: srv.URL, Auth: registry.AuthBasic, Username: user,
		AssignmentGroupFilter: "Network", EnvironmentFilter: "prod", Active: true,
	}
	if s.gateway != nil {
		s.gateway(&g)
	}
	auth := servicenow.BasicAuth(user, password)
	if s.creds != nil {
		auth = s.creds(srv.URL)
	}
	connect := func(_ context.Context, opts ...servicenow.Option) (instancecheck.Instance, error) {
		return servicenow.New(g.InstanceURL, auth, opts...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return instancecheck.Run(ctx, instancecheck.Target{Gateway: g, Webhooks: hooks}, connect)
}

// want is what one case expects: the named checks' status, each with a
// word its detail or fix holds; every other check is ok.
type want map[string]struct {
	status instancecheck.Status
	says   string
}

func TestRun(t *testing.T) {
	failed := func(says string) struct {
		status instancecheck.Status
		says   string
	} {
		return struct {
			status instancecheck.Status
			says   string
		}{instancecheck.Failed, says}
	}
	skipped := func(says string) struct {
		status instancecheck.Status
		says   string
	} {
		return struct {
			status instancecheck.Status
			says   string
		}{instancecheck.Skipped, says}
	}
	afterCredentials := func(w want, why string) want {
		for _, n := range []string{instancecheck.CheckReadRights, instancecheck.CheckWorkNotes, instancecheck.CheckTimeZone,
			instancecheck.CheckQueryCanary, instancecheck.CheckFilters, instancecheck.CheckBusinessRules} {
			w[n] = skipped(why)
		}
		return w
	}
	tests := []struct {
		name  string
		setup setup
		want  want
	}{
		{name: "well set up", want: want{}},
		{
			name:  "wrong password",
			setup: setup{creds: func(string) servicenow.Auth { return servicenow.BasicAuth(user, "wrong") }},
			want: afterCredentials(want{
				instancecheck.CheckCredentials: failed("web service access only"),
				instancecheck.CheckRateLimit:   skipped("refused the credentials"),
			}, "refused the credentials"),
		},
		{
			name: "basic auth restricted to web service users",
			setup: setup{
				opts:    []snowsim.Option{snowsim.WithUser("interactive", password), snowsim.WithBasicAuthRestricted()},
				gateway: func(g *registry.Gateway) { g.Username = "interactive" },
				creds:   func(string) servicenow.Auth { return servicenow.BasicAuth("interactive", password) },
			},
			want: afterCredentials(want{
				instancecheck.CheckCredentials: failed("basic auth"),
				instancecheck.CheckRateLimit:   skipped("refused"),
			}, "refused the credentials"),
		},
		{
			name: "OAuth client credentials grant off",
			setup: setup{
				opts: []snowsim.Option{snowsim.WithOAuthClient(clientID, secret)},
				gateway: func(g *registry.Gateway) {
					g.Auth, g.Username, g.ClientID = registry.AuthOAuthClientCredentials, "", clientID
				},
				creds: func(string) servicenow.Auth { return servicenow.OAuthClientCredentials(clientID, secret) },
			},
			want: afterCredentials(want{
				instancecheck.CheckCredentials: failed("glide.oauth.inbound.client.credential.grant_type.enabled"),
				instancecheck.CheckRateLimit:   skipped("refused"),
			}, "refused the credentials"),
		},
		{
			name: "OAuth client credentials grant on: the user's checks are left to a person",
			setup: setup{
				opts: []snowsim.Option{snowsim.WithOAuthClientCredentials(clientID, secret, user)},
				gateway: func(g *registry.Gateway) {
					g.Auth, g.Username, g.ClientID = registry.AuthOAuthClientCredentials, "", clientID
				},
				creds: func(string) servicenow.Auth { return servicenow.OAuthClientCredentials(clientID, secret) },
			},
			want: want{
				instancecheck.CheckWorkNotes: skipped("itil"),
				instancecheck.CheckTimeZone:  skipped("UTC"),
			},
		},
		{
			name:  "hibernating",
			setup: setup{prepare: func(s *snowsim.Sim) { s.SetHibernating(true) }},
			want: afterCredentials(want{
				instancecheck.CheckReachability: failed("hibernating"),
				instancecheck.CheckCredentials:  skipped("does not answer the API"),
				instancecheck.CheckRateLimit:    skipped("does not answer the API"),
			}, "does not answer the API"),
		},
		{
			name:  "read denied on a table",
			setup: setup{opts: []snowsim.Option{snowsim.WithReadDenied(user, "change_request")}},
			want: want{
				instancecheck.CheckReadRights: failed("may not read change_request"),
			},
		},
		{
			name:  "journal read denied",
			setup: setup{opts: []snowsim.Option{snowsim.WithReadDenied(user, "sys_journal_field")}},
			want: want{
				instancecheck.CheckReadRights: failed("sys_journal_field"),
			},
		},
		{
			name:  "no role that adds work notes",
			setup: setup{opts: []snowsim.Option{snowsim.WithUserRoles(user, "snc_platform_rest_api_access")}},
			want: want{
				instancecheck.CheckWorkNotes: failed("itil"),
			},
		},
		{
			name:  "user in America/Los_Angeles",
			setup: setup{opts: []snowsim.Option{snowsim.WithUserTimeZone(user, "America/Los_Angeles")}},
			want: want{
				instancecheck.CheckTimeZone: failed("America/Los_Angeles"),
			},
		},
		{
			name:  "user without a time zone",
			setup: setup{opts: []snowsim.Option{snowsim.WithUserTimeZone(user, "")}},
			want: want{
				instancecheck.CheckTimeZone: failed("glide.sys.default.tz"),
			},
		},
		{
			name:  "plain literals read in the user's time zone",
			setup: setup{handler: literalsIn("America/Los_Angeles")},
			want: want{
				instancecheck.CheckQueryCanary: failed("not read as UTC"),
			},
		},
		{
			name:  "plain literals read in a zone east of UTC",
			setup: setup{handler: literalsIn("Europe/Berlin")},
			want: want{
				instancecheck.CheckQueryCanary: failed("not read as UTC"),
			},
		},
		{
			name:  "missing group",
			setup: setup{gateway: func(g *registry.Gateway) { g.AssignmentGroupFilter = "Network,network-ops" }},
			want: want{
				instancecheck.CheckFilters: failed(`"network-ops"`),
			},
		},
		{
			name:  "group filter by sys_id, case near-miss of a name",
			setup: setup{gateway: func(g *registry.Gateway) { g.AssignmentGroupFilter = "network" }},
			want: want{
				instancecheck.CheckFilters: failed(`"network"`),
			},
		},
		{
			name:  "missing u_environment",
			setup: setup{opts: []snowsim.Option{snowsim.WithoutField("incident", "u_environment")}},
			want: want{
				instancecheck.CheckFilters: failed("u_environment"),
			},
		},
		{
			name: "u_environment not needed without an environment filter",
			setup: setup{
				opts:    []snowsim.Option{snowsim.WithoutField("incident", "u_environment")},
				gateway: func(g *registry.Gateway) { g.EnvironmentFilter = "" },
			},
			want: want{},
		},
		{
			name:  "rule missing",
			setup: setup{noRules: true},
			want: want{
				instancecheck.CheckBusinessRules: failed("missing"),
			},
		},
		{
			name:  "rule inactive",
			setup: setup{rules: func(r *snowsim.Rule) { r.Inactive = true }},
			want: want{
				instancecheck.CheckBusinessRules: failed("inactive"),
			},
		},
		{
			name:  "rule in a scoped application",
			setup: setup{rules: func(r *snowsim.Rule) { r.Scope = "x_acme_app" }},
			want: want{
				instancecheck.CheckBusinessRules: failed("in the application scope x_acme_app, not Global"),
			},
		},
		{
			name: "rate limit headroom",
			setup: setup{opts: []snowsim.Option{snowsim.WithRateLimit(snowsim.RateLimitRule{
				Name: "integration", User: user, Limit: 1000,
			})}},
			want: want{instancecheck.CheckRateLimit: {instancecheck.OK, "limit 1000 requests per window (rule " + snowsim.RateLimitRuleSysID("integration") + ")"}},
		},
		{
			name: "rate limit exhausted",
			setup: setup{opts: []snowsim.Option{snowsim.WithRateLimit(snowsim.RateLimitRule{
				Name: "integration", User: user, Limit: 0,
			})}},
			want: afterCredentials(want{
				instancecheck.CheckRateLimit: failed("exhausted"),
			}, "rate limit is exhausted"),
		},
		{
			name: "rate limit exhausted while checking",
			setup: setup{opts: []snowsim.Option{snowsim.WithRateLimit(snowsim.RateLimitRule{
				Name: "integration", User: user, Limit: 2,
			})}},
			want: afterCredentials(want{
				instancecheck.CheckRateLimit: failed("resets at"),
			}, "rate limit is exhausted"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, tc.setup)
			if len(rep.Checks) != 9 {
				t.Fatalf("Run gave %d checks, want 9: %+v", len(rep.Checks), rep.Checks)
			}
			for _, c := range rep.Checks {
				w, named := tc.want[c.Name]
				if !named {
					w.status = instancecheck.OK
				}
				if c.Status != w.status {
					t.Errorf("check %s = %s (%s; fix %q), want %s", c.Name, c.Status, c.Detail, c.Fix, w.status)
					continue
				}
				if w.says != "" && !strings.Contains(c.Detail+" "+c.Fix, w.says) {
					t.Errorf("check %s says %q (fix %q), want it to mention %q", c.Name, c.Detail, c.Fix, w.says)
				}
				if c.Status == instancecheck.Failed && c.Fix == "" {
					t.Errorf("check %s failed without a fix: %s", c.Name, c.Detail)
				}
			}
			if got, wantFailed := rep.Failed(), hasFailure(tc.want); got != wantFailed {
				t.Errorf("Failed() = %v, want %v", got, wantFailed)
			}
		})
	}
}

// literalsIn makes an instance that reads the date literals of
// sys_updated_on terms in zone, not UTC: the simulator follows ServiceNow
// staff (literals are UTC), and this is the other reading the query
// canary is there to catch.
func literalsIn(zone string) func(http.Handler) http.Handler {
	term := regexp.MustCompile(`(sys_updated_on(?:>=|<=|=|>|<))(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})`)
	return func(next http.Handler) http.Handler {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			panic(err)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if enc := q.Get("sysparm_query"); enc != "" {
				q.Set("sysparm_query", term.ReplaceAllStringFunc(enc, func(m string) string {
					parts := term.FindStringSubmatch(m)
					local, err := time.ParseInLocation(servicenow.TimeLayout, parts[2], loc)
					if err != nil {
						return m
					}
					return parts[1] + local.UTC().Format(servicenow.TimeLayout)
				}))
				r.URL.RawQuery = q.Encode()
			}
			next.ServeHTTP(w, r)
		})
	}
}

func hasFailure(w want) bool {
	for _, c := range w {
		if c.status == instancecheck.Failed {
			return true
		}
	}
	return false
}

// A certificate the client does not trust is a TLS failure of
// reachability, and nothing else runs.
func TestRunUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	g := registry.Gateway{ID: "gtw_tls", InstanceURL: srv.URL, Auth: registry.AuthBasic, Username: user}
	connect := func(_ context.Context, opts ...servicenow.Option) (instancecheck.Instance, error) {
		return servicenow.New(g.InstanceURL, servicenow.BasicAuth(user, password), opts...)
	}
	rep := instancecheck.Run(context.Background(), instancecheck.Target{Gateway: g}, connect)
	c, _ := rep.Check(instancecheck.CheckReachability)
	if c.Status != instancecheck.Failed || !strings.Contains(c.Detail, "TLS") {
		t.Errorf("reachability = %s %q, want failed naming TLS", c.Status, c.Detail)
	}
	if c, _ := rep.Check(instancecheck.CheckCredentials); c.Status != instancecheck.Skipped {
		t.Errorf("credentials = %s, want skipped", c.Status)
	}
}

// Credentials that cannot be loaded fail the credentials check; nothing
// else can run.
func TestRunWithoutCredentials(t *testing.T) {
	g := registry.Gateway{ID: "gtw_nocreds", InstanceURL: "https://acme.service-now.com", Auth: registry.AuthBasic, Username: user}
	connect := func(context.Context, ...servicenow.Option) (instancecheck.Instance, error) {
		return nil, servicenow.ErrInvalidCredentials
	}
	rep := instancecheck.Run(context.Background(), instancecheck.Target{Gateway: g}, connect)
	for _, c := range rep.Checks {
		want := instancecheck.Skipped
		if c.Name == instancecheck.CheckCredentials {
			want = instancecheck.Failed
		}
		if c.Status != want {
			t.Errorf("check %s = %s (%s), want %s", c.Name, c.Status, c.Detail, want)
		}
	}
	if len(rep.Checks) != 9 || rep.Checks[0].Name != instancecheck.CheckReachability {
		t.Errorf("checks = %+v, want all 9 in order", rep.Checks)
	}
}
