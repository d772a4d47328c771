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

// Env is the ingest function's configuration, read once at cold start.
type Env struct {
	RegistryTable  string
	IntakeQueueURL string
	// CacheTTL is the route cache lifetime; negative disables the cache.
	CacheTTL time.Duration
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
		CacheTTL:       DefaultCacheTTL,
		OriginSecret:   strings.TrimSpace(getenv(schema.EnvOriginSecret)),
	}
	var errs []error
	if c.RegistryTable == "" {
		errs = append(errs, fmt.Errorf("%s is not set", schema.EnvRegistryTable))
	}
	if c.IntakeQueueURL == "" {
		errs = append(errs, fmt.Errorf("%s is not set", schema.EnvIntakeQueueURL))
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
