package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/webhook"
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

func webhookKeyName(prefix, id string) string { return prefix + "webhooks/" + id }

// newPath returns a webhook path: 24 hex characters from crypto/rand.
func newPath() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

func checkWebhookID(id string) error {
	if id == "" {
		return Usagef("--id is required")
	}
	if !registry.ValidWebhookID(id) {
		return Usagef("--id %q is not a webhook id (whk_<uuid>)", id)
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

// selectGateway returns the gateway a new webhook belongs to: the one named,
// or the only active one.
func selectGateway(ctx context.Context, c *Call, store *registry.Store, id string) (registry.Gateway, error) {
	if id != "" {
		g, err := store.Gateway(ctx, id)
		if err != nil {
			return registry.Gateway{}, notFound(err, "gateway", id)
		}
		if !g.Active {
			return registry.Gateway{}, fmt.Errorf("gateway %s (%s) is inactive: activate it with %s infra gateway update --id %s --active=true", g.ID, g.Name, Name, g.ID)
		}
		return g, nil
	}
	all, err := store.Gateways(ctx)
	if err != nil {
		return registry.Gateway{}, err
	}
	var active []registry.Gateway
	for _, g := range all {
		if g.Active {
			active = append(active, g)
		}
	}
	switch len(active) {
	case 0:
		return registry.Gateway{}, fmt.Errorf("no active gateway: create one with %s infra gateway create, then pass its id with --gateway-id", Name)
	case 1:
		return active[0], nil
	}
	var names []string
	for _, g := range active {
		names = append(names, fmt.Sprintf("%s (%s)", g.ID, g.Name))
	}
	return registry.Gateway{}, Usagef("%d active gateways, choose one with --gateway-id: %s", len(active), strings.Join(names, ", "))
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
			switch {
			case *name == "":
				return Usagef("--name is required")
			case *source == "":
				return Usagef("--source-type is required (%s)", registry.SourceServiceNow)
			case *source != registry.SourceServiceNow:
				return Usagef("--source-type must be %s", registry.SourceServiceNow)
			case *event == "":
				return Usagef("--event-type is required (%s)", strings.Join(registry.EventTypes, " or "))
			case !slices.Contains(registry.EventTypes, *event):
				return Usagef("--event-type must be %s", strings.Join(registry.EventTypes, " or "))
			case *signing != registry.SigningSecret && *signing != registry.SigningHMAC:
				return Usagef("--signing must be %s or %s", registry.SigningSecret, registry.SigningHMAC)
			}
			if *gatewayID != "" {
				if err := checkGatewayID("gateway-id", *gatewayID); err != nil {
					return err
				}
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			// Resolved before anything is written: the URL is part of the output.
			apiURL, err := c.APIURL(ctx)
			if err != nil {
				return err
			}
			g, err := selectGateway(ctx, c, store, *gatewayID)
			if err != nil {
				return err
			}

			w := registry.Webhook{
				ID: "whk_" + uuid.NewString(), Name: *name, SourceType: *source, EventType: *event,
				GatewayID: g.ID, Description: *description, Path: newPath(), Active: true, Signing: *signing,
			}
			var secret, keyARN string
			if *signing == registry.SigningHMAC {
				secret = webhook.NewSigningKey()
				sm, err := c.Secrets(ctx)
				if err != nil {
					return err
				}
				keyARN, err = sm.Create(ctx, webhookKeyName(c.SecretPrefix(), w.ID), secret, "snowgate HMAC signing key of webhook "+w.ID)
				if err != nil {
					return err
				}
				w.SigningKeys = []registry.SigningKeyRef{{SecretARN: keyARN}}
			} else {
				var hash string
				secret, hash = webhook.NewSecret()
				w.SecretHashes = []registry.SecretHash{{SHA256: hash}}
			}
			rule, err := businessrule.Render(ruleParams(w, g, apiURL, secret))
			if err == nil {
				w, err = store.CreateWebhook(ctx, w)
			}
			if err != nil {
				if keyARN != "" {
					err = errors.Join(err, cleanupSecret(ctx, c, keyARN))
				}
				if errors.Is(err, registry.ErrGatewayInactive) {
					return fmt.Errorf("gateway %s was deactivated meanwhile; nothing was created", g.ID)
				}
				return notFound(err, "gateway", g.ID)
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
		Signing: w.Signing, Secret: secret, Condition: g.ScopeQuery(),
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
			if !c.Set("name") && !c.Set("description") && !c.Set("active") {
				return Usagef("nothing to change: give --name, --description or --active")
			}
			if c.Set("name") && *name == "" {
				return Usagef("--name cannot be empty")
			}
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			w, dropped, err := store.UpdateWebhook(ctx, *id, func(w *registry.Webhook) error {
				if c.Set("name") {
					w.Name = *name
				}
				if c.Set("description") {
					w.Description = *description
				}
				if c.Set("active") {
					w.Active = *active
				}
				return nil
			})
			if err != nil {
				return notFound(err, "webhook", *id)
			}
			if err := deleteKeys(ctx, c, dropped); err != nil {
				return err
			}
			g, gerr := store.Gateway(ctx, w.GatewayID)
			v := newView(w, strings.TrimRight(c.known(settingAPIURL), "/"), masked, c.Now())
			return c.Print(webhookOutput(v), func(out io.Writer) {
				fmt.Fprintln(out, "Webhook updated.")
				writeWebhook(out, v, g, gerr == nil)
			})
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
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			apiURL, err := c.APIURL(ctx)
			if err != nil {
				return err
			}
			cur, err := store.Webhook(ctx, *id)
			if err != nil {
				return notFound(err, "webhook", *id)
			}
			g, err := store.Gateway(ctx, cur.GatewayID)
			if err != nil {
				return notFound(err, "gateway", cur.GatewayID)
			}
			var secret, hash, keyARN string
			if cur.Signing == registry.SigningHMAC {
				secret = webhook.NewSigningKey()
				sm, err := c.Secrets(ctx)
				if err != nil {
					return err
				}
				// Keys in grace keep their secrets, so the new one gets its own name.
				name := webhookKeyName(c.SecretPrefix(), cur.ID) + "/" + newPath()[:8]
				if keyARN, err = sm.Create(ctx, name, secret, "snowgate HMAC signing key of webhook "+cur.ID); err != nil {
					return err
				}
			} else {
				secret, hash = webhook.NewSecret()
			}
			now := c.Now()
			w, dropped, err := store.UpdateWebhook(ctx, *id, func(w *registry.Webhook) error {
				if w.Signing != cur.Signing {
					return fmt.Errorf("webhook %s changed its signing mode meanwhile", w.ID)
				}
				if keyARN != "" {
					registry.RotateSigningKey(w, registry.SigningKeyRef{SecretARN: keyARN}, now, *grace)
				} else {
					registry.RotateSecretHash(w, hash, now, *grace)
				}
				return nil
			})
			if err != nil {
				if keyARN != "" {
					err = errors.Join(err, cleanupSecret(ctx, c, keyARN))
				}
				return notFound(err, "webhook", *id)
			}
			if err := deleteKeys(ctx, c, dropped); err != nil {
				return err
			}
			rule, err := businessrule.Render(ruleParams(w, g, apiURL, secret))
			if err != nil {
				return fmt.Errorf("render business rule: %w", err)
			}
			v := newView(w, apiURL, secret, now)
			v.BusinessRule = &rule
			return c.Print(webhookCreatedOutput(v), func(out io.Writer) {
				fmt.Fprintln(out, "Secret rotated!")
				writeCreated(out, v, g)
				if *grace > 0 {
					fmt.Fprintf(out, "  %-11s valid until %s (grace %s): update the Business Rule before then\n", "Old secret:", now.Add(*grace).UTC().Format(time.RFC3339), *grace)
				} else {
					fmt.Fprintf(out, "  %-11s revoked\n", "Old secret:")
				}
				fmt.Fprintln(out)
				fmt.Fprint(out, rule.Text())
			})
		}
	},
}

// deleteKeys deletes the secrets of signing keys the registry no longer
// references.
func deleteKeys(ctx context.Context, c *Call, keys []registry.SigningKeyRef) error {
	if len(keys) == 0 {
		return nil
	}
	sm, err := c.Secrets(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, sm.Delete(ctx, k.SecretARN))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("the webhook was updated, but an expired signing key's secret could not be deleted: %w", err)
	}
	return nil
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
			store, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			w, err := store.DeleteWebhook(ctx, *id)
			if err != nil {
				return notFound(err, "webhook", *id)
			}
			if err := deleteKeys(ctx, c, w.SigningKeys); err != nil {
				return err
			}
			reminder := fmt.Sprintf("Deactivate the Business Rule %q on the %s table in ServiceNow: its calls are now rejected (404).", ruleName(w), w.EventType)
			return c.Print(webhookDeletedJSON{Deleted: w.ID, Reminder: reminder}, func(out io.Writer) {
				fmt.Fprintf(out, "Webhook %s (%s) deleted.\n%s\n", w.ID, w.Name, reminder)
			})
		}
	},
}
