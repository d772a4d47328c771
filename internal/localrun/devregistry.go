package localrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// demoRegistry is what make dev registered: a gateway for the simulator and
// one webhook per table, with the secrets shown once (to the terminal).
type demoRegistry struct {
	gateway  registry.Gateway
	webhooks []demoWebhook
}

type demoWebhook struct {
	webhook registry.Webhook
	secret  string
}

func (r demoRegistry) webhookIDs() []string {
	ids := make([]string, 0, len(r.webhooks))
	for _, w := range r.webhooks {
		ids = append(ids, w.webhook.ID)
	}
	return ids
}

// demoEscalationGroup is the demo gateway's escalation group, one of the
// simulator's demo groups (snowsim.DemoGroupServiceDesk): a failed or
// partial job hands its ticket to the people at the first line.
const demoEscalationGroup = "Service Desk"

// The demo gateway's ServiceNow budget: the most the budget allows (1,000
// requests a second) and 32 in flight, so that make bench's 100 records a
// second (two requests each: the read and the work note) measure the
// pipeline, not a budget sized for a small instance.
const (
	demoRateLimitPerHour = budget.MaxRatePerHour
	demoMaxConcurrency   = 32
)

// createDemo registers the demo gateway (basic auth against the simulator)
// and its webhooks, as the CLI would, and loads each webhook's Business Rule
// into the simulator when there is an API for it to call (apiURL).
func createDemo(ctx context.Context, reg *registry.Store, sec *secrets.Store, secretPrefix string, sim *snowsim.Sim,
	simURL, user, pass, apiURL string) (demoRegistry, error) {
	// Filters, when the demo has any, resolve on the simulator as on an
	// instance.
	ops := registration.New(reg, sec, registration.WithSecretPrefix(secretPrefix),
		registration.WithDirectory(registration.ConnectInstance()))
	gw, err := ops.CreateGateway(ctx, registration.GatewayInput{
		Name: "demo", Description: "make dev: the local ServiceNow simulator",
		InstanceURL: simURL, Auth: registry.AuthBasic, Username: user, Password: pass,
		DedupWindowMinutes: registry.DefaultDedupWindowMinutes, WriteBack: true, Active: true,
		EscalationGroup: demoEscalationGroup,
		// The simulator on this machine takes far more than the default
		// budget of a small instance; `gateway update --rate-limit` shows
		// the budget at work.
		RateLimitPerHour: demoRateLimitPerHour, MaxConcurrency: demoMaxConcurrency,
	})
	if err != nil {
		return demoRegistry{}, fmt.Errorf("create demo gateway: %w", err)
	}
	demo := demoRegistry{gateway: gw}
	for _, table := range registry.EventTypes {
		made, err := ops.CreateWebhook(ctx, registration.WebhookInput{
			Name: "demo-" + strings.ReplaceAll(table, "_", "-"), SourceType: registry.SourceServiceNow,
			EventType: table, GatewayID: gw.ID, Description: "make dev demo webhook", Signing: registry.SigningSecret,
		})
		if err != nil {
			return demoRegistry{}, fmt.Errorf("create demo webhook for %s: %w", table, err)
		}
		w, secret := made.Webhook, made.Secret
		demo.webhooks = append(demo.webhooks, demoWebhook{webhook: w, secret: secret})
		if apiURL == "" {
			continue
		}
		rule, err := businessrule.Render(businessrule.Params{
			WebhookID: w.ID, WebhookName: w.Name, Table: table,
			URL:     IngestURL(apiURL, w.Path),
			Signing: registry.SigningSecret, Secret: secret, Condition: gw.RuleCondition(),
		})
		if err != nil {
			return demoRegistry{}, fmt.Errorf("render business rule of %s: %w", w.ID, err)
		}
		// In Global, as the printed instructions say: gateway check looks
		// for the rule there.
		if err := sim.AddBusinessRule(snowsim.Rule{
			Name: rule.Name, Table: rule.Table, Condition: rule.Condition, Script: rule.Script,
			Insert: rule.Insert, Update: rule.Update, Scope: snowsim.GlobalScope,
		}); err != nil {
			return demoRegistry{}, fmt.Errorf("load business rule of %s: %w", w.ID, err)
		}
	}
	return demo, nil
}

// IngestURL is a webhook's URL under the API's base URL.
func IngestURL(apiURL, path string) string {
	return strings.TrimRight(apiURL, "/") + "/api/webhooks/ingest/" + path
}

// watchWebhooks notices webhooks created while make dev runs (with the CLI)
// and tells how to load their Business Rule into the simulator. The rule
// embeds the webhook's secret, which only its creator saw, so make dev
// cannot load it itself.
func watchWebhooks(ctx context.Context, reg *registry.Store, known []string, log *slog.Logger, out io.Writer, simURL string) {
	seen := map[string]bool{}
	for _, id := range known {
		seen[id] = true
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gws, err := reg.Gateways(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("list gateways", "error", err)
			}
			continue
		}
		for _, g := range gws {
			hooks, err := reg.Webhooks(ctx, g.ID)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("list webhooks", "gateway", g.ID, "error", err)
				}
				continue
			}
			for _, w := range hooks {
				if seen[w.ID] {
					continue
				}
				seen[w.ID] = true
				fmt.Fprintf(out, `
New webhook %s (%s, table %s). The simulator calls it once its Business
Rule is loaded, as an administrator pastes it into ServiceNow. With the JSON
the CLI printed (--output json) saved as hook.json:
  curl -X POST '%s/sim/business_rules' -H 'Content-Type: application/json' --data-binary @hook.json
or with the printed script saved as rule.js:
  curl -X POST '%s/sim/business_rules?table=%s&name=%s' --data-binary @rule.js
`, w.ID, w.Name, w.EventType, simURL, simURL, w.EventType, w.ID)
			}
		}
	}
}

func (d *dev) printSummary() {
	out := d.c.Out
	fmt.Fprintf(out, "\nsnowgate runs locally.\n\n")
	if d.emu != nil {
		fmt.Fprintf(out, "  AWS emulator    %s (embedded kumo)\n", d.endpoint)
		fmt.Fprintf(out, "  HTTP API        %s  (route %s)\n", d.apiURL, IngestRoute)
		for _, s := range functionSettings {
			what := map[string]string{
				Ingest:     fmt.Sprintf("behind the HTTP API; %d environments", d.c.environments(Ingest)),
				Reconciler: "every " + orInterval(d.c.Interval).String(),
			}[s.name]
			for _, es := range eventSources {
				if es.function == s.name {
					what = fmt.Sprintf("SQS batches from the %s queue, up to %d at once; %d environments",
						es.queue, es.batches(d.c), d.c.environments(s.name))
				}
			}
			if !slices.Contains(d.running, s.name) {
				what = "NOT BUILT: make build-local once functions/" + s.name + " exists"
			}
			fmt.Fprintf(out, "  function        %-26s %s\n", d.c.Prefix+s.name, what)
		}
	} else {
		fmt.Fprintf(out, "  AWS emulator    %s (AWS_ENDPOINT_URL)\n", d.endpoint)
		fmt.Fprintf(out, "  functions       NOT running: the Lambda Runtime API and HTTP API parts need the\n"+
			"                  embedded emulator; unset AWS_ENDPOINT_URL for the whole system\n")
	}
	switch d.c.engine() {
	case EngineDemo:
		delay := d.c.EngineDelay
		if delay <= 0 {
			delay = demoengine.DefaultDelay
		}
		fmt.Fprintf(out, "  engine          demo: answers job events on the results queue; a job succeeds after %s,\n"+
			"                  or fails, partly succeeds or stays open with %s, %s or %s in its short description\n",
			delay, demoengine.MarkerFail, demoengine.MarkerPartial, demoengine.MarkerHold)
	default:
		fmt.Fprintf(out, "  engine          off: job events wait on $%s; send results to $%s\n",
			schema.EnvDispatchQueueURL, schema.EnvResultsQueueURL)
	}
	fmt.Fprintf(out, "  ServiceNow      %s  (user %s, password in %s)\n", d.simURL, d.simUser, d.c.EnvFile)
	fmt.Fprintf(out, "  demo gateway    %s  (escalates to %s)\n", d.demo.gateway.ID, demoEscalationGroup)
	for _, w := range d.demo.webhooks {
		fmt.Fprintf(out, "  webhook         %s  %-14s path %s  secret %s\n", w.webhook.ID, w.webhook.EventType, w.webhook.Path, w.secret)
	}
	fmt.Fprintf(out, "\nTry, in another terminal:\n\n")
	fmt.Fprintf(out, "  source %s\n", d.c.EnvFile)
	fmt.Fprintf(out, "  make demo                     # changes in the simulator, answered by the engine, written back\n")
	fmt.Fprintf(out, "  bin/2501 infra ticket list    # what happened to each record\n")
	fmt.Fprintf(out, "  bin/2501 infra webhook list   # the demo webhooks; create your own with bin/2501 infra webhook create\n")
	if d.apiURL != "" && len(d.demo.webhooks) > 0 {
		w := d.demo.webhooks[0]
		sysID := "<sys_id>"
		if recs := d.sim.Records(w.webhook.EventType); len(recs) > 0 {
			sysID = recs[0]["sys_id"]
		}
		fmt.Fprintf(out, "  curl -i -X POST %s \\\n      -H 'Content-Type: application/json' -H 'X-Webhook-Secret: %s' \\\n      -d '{\"sys_id\":\"%s\"}'\n",
			IngestURL(d.apiURL, w.webhook.Path), w.secret, sysID)
	}
	fmt.Fprintf(out, "  curl -X POST \"$%s/sim/outbound?enabled=false\"   # lose webhooks; the reconciler catches up\n", EnvSimURL)
	fmt.Fprintf(out, "\nCtrl-C stops everything.\n\n")
}

func orInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultInterval
	}
	return d
}

func listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = selfHost + ":0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
