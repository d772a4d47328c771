package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
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
}

func (f *gatewayFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "display name")
	fs.StringVar(&f.description, "description", "", "free text")
	fs.StringVar(&f.instanceURL, "instance-url", "", "ServiceNow instance URL, https://<instance>.service-now.com")
	fs.StringVar(&f.auth, "auth", "", "credentials type: basic, oauth-client-credentials or oauth-password")
	fs.StringVar(&f.username, "username", "", "ServiceNow user (basic, oauth-password)")
	fs.StringVar(&f.clientID, "client-id", "", "OAuth client id (oauth-*)")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the user's password from stdin")
	fs.BoolVar(&f.clientSecretStdin, "client-secret-stdin", false, "read the OAuth client secret from stdin (after the password when both are read)")
	fs.StringVar(&f.groups, "assignment-group-filter", "", "act only on these assignment groups (comma-separated names; empty: any)")
	fs.StringVar(&f.envs, "environment-filter", "", "act only on these u_environment values (comma-separated; empty: any)")
	fs.IntVar(&f.dedup, "dedup-window-minutes", registry.DefaultDedupWindowMinutes, "incidents with the same fingerprint within this window are deduplicated; -1 disables")
	fs.BoolVar(&f.writeBack, "write-back", true, "add a work note to each record the gateway accepts")
	fs.StringVar(&f.escalation, "escalation-group", "", "assignment group for escalations")
	fs.BoolVar(&f.active, "active", true, "whether the gateway processes records")
}

// authNeeds says which credentials each auth mode uses.
var authNeeds = map[string]struct{ username, password, clientID, clientSecret bool }{
	registry.AuthBasic:                  {username: true, password: true},
	registry.AuthOAuthClientCredentials: {clientID: true, clientSecret: true},
	registry.AuthOAuthPassword:          {username: true, password: true, clientID: true, clientSecret: true},
}

func validAuth(auth string) error {
	if _, ok := authNeeds[auth]; !ok {
		return Usagef("--auth must be %s, %s or %s", registry.AuthBasic, registry.AuthOAuthClientCredentials, registry.AuthOAuthPassword)
	}
	return nil
}

// checkInstanceURL accepts https URLs, and http only on loopback (the local
// ServiceNow simulator): credentials must not cross a network in clear.
func checkInstanceURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	bad := Usagef("--instance-url must be an https URL such as https://example.service-now.com")
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", bad
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", Usagef("--instance-url must use https (http is accepted only on loopback)")
		}
	default:
		return "", bad
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func checkDedup(n int) error {
	if n < -1 {
		return Usagef("--dedup-window-minutes must be -1 (off), 0 or more")
	}
	return nil
}

// unusedCredentialFlag rejects credential flags the auth mode does not use.
func unusedCredentialFlag(auth string, f *gatewayFlags) error {
	needs := authNeeds[auth]
	for _, ch := range []struct {
		flag          string
		needed, given bool
	}{
		{"username", needs.username, f.username != ""},
		{"client-id", needs.clientID, f.clientID != ""},
		{"password-stdin", needs.password, f.passwordStdin},
		{"client-secret-stdin", needs.clientSecret, f.clientSecretStdin},
	} {
		if ch.given && !ch.needed {
			return Usagef("--%s is not used with --auth %s", ch.flag, auth)
		}
	}
	return nil
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

// requireCredentials checks that every credential the mode needs is there.
func requireCredentials(auth string, creds registry.Credentials) error {
	needs := authNeeds[auth]
	for _, ch := range []struct {
		flag    string
		needed  bool
		present bool
	}{
		{"--username", needs.username, creds.Username != ""},
		{"--password-stdin", needs.password, creds.Password != ""},
		{"--client-id", needs.clientID, creds.ClientID != ""},
		{"--client-secret-stdin", needs.clientSecret, creds.ClientSecret != ""},
	} {
		if ch.needed && !ch.present {
			return Usagef("--auth %s needs %s", auth, ch.flag)
		}
	}
	return nil
}

func assignSecrets(labels, values []string, creds *registry.Credentials) {
	for i, l := range labels {
		switch l {
		case "password":
			creds.Password = values[i]
		case "client secret":
			creds.ClientSecret = values[i]
		}
	}
}

func gatewaySecretName(prefix, id string) string { return prefix + "gateways/" + id }

func checkGatewayID(flagName, id string) error {
	if id == "" {
		return Usagef("--%s is required", flagName)
	}
	if !registry.ValidGatewayID(id) {
		return Usagef("--%s %q is not a gateway id (gtw_<uuid>)", flagName, id)
	}
	return nil
}

var gatewayCreate = Command{
	Path:  "infra gateway create",
	Short: "register a ServiceNow instance; its password or client secret is read from stdin",
	Usage: "--name <name> --instance-url <url> --auth basic|oauth-client-credentials|oauth-password [--username <user>] [--client-id <id>] [--password-stdin] [--client-secret-stdin] [--assignment-group-filter <groups>] [--environment-filter <envs>] [--dedup-window-minutes 30] [--write-back=true] [--description <text>]",
	Long: `The password and client secret are stored in AWS Secrets Manager (named
<secret prefix>gateways/<gateway id>), never in the registry table. When both
are read, stdin holds the password on the first line, the client secret on
the second; on a terminal they are prompted for without echo.`,
	Example: `printf '%s\n' "$SN_PASSWORD" | 2501 infra gateway create --name prod --instance-url https://acme.service-now.com --auth basic --username svc_snowgate --password-stdin --assignment-group-filter "Network,Database"
printf '%s\n' "$SN_CLIENT_SECRET" | 2501 infra gateway create --name prod --instance-url https://acme.service-now.com --auth oauth-client-credentials --client-id 3f1e… --client-secret-stdin`,
	Flags: func(fs *pflag.FlagSet) Action {
		var f gatewayFlags
		f.register(fs)
		return func(ctx context.Context, c *Call) error {
			if f.name == "" {
				return Usagef("--name is required")
			}
			if f.instanceURL == "" {
				return Usagef("--instance-url is required")
			}
			instance, err := checkInstanceURL(f.instanceURL)
			if err != nil {
				return err
			}
			if f.auth == "" {
				return Usagef("--auth is required (%s, %s or %s)", registry.AuthBasic, registry.AuthOAuthClientCredentials, registry.AuthOAuthPassword)
			}
			if err := validAuth(f.auth); err != nil {
				return err
			}
			if err := unusedCredentialFlag(f.auth, &f); err != nil {
				return err
			}
			labels := stdinLabels(&f)
			creds := registry.Credentials{Auth: f.auth, Username: f.username, ClientID: f.clientID}
			// Check what the flags alone must supply before reading stdin.
			probe := creds
			probe.Password, probe.ClientSecret = mark(f.passwordStdin), mark(f.clientSecretStdin)
			if err := requireCredentials(f.auth, probe); err != nil {
				return err
			}
			if err := checkDedup(f.dedup); err != nil {
				return err
			}
			values, err := c.ReadSecrets(labels...)
			if err != nil {
				return err
			}
			assignSecrets(labels, values, &creds)

			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			sm, err := c.Secrets(ctx)
			if err != nil {
				return err
			}
			id := "gtw_" + uuid.NewString()
			doc, err := json.Marshal(creds)
			if err != nil {
				return fmt.Errorf("encode credentials: %w", err)
			}
			arn, err := sm.Create(ctx, gatewaySecretName(c.SecretPrefix(), id), string(doc), "snowgate ServiceNow credentials of gateway "+id)
			if err != nil {
				return err
			}
			g, err := store.CreateGateway(ctx, registry.Gateway{
				ID: id, Name: f.name, Type: registry.SourceServiceNow, Description: f.description,
				Active: f.active, InstanceURL: instance, Auth: f.auth, Username: f.username, ClientID: f.clientID,
				CredentialsSecretARN: arn, AssignmentGroupFilter: f.groups, EnvironmentFilter: f.envs,
				DedupWindowMinutes: f.dedup, EscalationGroup: f.escalation, WriteBack: f.writeBack,
			})
			if err != nil {
				return errors.Join(err, cleanupSecret(ctx, c, arn))
			}
			return c.Print(gatewayOutput(g), func(w io.Writer) {
				fmt.Fprintln(w, "Gateway created!")
				writeGateway(w, g, nil)
				fmt.Fprintf(w, "\nNext: %s infra webhook create --name %s-incidents --source-type servicenow --event-type incident --gateway-id %s\n", Name, slug(g.Name), g.ID)
			})
		}
	},
}

// mark stands in for a secret that will be read, for checks made before
// reading it.
func mark(given bool) string {
	if given {
		return "(stdin)"
	}
	return ""
}

// cleanupSecret deletes a secret created for a write that then failed, so
// that nothing half-written stays behind.
func cleanupSecret(ctx context.Context, c *Call, arn string) error {
	sm, err := c.Secrets(ctx)
	if err == nil {
		err = sm.Delete(context.WithoutCancel(ctx), arn)
	}
	if err != nil {
		return fmt.Errorf("also failed to delete the secret created for it, delete it by hand: %w", err)
	}
	return nil
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
	Path:    "infra gateway show",
	Short:   "show a gateway and its webhooks",
	Usage:   "--id <gtw_…>",
	Example: "2501 infra gateway show --id gtw_0b7c…",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "gateway id (required)")
		return func(ctx context.Context, c *Call) error {
			if err := checkGatewayID("id", *id); err != nil {
				return err
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			g, err := store.Gateway(ctx, *id)
			if err != nil {
				return notFound(err, "gateway", *id)
			}
			hooks, err := store.Webhooks(ctx, *id)
			if err != nil {
				return err
			}
			if hooks == nil {
				hooks = []registry.Webhook{}
			}
			return c.Print(gatewayShowOutput(g, hooks, c.knownAPIURL(), c.Now()), func(w io.Writer) { writeGateway(w, g, hooks) })
		}
	},
}

var gatewayUpdate = Command{
	Path:  "infra gateway update",
	Short: "change a gateway (only the flags given); --active=false stops it at once",
	Usage: "--id <gtw_…> [--name …] [--active=true|false] [--instance-url …] [--auth … --username … --client-id … --password-stdin --client-secret-stdin] [--assignment-group-filter …] [--environment-filter …] [--dedup-window-minutes …] [--write-back=…] [--description …]",
	Long: `Only the flags given change. Activating or deactivating a gateway rewrites
the path items of all its webhooks in the same transaction, so ingest stops
(or resumes) accepting their calls at once. Changing --auth needs the new
mode's secrets on stdin; other credential flags update the stored secret.
A changed filter changes the Business Rule condition: re-create the
webhooks' rules or edit their Filter Conditions to match.`,
	Example: `2501 infra gateway update --id gtw_0b7c… --active=false
printf '%s\n' "$NEW_PASSWORD" | 2501 infra gateway update --id gtw_0b7c… --password-stdin`,
	Flags: func(fs *pflag.FlagSet) Action {
		var f gatewayFlags
		f.register(fs)
		id := fs.String("id", "", "gateway id (required)")
		return func(ctx context.Context, c *Call) error {
			if err := checkGatewayID("id", *id); err != nil {
				return err
			}
			changes := 0
			for _, name := range []string{"name", "description", "instance-url", "auth", "username", "client-id", "password-stdin",
				"client-secret-stdin", "assignment-group-filter", "environment-filter", "dedup-window-minutes", "write-back", "escalation-group", "active"} {
				if c.Set(name) {
					changes++
				}
			}
			if changes == 0 {
				return Usagef("nothing to change: give at least one flag besides --id (see %s infra gateway update --help)", Name)
			}
			instance := ""
			if c.Set("instance-url") {
				var err error
				if instance, err = checkInstanceURL(f.instanceURL); err != nil {
					return err
				}
			}
			if c.Set("auth") {
				if err := validAuth(f.auth); err != nil {
					return err
				}
			}
			if c.Set("name") && f.name == "" {
				return Usagef("--name cannot be empty")
			}
			if err := checkDedup(f.dedup); err != nil {
				return err
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			cur, err := store.Gateway(ctx, *id)
			if err != nil {
				return notFound(err, "gateway", *id)
			}

			credsChange := c.Set("auth") || c.Set("username") || c.Set("client-id") || f.passwordStdin || f.clientSecretStdin
			var restore func() error
			if credsChange {
				if restore, err = updateCredentials(ctx, c, cur, &f); err != nil {
					return err
				}
			}
			g, err := store.UpdateGateway(ctx, *id, func(g *registry.Gateway) error {
				set := func(flag string, apply func()) {
					if c.Set(flag) {
						apply()
					}
				}
				set("name", func() { g.Name = f.name })
				set("description", func() { g.Description = f.description })
				set("instance-url", func() { g.InstanceURL = instance })
				set("assignment-group-filter", func() { g.AssignmentGroupFilter = f.groups })
				set("environment-filter", func() { g.EnvironmentFilter = f.envs })
				set("dedup-window-minutes", func() { g.DedupWindowMinutes = f.dedup })
				set("write-back", func() { g.WriteBack = f.writeBack })
				set("escalation-group", func() { g.EscalationGroup = f.escalation })
				set("active", func() { g.Active = f.active })
				if credsChange {
					g.Auth, g.Username, g.ClientID = credentialFields(cur, &f, c)
				}
				return nil
			})
			if err != nil {
				if restore != nil {
					err = errors.Join(err, restore())
				}
				return notFound(err, "gateway", *id)
			}
			hooks, err := store.Webhooks(ctx, *id)
			if err != nil {
				return err
			}
			return c.Print(gatewayOutput(g), func(w io.Writer) {
				fmt.Fprintln(w, "Gateway updated.")
				writeGateway(w, g, hooks)
				if c.Set("active") && cur.Active != g.Active && len(hooks) > 0 {
					state := "rejects"
					if g.Active {
						state = "accepts"
					}
					fmt.Fprintf(w, "\nIngest now %s calls to its %d webhook(s).\n", state, len(hooks))
				}
				if (c.Set("assignment-group-filter") || c.Set("environment-filter")) && len(hooks) > 0 {
					fmt.Fprintf(w, "\nThe scope changed: set the Filter Conditions of its Business Rules to\n  %s\n", g.ScopeQuery())
				}
			})
		}
	},
}

// credentialFields are the gateway's auth, username and client id after
// the flags of an update; fields the mode does not use are cleared.
func credentialFields(cur registry.Gateway, f *gatewayFlags, c *Call) (auth, username, clientID string) {
	auth, username, clientID = cur.Auth, cur.Username, cur.ClientID
	if c.Set("auth") {
		auth = f.auth
	}
	if c.Set("username") {
		username = f.username
	}
	if c.Set("client-id") {
		clientID = f.clientID
	}
	needs := authNeeds[auth]
	if !needs.username {
		username = ""
	}
	if !needs.clientID {
		clientID = ""
	}
	return auth, username, clientID
}

// updateCredentials writes the gateway's new credentials to its secret and
// returns how to put the old ones back if the table write then fails.
func updateCredentials(ctx context.Context, c *Call, cur registry.Gateway, f *gatewayFlags) (restore func() error, err error) {
	auth, username, clientID := credentialFields(cur, f, c)
	needs := authNeeds[auth]
	if err := unusedCredentialFlag(auth, f); err != nil {
		return nil, err
	}
	if auth != cur.Auth {
		// A new mode starts from fresh secrets, given now.
		probe := registry.Credentials{Auth: auth, Username: username, ClientID: clientID,
			Password: mark(f.passwordStdin), ClientSecret: mark(f.clientSecretStdin)}
		if err := requireCredentials(auth, probe); err != nil {
			return nil, err
		}
	} else if err := requireCredentials(auth, registry.Credentials{Auth: auth, Username: username, ClientID: clientID, Password: "kept", ClientSecret: "kept"}); err != nil {
		return nil, err
	}
	labels := stdinLabels(f)
	values, err := c.ReadSecrets(labels...)
	if err != nil {
		return nil, err
	}
	sm, err := c.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	old, err := sm.Get(ctx, cur.CredentialsSecretARN)
	if err != nil {
		return nil, fmt.Errorf("read the gateway's credentials: %w", err)
	}
	var creds registry.Credentials
	if err := json.Unmarshal([]byte(old), &creds); err != nil {
		return nil, fmt.Errorf("decode the gateway's credentials secret: %w", errors.New("not a credentials document"))
	}
	if auth != cur.Auth {
		creds = registry.Credentials{}
	}
	creds.Auth, creds.Username, creds.ClientID = auth, username, clientID
	assignSecrets(labels, values, &creds)
	if !needs.password {
		creds.Password = ""
	}
	if !needs.clientSecret {
		creds.ClientSecret = ""
	}
	if err := requireCredentials(auth, creds); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(creds)
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	if err := sm.Put(ctx, cur.CredentialsSecretARN, string(doc)); err != nil {
		return nil, err
	}
	return func() error {
		if err := sm.Put(context.WithoutCancel(ctx), cur.CredentialsSecretARN, old); err != nil {
			return fmt.Errorf("also failed to restore the previous credentials: %w", err)
		}
		return nil
	}, nil
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
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			g, deleted, err := store.DeleteGateway(ctx, *id, *force)
			if errors.Is(err, registry.ErrGatewayInUse) {
				hooks, lerr := store.Webhooks(ctx, *id)
				if lerr != nil {
					return err
				}
				var ids []string
				for _, h := range hooks {
					ids = append(ids, h.ID)
				}
				return fmt.Errorf("gateway %s is used by %d webhook(s) (%s): delete them first, or pass --force to delete them too",
					*id, len(hooks), strings.Join(ids, ", "))
			}
			if err != nil {
				return notFound(err, "gateway", *id)
			}
			var errs []error
			sm, err := c.Secrets(ctx)
			if err != nil {
				return err
			}
			if g.CredentialsSecretARN != "" {
				errs = append(errs, sm.Delete(ctx, g.CredentialsSecretARN))
			}
			for _, h := range deleted {
				for _, k := range h.SigningKeys {
					errs = append(errs, sm.Delete(ctx, k.SecretARN))
				}
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("gateway %s deleted, but not all of its secrets: %w", *id, err)
			}
			return c.Print(gatewayDeletedOutput(g, deleted), func(w io.Writer) {
				fmt.Fprintf(w, "Gateway %s (%s) deleted, with its credentials secret.\n", g.ID, g.Name)
				for _, h := range deleted {
					fmt.Fprintf(w, "Webhook %s (%s) deleted: deactivate its Business Rule %q on the %s table.\n", h.ID, h.Name, ruleName(h), h.EventType)
				}
			})
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

func writeGateway(w io.Writer, g registry.Gateway, hooks []registry.Webhook) {
	line := func(label string, v any) { fmt.Fprintf(w, "  %-17s %v\n", label+":", v) }
	line("ID", g.ID)
	line("Name", g.Name)
	if g.Description != "" {
		line("Description", g.Description)
	}
	line("Active", g.Active)
	line("Instance URL", g.InstanceURL)
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
	line("Scope", g.ScopeQuery())
	fmt.Fprintf(w, "  %-17s (%s)\n", "", businessrule.Describe(g.ScopeQuery()))
	dedup := fmt.Sprintf("%d minutes", g.DedupWindowMinutes)
	if g.DedupWindowMinutes < 0 {
		dedup = "off"
	}
	line("Dedup window", dedup)
	line("Write-back", onOff(g.WriteBack))
	if g.EscalationGroup != "" {
		line("Escalation group", g.EscalationGroup)
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
