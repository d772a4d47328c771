package cli

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

// completionTimeout bounds the registry read behind an id completion: a
// shell waiting on a Tab press must not hang on an unreachable endpoint.
var completionTimeout = 3 * time.Second

// flagWords are the values of flags that take one of a few words.
var flagWords = map[string][]string{
	"output":      {OutputText, OutputJSON},
	"source-type": {registry.SourceServiceNow},
	"event-type":  registry.EventTypes,
	"table":       registry.EventTypes,
	"auth":        {registry.AuthBasic, registry.AuthOAuthClientCredentials, registry.AuthOAuthPassword},
	"signing":     {registry.SigningSecret, registry.SigningHMAC},
	"queue":       {"intake", "dispatch", "results"},
	"status":      ticketStatuses,
	"job-state":   state.JobStates,
	"mode":        registry.Modes,
	"on-success":  registry.SuccessActions,
	"on-failure":  registry.FailureActions,
	// Not a closed list: the way back to the default, and how a rate is
	// written.
	"rate-limit":      {registration.RateLimitDefault, "1000/h", strconv.Itoa(budget.DefaultRatePerHour) + "/h"},
	"max-concurrency": nil,
}

// completeFlags registers value completions for c's own flags (the root's
// for the global ones): ids from the registry, fixed words for the rest.
func (e Env) completeFlags(c *cobra.Command, path string, g *globalFlags) {
	fs := c.Flags()
	if path == "" {
		fs = c.PersistentFlags()
	}
	for name, words := range flagWords {
		if fs.Lookup(name) != nil {
			_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	if fs.Lookup("gateway-id") != nil {
		_ = c.RegisterFlagCompletionFunc("gateway-id", e.completeIDs(g, listGatewayIDs))
	}
	if fs.Lookup("id") != nil {
		switch {
		case strings.HasPrefix(path, "infra gateway "):
			_ = c.RegisterFlagCompletionFunc("id", e.completeIDs(g, listGatewayIDs))
		case strings.HasPrefix(path, "infra webhook "):
			_ = c.RegisterFlagCompletionFunc("id", e.completeIDs(g, listWebhookIDs))
		}
	}
}

// completeIDs completes ids read from the registry by list, each with its
// name as the description. When the registry cannot be read (no table
// configured, no credentials, an unreachable endpoint) it offers nothing
// and says nothing: a completion is no place for an error message.
func (e Env) completeIDs(g *globalFlags, list func(context.Context, *registry.Store) ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		parent := cmd.Context()
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithTimeout(parent, completionTimeout)
		defer cancel()
		c := &Call{Env: e, global: *g}
		store, err := c.Registry(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		all, err := list(ctx, store)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, s := range all {
			if strings.HasPrefix(s, toComplete) {
				out = append(out, s)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func listGatewayIDs(ctx context.Context, s *registry.Store) ([]cobra.Completion, error) {
	gs, err := s.Gateways(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]cobra.Completion, 0, len(gs))
	for _, g := range gs {
		out = append(out, cobra.CompletionWithDesc(g.ID, g.Name))
	}
	return out, nil
}

func listWebhookIDs(ctx context.Context, s *registry.Store) ([]cobra.Completion, error) {
	ws, err := s.Webhooks(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]cobra.Completion, 0, len(ws))
	for _, w := range ws {
		out = append(out, cobra.CompletionWithDesc(w.ID, w.Name+" ("+w.EventType+")"))
	}
	return out, nil
}
