package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
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
}

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
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("processor configuration: %w", errors.Join(errs...))
	}
	return e, nil
}
