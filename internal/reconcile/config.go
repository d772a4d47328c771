package reconcile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/schema"
)

// Optional settings of the reconciler function.
const (
	EnvOverlap        = "SNOWGATE_RECONCILE_OVERLAP"         // duration, default 2m
	EnvPageSize       = "SNOWGATE_RECONCILE_PAGE_SIZE"       // records per ServiceNow page, default 1000
	EnvGatewayTimeout = "SNOWGATE_RECONCILE_GATEWAY_TIMEOUT" // duration, default 60s
	EnvConcurrency    = "SNOWGATE_RECONCILE_CONCURRENCY"     // gateways at once, default 4
)

// Env is the reconciler function's configuration.
type Env struct {
	RegistryTable  string
	StateTable     string
	IntakeQueueURL string
	// MaxPause caps the budget's pauses (connect.EnvMaxPause); 0: the
	// default.
	MaxPause time.Duration
	Config   Config
}

// EnvFromGetenv reads the configuration once, at start; every problem is
// reported, not only the first.
func EnvFromGetenv(getenv func(string) string) (Env, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	e := Env{
		RegistryTable:  get(schema.EnvRegistryTable),
		StateTable:     get(schema.EnvStateTable),
		IntakeQueueURL: get(schema.EnvIntakeQueueURL),
	}
	var errs []error
	for k, v := range map[string]string{
		schema.EnvRegistryTable:  e.RegistryTable,
		schema.EnvStateTable:     e.StateTable,
		schema.EnvIntakeQueueURL: e.IntakeQueueURL,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", k))
		}
	}
	duration := func(k string, dst *time.Duration, lo, hi time.Duration) {
		v := get(k)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from %s to %s", k, v, lo, hi))
			return
		}
		*dst = d
	}
	integer := func(k string, dst *int, lo, hi int) {
		v := get(k)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s=%q: want a number from %d to %d", k, v, lo, hi))
			return
		}
		*dst = n
	}
	duration(EnvOverlap, &e.Config.Overlap, time.Second, 24*time.Hour)
	duration(EnvGatewayTimeout, &e.Config.GatewayTimeout, time.Second, 15*time.Minute)
	integer(EnvPageSize, &e.Config.PageSize, 1, 10000)
	integer(EnvConcurrency, &e.Config.Concurrency, 1, 64)
	maxPause, err := connect.MaxPauseFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	e.MaxPause = maxPause
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("reconciler configuration: %w", errors.Join(errs...))
	}
	e.Config = e.Config.withDefaults()
	return e, nil
}
