package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
)

func init() {
	RegisterGroup("infra webhook", "the URLs ServiceNow Business Rules post to")
	Register(webhookCreate)
	Register(webhookList)
	Register(webhookShow)
	Register(webhookUpdate)
	Register(webhookRotate)
	Register(webhookDelete)
}

// IngestPath is the route of the ingest function under the API base URL.
const IngestPath = "/api/webhooks/ingest/"

// masked stands for a secret in list and show output: secrets are shown
// once, when created or rotated, and are not stored in readable form.
const masked = "********"

func checkWebhookID(id string) error { return usage(registration.CheckWebhookID(id)) }

// checkAPIURL refuses an API URL the Business Rule could not call, before
// anything is written: the rule is part of the output.
func checkAPIURL(apiURL string) error {
	if u, err := url.Parse(apiURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("the API URL %q is not an http(s) URL: check --api-url or %s", apiURL, schema.EnvAPIURL)
	}
	return nil
}

// webhookView is a webhook as printed: its URL, and its secret only where
// it was just made.
type webhookView struct {
	registry.Webhook
	URL          string             `json:"url,omitempty"`
	Secret       string             `json:"secret"`
	Secrets      []secretState      `json:"secrets"`
	BusinessRule *businessrule.Rule `json:"business_rule,omitempty"`
}

// secretState describes one accepted secret or key without revealing it.
type secretState struct {
	Current bool       `json:"current"`
	Expires *time.Time `json:"expires,omitempty"`
}

func newView(w registry.Webhook, apiURL, secret string, now time.Time) webhookView {
	v := webhookView{Webhook: w, Secret: secret, Secrets: []secretState{}}
	if apiURL != "" {
		v.URL = apiURL + IngestPath + w.Path
	}
	add := func(i int, expires time.Time) {
		if registry.Expired(expires, now) {
			return
		}
		s := secretState{Current: i == 0}
		if !expires.IsZero() {
			e := expires
			s.Expires = &e
		}
		v.Secrets = append(v.Secrets, s)
	}
	for i, h := range w.SecretHashes {
		add(i, h.Expires)
	}
	for i, k := range w.SigningKeys {
		add(i, k.Expires)
	}
	return v
}

// createError is what webhook create prints for an operation's error.
func createError(err error, gatewayID string) error {
	var inactive *registration.GatewayInactiveError
	switch {
	case errors.As(err, &inactive):
		g := inactive.Gateway
		return fmt.Errorf("gateway %s (%s) is inactive: activate it with %s infra gateway update --id %s --active=true", g.ID, g.Name, Name, g.ID)
	case errors.Is(err, registration.ErrNoActiveGateway):
		return fmt.Errorf("no active gateway: create one with %s infra gateway create, then pass its id with --gateway-id", Name)
	}
	return opError(err, "gateway", gatewayID)
}

var webhookCreate = Command{
	Path:  "infra webhook create",
	Short: "create a webhook and print its URL, secret and the Business Rule to paste into ServiceNow",
	Usage: "--name <name> --source-type servicenow --event-type incident|change_request [--gateway-id gtw_…] [--description …] [--signing secret|hmac]",
	Long: `--gateway-id may be left out when exactly one gateway is active.

With --signing secret (the default) the Business Rule sends the secret in the
X-Webhook-Secret header; snowgate stores only its hash. With --signing hmac it
signs each call (Standard Webhooks: webhook-id, webhook-timestamp,
webhook-signature) with a key kept in Secrets Manager.

Create the Business Rule in the Global application: switch to Global in the
application picker before you create it, since a new rule takes the
application your session is in. The script is ES5 (Global scripts run in ES5
Standards mode). With hmac it signs with GlideCertificateEncryption, or with
CertificateEncryption in a scoped application, and when it cannot sign it
sends nothing and says why in the system log (gs.error).

The secret is shown once. Lost it? 2501 infra webhook rotate-secret.`,
	Example: `2501 infra webhook create --name prod-incidents --source-type servicenow --event-type incident
2501 infra webhook create --name prod-changes --source-type servicenow --event-type change_request --gateway-id gtw_0b7c… --signing hmac`,
	Flags: func(fs *pflag.FlagSet) Action {
		name := fs.String("name", "", "display name (required)")
		source := fs.String("source-type", "", "where the calls come from: servicenow (required)")
		event := fs.String("event-type", "", "the ServiceNow table: incident or change_request (required)")
		gatewayID := fs.String("gateway-id", "", "the gateway whose records these are (default: the only active gateway)")
		description := fs.String("description", "", "free text")
		signing := fs.String("signing", registry.SigningSecret, "how calls are authenticated: secret or hmac")
		return func(ctx context.Context, c *Call) error {
			in := registration.WebhookInput{
				Name: *name, SourceType: *source, EventType: *event, GatewayID: *gatewayID,
				Description: *description, Signing: *signing,
			}
			if err := in.Validate(); err != nil {
				return usage(err)
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			// Resolved before anything is written: the URL is part of the output.
			apiURL, err := c.APIURL(ctx)
			if err != nil {
				return err
			}
			if err := checkAPIURL(apiURL); err != nil {
				return err
			}
			made, err := ops.CreateWebhook(ctx, in)
			if err != nil {
				return createError(err, *gatewayID)
			}
			w, g, secret := made.Webhook, made.Gateway, made.Secret
			rule, err := businessrule.Render(ruleParams(w, g, apiURL, secret))
			if err != nil {
				return fmt.Errorf("render business rule: %w", err)
			}
			v := newView(w, apiURL, secret, c.Now())
			v.BusinessRule = &rule
			return c.Print(webhookCreatedOutput(v), func(out io.Writer) {
				fmt.Fprintln(out, "Webhook created!")
				writeCreated(out, v, g)
				fmt.Fprintln(out)
				fmt.Fprint(out, rule.Text())
			})
		}
	},
}

func ruleParams(w registry.Webhook, g registry.Gateway, apiURL, secret string) businessrule.Params {
	return businessrule.Params{
		WebhookID: w.ID, WebhookName: w.Name, Table: w.EventType, URL: apiURL + IngestPath + w.Path,
		Signing: w.Signing, Secret: secret, Condition: g.RuleCondition(),
		Instance: businessrule.InstanceName(g.InstanceURL),
	}
}

func writeCreated(out io.Writer, v webhookView, g registry.Gateway) {
	line := func(label string, val any) { fmt.Fprintf(out, "  %-11s %v\n", label+":", val) }
	line("ID", v.ID)
	line("URL", v.URL)
	line("Secret", v.Secret)
	line("Event type", v.EventType)
	line("Gateway", fmt.Sprintf("%s (%s)", g.ID, g.Name))
	if v.Signing == registry.SigningHMAC {
		line("Signing", "hmac (Standard Webhooks signatures; the secret above is the signing key)")
	}
}

var webhookList = Command{
	Path:    "infra webhook list",
	Short:   "list webhooks (secrets masked)",
	Usage:   "[--gateway-id gtw_…]",
	Example: "2501 infra webhook list\n2501 infra webhook list --gateway-id gtw_0b7c… --output json",
	Flags: func(fs *pflag.FlagSet) Action {
		gatewayID := fs.String("gateway-id", "", "only this gateway's webhooks")
		return func(ctx context.Context, c *Call) error {
			if *gatewayID != "" {
				if err := checkGatewayID("gateway-id", *gatewayID); err != nil {
					return err
				}
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			hooks, err := store.Webhooks(ctx, *gatewayID)
			if err != nil {
				return err
			}
			apiURL := strings.TrimRight(c.known(settingAPIURL), "/")
			views := []webhookView{}
			for _, h := range hooks {
				views = append(views, newView(h, apiURL, masked, c.Now()))
			}
			return c.Print(webhookListOutput(views), func(w io.Writer) {
				if len(views) == 0 {
					fmt.Fprintf(w, "No webhooks. Create one with: %s infra webhook create --help\n", Name)
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tEVENT TYPE\tGATEWAY\tACTIVE\tSIGNING\tSECRET\tPATH")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", v.ID, v.Name, v.EventType, v.GatewayID, v.Active, v.Signing, masked, v.Path)
				}
				_ = tw.Flush()
			})
		}
	},
}

var webhookShow = Command{
	Path:    "infra webhook show",
	Short:   "show a webhook (secrets masked)",
	Usage:   "--id <whk_…>",
	Example: "2501 infra webhook show --id whk_5d1a…",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "webhook id (required)")
		return func(ctx context.Context, c *Call) error {
			if err := checkWebhookID(*id); err != nil {
				return err
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			w, err := store.Webhook(ctx, *id)
			if err != nil {
				return notFound(err, "webhook", *id)
			}
			g, gerr := store.Gateway(ctx, w.GatewayID)
			if gerr != nil && !errors.Is(gerr, registry.ErrNotFound) {
				return gerr
			}
			v := newView(w, strings.TrimRight(c.known(settingAPIURL), "/"), masked, c.Now())
			return c.Print(webhookOutput(v), func(out io.Writer) { writeWebhook(out, v, g, gerr == nil) })
		}
	},
}

func writeWebhook(out io.Writer, v webhookView, g registry.Gateway, haveGateway bool) {
	line := func(label string, val any) { fmt.Fprintf(out, "  %-12s %v\n", label+":", val) }
	line("ID", v.ID)
	line("Name", v.Name)
	if v.Description != "" {
		line("Description", v.Description)
	}
	line("Source type", v.SourceType)
	line("Event type", v.EventType)
	switch {
	case !haveGateway:
		line("Gateway", v.GatewayID+" (missing)")
	default:
		line("Gateway", fmt.Sprintf("%s (%s, %s)", g.ID, g.Name, activeWord(g.Active)))
	}
	active := fmt.Sprint(v.Active)
	if v.Active && haveGateway && !g.Active {
		active += " (but its gateway is inactive: calls are rejected)"
	}
	line("Active", active)
	if v.URL != "" {
		line("URL", v.URL)
	} else {
		line("Path", IngestPath+v.Path)
	}
	line("Signing", v.Signing)
	for _, s := range v.Secrets {
		desc := masked + " (current)"
		if !s.Current {
			desc = masked + " (previous)"
		}
		if s.Expires != nil {
			desc += " valid until " + s.Expires.Format(time.RFC3339)
		}
		line("Secret", desc)
	}
	line("Created", v.CreatedAt.Format(time.RFC3339))
	line("Updated", v.UpdatedAt.Format(time.RFC3339))
}

var webhookUpdate = Command{
	Path:    "infra webhook update",
	Short:   "change a webhook's name, description or active flag",
	Usage:   "--id <whk_…> [--name …] [--description …] [--active=true|false]",
	Example: "2501 infra webhook update --id whk_5d1a… --active=false",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "webhook id (required)")
		name := fs.String("name", "", "display name")
		description := fs.String("description", "", "free text")
		active := fs.Bool("active", true, "whether ingest accepts its calls")
		return func(ctx context.Context, c *Call) error {
			if err := checkWebhookID(*id); err != nil {
				return err
			}
			var ch registration.WebhookChanges
			if c.Set("name") {
				ch.Name = name
			}
			if c.Set("description") {
				ch.Description = description
			}
			if c.Set("active") {
				ch.Active = active
			}
			if err := ch.Validate(); err != nil {
				return usage(err)
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			w, err := ops.UpdateWebhook(ctx, *id, ch)
			leftover, err := splitLeftover(err)
			if err != nil {
				return opError(err, "webhook", *id)
			}
			// Updated, perhaps with expired keys' secrets left over: print
			// the webhook, then fail naming them.
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			g, gerr := store.Gateway(ctx, w.GatewayID)
			v := newView(w, strings.TrimRight(c.known(settingAPIURL), "/"), masked, c.Now())
			return errors.Join(c.Print(webhookOutput(v), func(out io.Writer) {
				fmt.Fprintln(out, "Webhook updated.")
				writeWebhook(out, v, g, gerr == nil)
			}), leftover)
		}
	},
}

var webhookRotate = Command{
	Path:  "infra webhook rotate-secret",
	Short: "issue a new secret (and Business Rule script); the old one works until the grace period ends",
	Usage: "--id <whk_…> [--grace 24h]",
	Long: `Paste the new script into the Business Rule within the grace period; calls
with the old secret (or key) are accepted until it ends. --grace 0 revokes
the old secret at once. Secrets whose grace has ended are removed on the
next change to the webhook.`,
	Example: "2501 infra webhook rotate-secret --id whk_5d1a… --grace 24h",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "webhook id (required)")
		grace := fs.Duration("grace", 24*time.Hour, "how long the old secret stays valid (0: revoke now)")
		return func(ctx context.Context, c *Call) error {
			if err := checkWebhookID(*id); err != nil {
				return err
			}
			if *grace < 0 {
				return Usagef("--grace must not be negative")
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			apiURL, err := c.APIURL(ctx)
			if err != nil {
				return err
			}
			if err := checkAPIURL(apiURL); err != nil {
				return err
			}
			issued, err := ops.RotateSecret(ctx, *id, *grace)
			leftover, err := splitLeftover(err)
			if err != nil {
				return opError(err, "webhook", *id)
			}
			// Rotated, perhaps with expired keys' secrets left over: show the
			// new secret (it is shown only now), then fail naming them.
			w, g, secret, now := issued.Webhook, issued.Gateway, issued.Secret, c.Now()
			rule, err := businessrule.Render(ruleParams(w, g, apiURL, secret))
			if err != nil {
				return fmt.Errorf("render business rule: %w", err)
			}
			v := newView(w, apiURL, secret, now)
			v.BusinessRule = &rule
			return errors.Join(c.Print(webhookCreatedOutput(v), func(out io.Writer) {
				fmt.Fprintln(out, "Secret rotated!")
				writeCreated(out, v, g)
				if *grace > 0 {
					fmt.Fprintf(out, "  %-11s valid until %s (grace %s): update the Business Rule before then\n", "Old secret:", now.Add(*grace).UTC().Format(time.RFC3339), *grace)
				} else {
					fmt.Fprintf(out, "  %-11s revoked\n", "Old secret:")
				}
				fmt.Fprintln(out)
				fmt.Fprint(out, rule.Text())
			}), leftover)
		}
	},
}

var webhookDelete = Command{
	Path:    "infra webhook delete",
	Short:   "delete a webhook and its path (one transaction), and its signing keys",
	Usage:   "--id <whk_…>",
	Example: "2501 infra webhook delete --id whk_5d1a…",
	Flags: func(fs *pflag.FlagSet) Action {
		id := fs.String("id", "", "webhook id (required)")
		return func(ctx context.Context, c *Call) error {
			if err := checkWebhookID(*id); err != nil {
				return err
			}
			ops, err := operations(ctx, c)
			if err != nil {
				return err
			}
			w, err := ops.DeleteWebhook(ctx, *id)
			leftover, err := splitLeftover(err)
			if err != nil {
				return opError(err, "webhook", *id)
			}
			// Deleted, perhaps with its keys' secrets left over: print what
			// went, then fail naming them.
			reminder := fmt.Sprintf("Deactivate the Business Rule %q on the %s table in ServiceNow: its calls are now rejected (401, like an unknown webhook).", ruleName(w), w.EventType)
			return errors.Join(c.Print(webhookDeletedJSON{Deleted: w.ID, Reminder: reminder}, func(out io.Writer) {
				fmt.Fprintf(out, "Webhook %s (%s) deleted.\n%s\n", w.ID, w.Name, reminder)
			}), leftover)
		}
	},
}
