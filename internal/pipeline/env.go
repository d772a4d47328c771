package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// Env is the processor function's configuration, read once at cold start.
type Env struct {
	RegistryTable    string
	StateTable       string
	DispatchQueueURL string
	// IntakeQueueURL is the queue the processor consumes, whose failed
	// messages it paces (Config.QueueURL).
	IntakeQueueURL string
	// MaxPause caps the budget's pauses (connect.EnvMaxPause); 0: the
	// default.
	MaxPause time.Duration
	// Retry is the pacing of failed messages (redelivery.PolicyFromEnv).
	Retry redelivery.Policy
	// TicketTTL is how long a final ticket is kept after its last
	// decision (EnvTicketTTL; state.Store.WithTicketTTL); 0 keeps them all.
	TicketTTL time.Duration
}

// EnvTicketTTL sets how long a final ticket is kept (a Go duration, at
// least MinTicketTTL, or 0 to keep every ticket); state.DefaultTicketTTL
// when unset.
const EnvTicketTTL = "SNOWGATE_TICKET_TTL"

// MinTicketTTL is the shortest ticket TTL: jobs of an expired ticket are
// told from a later one's by their age (lifeMargin), and an operator needs
// a failed ticket long enough to see it.
const MinTicketTTL = 24 * time.Hour

// EnvFromGetenv reads Env; a missing or malformed setting is an error
// naming every problem, so the function stops at start with one message.
func EnvFromGetenv(getenv func(string) string) (Env, error) {
	e := Env{
		RegistryTable:    strings.TrimSpace(getenv(schema.EnvRegistryTable)),
		StateTable:       strings.TrimSpace(getenv(schema.EnvStateTable)),
		DispatchQueueURL: strings.TrimSpace(getenv(schema.EnvDispatchQueueURL)),
		IntakeQueueURL:   strings.TrimSpace(getenv(schema.EnvIntakeQueueURL)),
	}
	var errs []error
	for name, v := range map[string]string{
		schema.EnvRegistryTable:    e.RegistryTable,
		schema.EnvStateTable:       e.StateTable,
		schema.EnvDispatchQueueURL: e.DispatchQueueURL,
		schema.EnvIntakeQueueURL:   e.IntakeQueueURL,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	maxPause, err := connect.MaxPauseFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	e.MaxPause = maxPause
	retry, err := redelivery.PolicyFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	e.Retry = retry
	e.TicketTTL = state.DefaultTicketTTL
	if v := strings.TrimSpace(getenv(EnvTicketTTL)); v != "" {
		ttl, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", EnvTicketTTL, err))
		case ttl != 0 && ttl < MinTicketTTL:
			errs = append(errs, fmt.Errorf("%s is %s: 0 (keep every ticket) or at least %s", EnvTicketTTL, ttl, MinTicketTTL))
		default:
			e.TicketTTL = ttl
		}
	}
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("processor configuration: %w", errors.Join(errs...))
	}
	return e, nil
}
