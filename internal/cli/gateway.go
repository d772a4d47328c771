package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

func init() {
	RegisterGroup("infra", "operate a snowgate deployment")
	RegisterGroup("infra gateway", "ServiceNow instances and how their records are handled")
	Register(gatewayCreate)
	Register(gatewayList)
	Register(gatewayShow)
	Register(gatewayUpdate)
	Register(gatewayDelete)
}

// gatewayFlags are the settable fields of a gateway.
type gatewayFlags struct {
	name, description, instanceURL, auth, username, clientID string
	groups, envs, escalation                                 string
	dedup                                                    int
	writeBack, active, passwordStdin, clientSecretStdin      bool
	allowCustomHost                                          bool
	// The job lifecycle settings.
	org, mode, mention, onSuccess, onFailure, closeCode string
	dedupNote                                           bool
	// The ServiceNow budget.
	rateLimit      string
	maxConcurrency int
}

func (f *gatewayFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "display name")
	fs.StringVar(&f.description, "description", "", "free text")
	fs.StringVar(&f.instanceURL, "instance-url", "", "ServiceNow instance URL, https://<instance>.service-now.com")
	fs.BoolVar(&f.allowCustomHost, "allow-custom-host", false, "allow an --instance-url on a host that is neither <instance>.service-now.com, <instance>.servicenowservices.com nor loopback (a proxy, a custom domain): the gateway's credentials are sent there")
	fs.StringVar(&f.auth, "auth", "", "credentials type: basic, oauth-client-credentials or oauth-password")
	fs.StringVar(&f.username, "username", "", "ServiceNow user (basic, oauth-password)")
	fs.StringVar(&f.clientID, "client-id", "", "OAuth client id (oauth-*)")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the user's password from stdin")
	fs.BoolVar(&f.clientSecretStdin, "client-secret-stdin", false, "read the OAuth client secret from stdin (after the password when both are read)")
	fs.StringVar(&f.groups, "assignment-group-filter", "", "act only on these assignment groups (comma-separated names exactly as on the instance, or sys_ids; resolved to sys_ids; empty: any)")
	fs.StringVar(&f.envs, "environment-filter", "", "act only on these u_environment values (comma-separated; empty: any)")
	fs.IntVar(&f.dedup, "dedup-window-minutes", registry.DefaultDedupWindowMinutes, "incidents with the same fingerprint within this window are deduplicated; -1 disables")
	fs.BoolVar(&f.writeBack, "write-back", true, "add a work note to each record the gateway accepts")
	fs.StringVar(&f.escalation, "escalation-group", "", "assignment group for escalations (a name exactly as on the instance, or a sys_id; resolved to its sys_id)")
	fs.BoolVar(&f.active, "active", true, "whether the gateway processes records")
	fs.StringVar(&f.org, "org", "", "the automation platform organisation the gateway's jobs belong to; every job event carries it")
	fs.StringVar(&f.mode, "mode", registry.ModeAutomatic, "when a ticket gets a job: "+registry.ModeAutomatic+" (every in-scope ticket) or "+
		registry.ModeSemiAutomatic+" (only once a comment or work note mentions --mention)")
	fs.StringVar(&f.mention, "mention", registry.DefaultMention, "the token (one word, at most 40 characters) a comment or work note contains to create a job (semi-automatic) or to send a follow-up to an open job")
	fs.StringVar(&f.onSuccess, "on-success", registry.OnSuccessResolve, "what a succeeded result does: resolve (incident Resolved with the close code, change request to Review), comment (a public comment, the ticket left open) or none")
	fs.StringVar(&f.onFailure, "on-failure", registry.OnFailureEscalate, "what a failed or partial result does: escalate (a work note, and reassigned to the escalation group), note (the work note only) or none")
	fs.StringVar(&f.closeCode, "resolve-close-code", registry.DefaultResolveCloseCode, "the close code of an incident a succeeded result resolves (change requests close \"successful\")")
	fs.BoolVar(&f.dedupNote, "dedup-note", true, "add a work note to a deduplicated incident naming the incident it duplicates")
	f.registerBudget(fs)
}

// settingChanges are the job lifecycle settings given on the command line.
func (f *gatewayFlags) settingChanges(c *Call, ch *registration.GatewayChanges) {
	given := func(flag string, apply func()) {
		if c.Set(flag) {
			apply()
		}
	}
	given("org", func() { ch.Org = &f.org })
	given("mode", func() { ch.Mode = &f.mode })
	given("mention", func() { ch.Mention = &f.mention })
	given("on-success", func() { ch.OnSuccess = &f.onSuccess })
	given("on-failure", func() { ch.OnFailure = &f.onFailure })
	given("resolve-close-code", func() { ch.ResolveCloseCode = &f.closeCode })
	off := !f.dedupNote
	given("dedup-note", func() { ch.DedupNoteOff = &off })
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// warnEscalation warns, on stderr, about a gateway that escalates
// failures to no one.
func warnEscalation(c *Call, g registry.Gateway) {
	if msg := registration.EscalationWarning(g); msg != "" {
		fmt.Fprintf(c.Stderr, "Warning: %s\n", msg)
	}
}

// stdinLabels names the secrets to read from stdin, in order.
func stdinLabels(f *gatewayFlags) []string {
	var labels []string
	if f.passwordStdin {
		labels = append(labels, "password")
	}
	if f.clientSecretStdin {
		labels = append(labels, "client secret")
	}
	return labels
}

// assignSecrets puts the secrets read for labels where they go.
func assignSecrets(labels, values []string, password, clientSecret *string) {
	for i, l := range labels {
		switch l {
		case "password":
			*password = values[i]
		case "client secret":
			*clientSecret = values[i]
		}
	}
}

// operations returns the gateway and webhook operations over the resolved
// registry table and Secrets Manager.
func operations(ctx context.Context, c *Call) (*registration.Service, error) {
	store, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	sm, err := c.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	// After Registry, which reads the stack when the table comes from it,
	// so that the prefix is its output without a second read. Filters are
	// resolved on the instance with the credentials being registered; one
	// retry, so an unreachable instance fails soon.
	return registration.New(store, sm, registration.WithSecretPrefix(c.SecretPrefix(ctx)), registration.WithClock(c.Now),
		registration.WithDirectory(registration.ConnectInstance(servicenow.WithMaxAttempts(2)))), nil
}

// usage makes a validation error of the operations a usage error (exit 2),
// with its message as it is: it names the flag as help prints it.
func usage(err error) error {
	var v *registration.ValidationError
	if errors.As(err, &v) {
		return Usagef("%s", v.Message)
	}
	return err
}

// opError is what a command prints for an operation's error: a usage error
// for invalid input, "<what> <id> not found" for ErrNotFound.
func opError(err error, what, id string) error { return notFound(usage(err), what, id) }

// splitLeftover tells an operation that failed from one that succeeded but
// left secrets behind (a *registration.LeftoverSecretsError): the command
// prints the result of the second, then fails with leftover, naming the
// secrets to delete by hand.
func splitLeftover(err error) (leftover, failed error) {
	if registration.IsLeftover(err) {
		return err, nil
	}
	return nil, err
}

// gatewayAndWebhooks reads the gateway --id names and its webhooks
// (never nil: none is an empty list).
func gatewayAndWebhooks(ctx context.Context, c *Call, id string) (registry.Gateway, []registry.Webhook, error) {
	if err := checkGatewayID("id", id); err != nil {
		return registry.Gateway{}, nil, err
	}
	store, err := c.Registry(ctx)
	if err != nil {
		return registry.Gateway{}, nil, err
	}
	g, err := store.Gateway(ctx, id)
	if err != nil {
		return registry.Gateway{}, nil, notFound(err, "gateway", id)
	}
	hooks, err := store.Webhooks(ctx, id)
	if err != nil {
		return registry.Gateway{}, nil, err
	}
	if hooks == nil {
		hooks = []registry.Webhook{}
	}
	return g, hooks, nil
}

func checkGatewayID(flagName, id string) error {
	return usage(registration.CheckGatewayID("--"+flagName, id))
}

var gatewayCreate = Command{
	Path:  "infra gateway create",
	Short: "register a ServiceNow instance; its password or client secret is read from stdin",
	Usage: "--name <name> --instance-url <url> [--allow-custom-host] --auth basic|oauth-client-credentials|oauth-password [--username <user>] [--client-id <id>] [--password-stdin] [--client-secret-stdin] [--assignment-group-filter <groups>] [--environment-filter <envs>] [--dedup-window-minutes 30] [--write-back=true] [--escalation-group <group>] [--org <org>] [--mode automatic|semi-automatic] [--mention @2501] [--on-success resolve|comment|none] [--on-failure escalate|note|none] [--resolve-close-code <code>] [--dedup-note=true] " + budgetFlagsUsage + " [--description <text>] [--skip-instance-checks]",
	Long: `The assignment group filter and the escalation group are resolved to
sys_user_group sys_ids on the instance, with the credentials given: Business
Rule conditions compare strings case-sensitively, so a name must be typed
exactly as the instance spells it (a near miss is refused with the name to
type); a sys_id of an existing group is accepted too. An environment filter
is refused when the instance has no u_environment field on incident and
change_request (or task). --skip-instance-checks registers without the
instance: the filters are stored as typed and matched by name.

The instance URL is https://<instance>.service-now.com (or
<instance>.servicenowservices.com), or http on loopback for a local
simulator. Any other host (a proxy, a custom domain) is refused unless
--allow-custom-host is given: the gateway's credentials are sent to whoever
answers there, and the functions refuse to connect a gateway on such a host
without the permission, whatever the registry table says.

The password and client secret are stored in AWS Secrets Manager (named
<secret prefix>gateways/<gateway id>, with the instance URL they are for),
never in the registry table. When both
are read, stdin holds the password on the first line, the client secret on
the second; on a terminal they are prompted for without echo.

A ticket has at most one job. In automatic mode every in-scope ticket gets
one; in semi-automatic mode a ticket waits (status awaiting_mention) until a
comment or work note contains the mention token. In both modes a later
comment or work note with the token is a follow-up for the open job. The
engine's results are written back as --on-success and --on-failure say;
--on-failure escalate without --escalation-group only adds the work note
(a warning says so).

The processor, the reconciler and the writer share one ServiceNow budget
per gateway: --rate-limit requests an hour (with a burst of a tenth of it,
at most 20, on top) and --max-concurrency requests at once. The defaults,
3600/h and 2, suit a small instance; an instance that sends
X-RateLimit-Limit lowers the rate by itself. gateway show prints the
budget now and any pause; gateway resume lifts a pause.`,
	Example: `printf '%s\n' "$SN_PASSWORD" | 2501 infra gateway create --name prod --instance-url https://acme.service-now.com --auth basic --username svc_snowgate --password-stdin --assignment-group-filter "Network,Database"
printf '%s\n' "$SN_CLIENT_SECRET" | 2501 infra gateway create --name prod --instance-url https://acme.service-now.com --auth oauth-client-credentials --client-id 3f1e… --client-secret-stdin`,
	Flags: func(fs *pflag.FlagSet) Action {
		var f gatewayFlags
		f.register(fs)
		skipChecks := fs.Bool("skip-instance-checks", false, skipChecksHelp+", nor check it after registering it (see gateway check; a failed check only warns)")
		return func(ctx context.Context, c *Call) error {
			in := registration.GatewayInput{
				Name: f.name, Description: f.description, InstanceURL: f.instanceURL,
				Auth: f.auth, Username: f.username, ClientID: f.clientID,
				AssignmentGroupFilter: f.groups, EnvironmentFilter: f.envs, DedupWindowMinutes: f.dedup,
				EscalationGroup: f.escalation, WriteBack: f.writeBack, Active: f.active,
				SkipInstanceChecks: *skipChecks, AllowCustomHost: f.allowCustomHost,
			}
			// The job settings not given stay empty: the defaults, as for a
			// gateway made by any other caller.
			var typed registration.GatewayChanges
			f.settingChanges(c, &typed)
			in.Org, in.Mode, in.Mention = deref(typed.Org), deref(typed.Mode), deref(typed.Mention)
			in.OnSuccess, in.OnFailure, in.ResolveCloseCode = deref(typed.OnSuccess), deref(typed.OnFailure), deref(typed.ResolveCloseCode)
			in.DedupNoteOff = typed.DedupNoteOff != nil && *typed.DedupNoteOff
			if err := f.budgetChanges(c, &typed); err != nil {
				return err
			}
			in.RateLimitPerHour, in.MaxConcurrency = derefInt(typed.RateLimitPerHour), derefInt(typed.MaxConcurrency)
			// Check what the flags alone must supply before reading stdin.
			probe := in
			probe.Password, probe.ClientSecret = mark(f.passwordStdin), mark(f.clientSecretStdin)
			if err := probe.Validate(); err != nil {
				return usage(err)
			}
			// An empty setting means the default to the operation; typed
			// on the command line (--mention "") it is a mistake, checked
			// as an update would check it.
			if !typed.Empty() {
				if err := typed.Validate(); err != nil {
					return usage(err)
				}
			}
			labels := stdinLabels(&f)
			values, err := c.ReadSecrets(labels...)
			if err != nil {
				return err
			}
			assignSecrets(labels, values, &in.Password, &in.ClientSecret)
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			g, err := ops.CreateGateway(ctx, in)
			if err != nil {
				return usage(err)
			}
			if err := c.Print(gatewayOutput(g), func(w io.Writer) {
				fmt.Fprintln(w, "Gateway created!")
				writeGateway(w, g, nil, nil, time.Time{})
				if *skipChecks {
					writeOffline(w, g)
				}
				fmt.Fprintf(w, "\nNext: %s infra webhook create --name %s-incidents --source-type servicenow --event-type incident --gateway-id %s\n", Name, slug(g.Name), g.ID)
			}); err != nil {
				return err
			}
			warnEscalation(c, g)
			if !*skipChecks {
				warnChecks(ctx, c, g)
			}
			return nil
		}
	},
}

// skipChecksHelp is the help of --skip-instance-checks.
const skipChecksHelp = "register without the instance: store the assignment group filter and escalation group as typed (matched by name, case-sensitively) and do not check the environment field"

// writeOffline says what an offline registration stored.
func writeOffline(w io.Writer, g registry.Gateway) {
	if g.AssignmentGroupFilter == "" && g.EscalationGroup == "" && g.EnvironmentFilter == "" {
		return
	}
	fmt.Fprintln(w, "\nNot checked against the instance (--skip-instance-checks): the filters are stored as typed.")
	if len(g.AssignmentGroupIDs) == 0 && g.AssignmentGroupFilter != "" {
		fmt.Fprintln(w, "Its groups are matched by name, exactly as typed (case included). To match them by sys_id once the")
		fmt.Fprintf(w, "instance is reachable: %s infra gateway update --id %s --assignment-group-filter %q\n", Name, g.ID, g.AssignmentGroupFilter)
	}
}

// mark stands in for a secret that will be read, for checks made before
// reading it.
func mark(given bool) string {
	if given {
		return "(stdin)"
	}
	return ""
}

func slug(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), "-"))
	if s == "" {
		return "my"
	}
	return s
}

var gatewayList = Command{
	Path:    "infra gateway list",
	Short:   "list gateways",
	Example: "2501 infra gateway list\n2501 infra gateway list --output json",
	Flags: func(fs *pflag.FlagSet) Action {
		return func(ctx context.Context, c *Call) error {
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			gws, err := store.Gateways(ctx)
			if err != nil {
				return err
			}
			if gws == nil {
				gws = []registry.Gateway{}
			}
			return c.Print(gatewayListOutput(gws), func(w io.Writer) {
				if len(gws) == 0 {
					fmt.Fprintf(w, "No gateways. Create one with: %s infra gateway create --help\n", Name)
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tACTIVE\tAUTH\tINSTANCE URL\tSCOPE")
				for _, g := range gws {
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", g.ID, g.Name, g.Active, g.Auth, g.InstanceURL, g.ScopeQuery())
				}
				_ = tw.Flush()
			})
		}
	},
}

var gatewayShow = Command{
	Path:  "infra gateway show",
	Short: "show a gateway, its webhooks and its ServiceNow budget now",
	Usage: "--id <gtw_…>",
	Long: `Besides the gateway's settings and webhooks, show reads its ServiceNow
budget from the state table: the tokens left of the burst and the slots in
use now, the limit the instance taught it (X-RateLimit-Limit) when that
lowered the rate, and any pause with its end, cause and reason (lift one
with gateway resume). When the state table cannot be read, the settings are
shown and the budget is said to be unavailable.`,
	Example: "2501 infra gateway show --id gtw_0b7c…\n2501 infra gateway show --id gtw_0b7c… --output json",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "gateway id (required)")
		return func(ctx context.Context, c *Call) error {
			g, hooks, err := gatewayAndWebhooks(ctx, c, *id)
			if err != nil {
				return err
			}
			live := readBudget(ctx, c, g)
			return c.Print(gatewayShowOutput(g, hooks, live, c.knownAPIURL(), c.Now()), func(w io.Writer) {
				writeGateway(w, g, hooks, &live, c.Now())
			})
		}
	},
}

var gatewayUpdate = Command{
	Path:  "infra gateway update",
	Short: "change a gateway (only the flags given); --active=false stops it at once",
	Usage: "--id <gtw_…> [--name …] [--active=true|false] [--instance-url …] [--allow-custom-host=true|false] [--auth … --username … --client-id … --password-stdin --client-secret-stdin] [--assignment-group-filter …] [--environment-filter …] [--dedup-window-minutes …] [--write-back=…] [--escalation-group …] [--org …] [--mode …] [--mention …] [--on-success …] [--on-failure …] [--resolve-close-code …] [--dedup-note=…] [--rate-limit N/h|default] [--max-concurrency N] [--description …] [--skip-instance-checks]",
	Long: `Only the flags given change. Activating or deactivating a gateway rewrites
the path items of all its webhooks in the same transaction, so ingest stops
(or resumes) accepting their calls at once. Changing --auth needs the new
mode's secrets on stdin; other credential flags update the stored secret.
A changed filter changes the Business Rule condition: re-create the
webhooks' rules or edit their Filter Conditions to match. Changed filters
(or a changed instance URL) are resolved on the instance as with create;
giving --assignment-group-filter again resolves the names of a gateway
registered with --skip-instance-checks. An --instance-url on a custom host
needs --allow-custom-host with it (or already given);
--allow-custom-host=false turns the permission off, for a gateway whose
instance URL is on ServiceNow.

A changed --mode, --mention or outbound mapping (--on-success, --on-failure,
--resolve-close-code) applies to the next record processed and the next
result written; jobs already open stay open. A changed --rate-limit or
--max-concurrency reaches warm functions within 30 s (they reuse a gateway
read for that long); --rate-limit default and --max-concurrency 0 go back
to the defaults.`,
	Example: `2501 infra gateway update --id gtw_0b7c… --active=false
2501 infra gateway update --id gtw_0b7c… --mode semi-automatic --mention @automation
2501 infra gateway update --id gtw_0b7c… --rate-limit 1000/h --max-concurrency 4
printf '%s\n' "$NEW_PASSWORD" | 2501 infra gateway update --id gtw_0b7c… --password-stdin`,
	Flags: func(fs *pflag.FlagSet) Action {
		var f gatewayFlags
		f.register(fs)
		id := fs.String("id", "", "gateway id (required)")
		skipChecks := fs.Bool("skip-instance-checks", false, skipChecksHelp)
		return func(ctx context.Context, c *Call) error {
			if err := checkGatewayID("id", *id); err != nil {
				return err
			}
			ch := registration.GatewayChanges{SkipInstanceChecks: *skipChecks}
			given := func(flag string, apply func()) {
				if c.Set(flag) {
					apply()
				}
			}
			given("name", func() { ch.Name = &f.name })
			given("description", func() { ch.Description = &f.description })
			given("instance-url", func() { ch.InstanceURL = &f.instanceURL })
			given("allow-custom-host", func() { ch.AllowCustomHost = &f.allowCustomHost })
			given("auth", func() { ch.Auth = &f.auth })
			given("username", func() { ch.Username = &f.username })
			given("client-id", func() { ch.ClientID = &f.clientID })
			given("assignment-group-filter", func() { ch.AssignmentGroupFilter = &f.groups })
			given("environment-filter", func() { ch.EnvironmentFilter = &f.envs })
			given("dedup-window-minutes", func() { ch.DedupWindowMinutes = &f.dedup })
			given("write-back", func() { ch.WriteBack = &f.writeBack })
			given("escalation-group", func() { ch.EscalationGroup = &f.escalation })
			given("active", func() { ch.Active = &f.active })
			f.settingChanges(c, &ch)
			if err := f.budgetChanges(c, &ch); err != nil {
				return err
			}
			// Check what the flags alone must supply before reading stdin.
			probe, stdin := ch, mark(true)
			if f.passwordStdin {
				probe.Password = &stdin
			}
			if f.clientSecretStdin {
				probe.ClientSecret = &stdin
			}
			if probe.Empty() {
				return Usagef("nothing to change: give at least one flag besides --id (see %s infra gateway update --help)", Name)
			}
			if err := probe.Validate(); err != nil {
				return usage(err)
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			if err := ops.CheckGatewayUpdate(ctx, *id, probe); err != nil {
				return opError(err, "gateway", *id)
			}
			labels := stdinLabels(&f)
			values, err := c.ReadSecrets(labels...)
			if err != nil {
				return err
			}
			var password, clientSecret string
			assignSecrets(labels, values, &password, &clientSecret)
			if f.passwordStdin {
				ch.Password = &password
			}
			if f.clientSecretStdin {
				ch.ClientSecret = &clientSecret
			}
			g, cur, err := ops.UpdateGateway(ctx, *id, ch)
			if err != nil {
				return opError(err, "gateway", *id)
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			hooks, err := store.Webhooks(ctx, *id)
			if err != nil {
				return err
			}
			// Only when this update made (or kept on purpose) the setting:
			// an unrelated change does not repeat the warning.
			if c.Set("on-failure") || c.Set("escalation-group") {
				defer warnEscalation(c, g)
			}
			return c.Print(gatewayOutput(g), func(w io.Writer) {
				fmt.Fprintln(w, "Gateway updated.")
				writeGateway(w, g, hooks, nil, time.Time{})
				if *skipChecks {
					writeOffline(w, g)
				}
				if c.Set("active") && cur.Active != g.Active && len(hooks) > 0 {
					state := "rejects"
					if g.Active {
						state = "accepts"
					}
					fmt.Fprintf(w, "\nIngest now %s calls to its %d webhook(s).\n", state, len(hooks))
				}
				if (c.Set("assignment-group-filter") || c.Set("environment-filter")) && len(hooks) > 0 {
					fmt.Fprintf(w, "\nThe scope changed: set the Filter Conditions of its Business Rules to\n  %s\n", g.RuleCondition())
				}
			})
		}
	},
}

var gatewayDelete = Command{
	Path:  "infra gateway delete",
	Short: "delete a gateway and its credentials secret (refused while webhooks use it, unless --force)",
	Usage: "--id <gtw_…> [--force]",
	Long: `With --force the gateway's webhooks and their path items are deleted in the
same transaction, and their HMAC keys with them; deactivate their Business
Rules in ServiceNow afterwards.`,
	Example: "2501 infra gateway delete --id gtw_0b7c…\n2501 infra gateway delete --id gtw_0b7c… --force",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "gateway id (required)")
		force := fs.Bool("force", false, "also delete the gateway's webhooks")
		return func(ctx context.Context, c *Call) error {
			if err := checkGatewayID("id", *id); err != nil {
				return err
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			del, err := ops.DeleteGateway(ctx, *id, *force)
			leftover, err := splitLeftover(err)
			if err != nil {
				return opError(err, "gateway", *id)
			}
			// Deleted, perhaps with secrets left over: print what went, then
			// fail naming the secrets to delete by hand.
			g, deleted := del.Gateway, del.Webhooks
			return errors.Join(c.Print(gatewayDeletedOutput(g, deleted), func(w io.Writer) {
				with := ", with its credentials secret"
				if leftover != nil {
					with = " (not all of its secrets: see the error below)"
				}
				fmt.Fprintf(w, "Gateway %s (%s) deleted%s.\n", g.ID, g.Name, with)
				for _, h := range deleted {
					fmt.Fprintf(w, "Webhook %s (%s) deleted: deactivate its Business Rule %q on the %s table.\n", h.ID, h.Name, ruleName(h), h.EventType)
				}
			}), leftover)
		}
	},
}

// notFound turns registry.ErrNotFound into a message naming what is missing.
func notFound(err error, what, id string) error {
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("%s %s not found", what, id)
	}
	return err
}

func ruleName(w registry.Webhook) string {
	r, err := businessrule.Render(businessrule.Params{WebhookName: w.Name, Table: w.EventType, URL: "https://x", Signing: registry.SigningSecret, Secret: "x"})
	if err != nil {
		return "snowgate: " + w.Name
	}
	return r.Name
}

// writeGateway writes a gateway and, when given, its webhooks and its
// budget now (live, read at now).
func writeGateway(w io.Writer, g registry.Gateway, hooks []registry.Webhook, live *budgetLive, now time.Time) {
	line := func(label string, v any) { fmt.Fprintf(w, "  %-17s %v\n", label+":", v) }
	line("ID", g.ID)
	line("Name", g.Name)
	if g.Description != "" {
		line("Description", g.Description)
	}
	line("Active", g.Active)
	line("Instance URL", g.InstanceURL)
	if g.AllowCustomHost {
		line("Custom host", "allowed (--allow-custom-host)")
	}
	auth := g.Auth
	var who []string
	if g.Username != "" {
		who = append(who, "user "+g.Username)
	}
	if g.ClientID != "" {
		who = append(who, "client id "+g.ClientID)
	}
	if len(who) > 0 {
		auth += " (" + strings.Join(who, ", ") + ")"
	}
	line("Auth", auth)
	line("Credentials", "Secrets Manager "+g.CredentialsSecretARN)
	if g.AssignmentGroupFilter != "" {
		line("Groups", groupsLine(g))
	}
	line("Scope", g.ScopeQuery())
	fmt.Fprintf(w, "  %-17s (%s)\n", "", businessrule.Describe(g.ScopeQuery()))
	dedup := fmt.Sprintf("%d minutes", g.DedupWindowMinutes)
	if g.DedupWindowMinutes < 0 {
		dedup = "off"
	}
	line("Dedup window", dedup)
	line("Write-back", onOff(g.WriteBack))
	if g.EscalationGroup != "" {
		esc := g.EscalationGroup + " (name, not resolved)"
		if g.EscalationGroupID == g.EscalationGroup {
			esc = g.EscalationGroup
		} else if g.EscalationGroupID != "" {
			esc = g.EscalationGroup + " (" + g.EscalationGroupID + ")"
		}
		line("Escalation group", esc)
	}
	if g.Org != "" {
		line("Org", g.Org)
	}
	line("Mode", g.JobMode())
	line("Mention", g.MentionToken())
	line("On success", g.SuccessAction())
	onFailure := g.FailureAction()
	if registration.EscalationWarning(g) != "" {
		onFailure += " (no escalation group: the work note only)"
	}
	line("On failure", onFailure)
	line("Close code", g.CloseCode())
	line("Dedup note", onOff(g.DedupNote()))
	writeBudgetSettings(line, g)
	if live != nil {
		writeBudgetLive(w, line, g.ID, *live, now)
	}
	line("Created", g.CreatedAt.Format(time.RFC3339))
	line("Updated", g.UpdatedAt.Format(time.RFC3339))
	if hooks != nil {
		if len(hooks) == 0 {
			line("Webhooks", "none")
		}
		for i, h := range hooks {
			label := ""
			if i == 0 {
				label = "Webhooks:"
			}
			fmt.Fprintf(w, "  %-17s %s %s %s (%s)\n", label, h.ID, h.EventType, activeWord(h.Active), h.Name)
		}
	}
}

// groupsLine is the group filter as typed with the sys_id each resolved
// to, or says it is matched by name.
func groupsLine(g registry.Gateway) string {
	typed := g.AssignmentGroups()
	if !g.GroupsByID() {
		return strings.Join(typed, ", ") + " (names, matched exactly: not resolved to sys_ids)"
	}
	if len(typed) != len(g.AssignmentGroupIDs) {
		// Two names of one group resolve to one sys_id.
		return strings.Join(typed, ", ") + " → " + strings.Join(g.AssignmentGroupIDs, ", ")
	}
	parts := make([]string, len(typed))
	for i, t := range typed {
		parts[i] = t
		if t != g.AssignmentGroupIDs[i] {
			parts[i] += " (" + g.AssignmentGroupIDs[i] + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func activeWord(b bool) string {
	if b {
		return "active"
	}
	return "inactive"
}
