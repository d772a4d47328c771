package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/schema"
)

// EnvCacheTTL optionally sets how long a looked-up route is reused, as a Go
// duration ("5s"); "0" turns the cache off.
const EnvCacheTTL = "SNOWGATE_INGEST_CACHE_TTL"

// DefaultCacheTTL bounds how long a deleted or deactivated webhook may still
// be accepted by a warm function, and how many lookups a burst saves.
const DefaultCacheTTL = 5 * time.Second

// MaxCacheTTL is the longest TTL the configuration accepts: the cache is
// for bursts, not a second registry.
const MaxCacheTTL = time.Minute

// EnvTolerance optionally sets how far a signed request's webhook-timestamp
// may be from now, as a Go duration ("30m").
const EnvTolerance = "SNOWGATE_INGEST_TIMESTAMP_TOLERANCE"

// DefaultTolerance is wider than Standard Webhooks' 5 minutes: a Business
// Rule stamps the request when it runs, and executeAsync hands it to the
// ECC queue, which can send it many minutes later when busy. Replays
// within the window are caught by webhook-id (package replay), so a wider
// window does not let a captured request be used again.
const DefaultTolerance = 15 * time.Minute

// MinTolerance and MaxTolerance bound EnvTolerance: under a minute,
// ordinary ECC queue delays and clock skew would refuse changes; beyond a
// day (the retry horizon) a change is the reconciler's to find.
const (
	MinTolerance = time.Minute
	MaxTolerance = 24 * time.Hour
)

// Env is the ingest function's configuration, read once at cold start.
type Env struct {
	RegistryTable  string
	IntakeQueueURL string
	// StateTable holds the replay markers of signed requests.
	StateTable string
	// CacheTTL is the route cache lifetime; negative disables the cache.
	CacheTTL time.Duration
	// Tolerance is the accepted distance of webhook-timestamp from now.
	Tolerance time.Duration
	// OriginSecret, from schema.EnvOriginSecret, is set when the stack has
	// its edge: requests must carry it in schema.OriginHeader.
	OriginSecret string
}

// EnvFromGetenv reads the configuration through getenv (os.Getenv in main).
// Every missing or malformed setting is named in the error.
func EnvFromGetenv(getenv func(string) string) (Env, error) {
	c := Env{
		RegistryTable:  strings.TrimSpace(getenv(schema.EnvRegistryTable)),
		IntakeQueueURL: strings.TrimSpace(getenv(schema.EnvIntakeQueueURL)),
		StateTable:     strings.TrimSpace(getenv(schema.EnvStateTable)),
		CacheTTL:       DefaultCacheTTL,
		Tolerance:      DefaultTolerance,
		OriginSecret:   strings.TrimSpace(getenv(schema.EnvOriginSecret)),
	}
	var errs []error
	if c.RegistryTable == "" {
		errs = append(errs, fmt.Errorf("%s is not set", schema.EnvRegistryTable))
	}
	if c.IntakeQueueURL == "" {
		errs = append(errs, fmt.Errorf("%s is not set", schema.EnvIntakeQueueURL))
	}
	if c.StateTable == "" {
		errs = append(errs, fmt.Errorf("%s is not set (replay detection)", schema.EnvStateTable))
	}
	if v := strings.TrimSpace(getenv(EnvTolerance)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinTolerance || d > MaxTolerance {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from %s to %s", EnvTolerance, v, MinTolerance, MaxTolerance))
		} else {
			c.Tolerance = d
		}
	}
	if v := strings.TrimSpace(getenv(EnvCacheTTL)); v != "" {
		ttl, err := time.ParseDuration(v)
		switch {
		case err != nil || ttl < 0 || ttl > MaxCacheTTL:
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from 0 to %s", EnvCacheTTL, v, MaxCacheTTL))
		case ttl == 0:
			c.CacheTTL = -1
		default:
			c.CacheTTL = ttl
		}
	}
	if len(errs) > 0 {
		return Env{}, fmt.Errorf("ingest configuration: %w", errors.Join(errs...))
	}
	return c, nil
}
