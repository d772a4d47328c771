package writer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
)

// Env is the writer function's configuration, read once at cold start.
type Env struct {
	RegistryTable   string
	StateTable      string
	ResultsQueueURL string
	// Retry is the pacing of failed messages (redelivery.PolicyFromEnv).
	Retry redelivery.Policy
	// MaxPause caps the budget's pauses (connect.EnvMaxPause); 0: the
	// default.
	MaxPause time.Duration
}

// EnvFromGetenv reads Env; a missing setting is an error naming every
// problem, so the function stops at start with one message.
func EnvFromGetenv(getenv func(string) string) (Env, error) {
	e := Env{
		RegistryTable:   strings.TrimSpace(getenv(schema.EnvRegistryTable)),
		StateTable:      strings.TrimSpace(getenv(schema.EnvStateTable)),
		ResultsQueueURL: strings.TrimSpace(getenv(schema.EnvResultsQueueURL)),
	}
	var errs []error
	for _, s := range []struct{ name, v string }{
		{schema.EnvRegistryTable, e.RegistryTable},
		{schema.EnvStateTable, e.StateTable},
		{schema.EnvResultsQueueURL, e.ResultsQueueURL},
	} {
		if s.v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", s.name))
		}
	}
	retry, err := redelivery.PolicyFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	e.Retry = retry
	maxPause, err := connect.MaxPauseFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	e.MaxPause = maxPause
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("writer configuration: %w", errors.Join(errs...))
	}
	return e, nil
}
