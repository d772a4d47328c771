package redelivery_test

import (
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
)

// A capped budget pause caps the wait for a Retry-After with it, never the
// backoff.
func TestMaxPauseCapsRetryAfter(t *testing.T) {
	env := map[string]string{redelivery.EnvBase: "1s", redelivery.EnvCap: "5s", redelivery.EnvHorizon: "2m", schema.EnvMaxPause: "10s"}
	p, err := redelivery.PolicyFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Wait(1, time.Hour); w > 10*time.Second {
		t.Errorf("wait for an hour's Retry-After = %s, want at most the pause cap, 10s", w)
	}
	env[schema.EnvMaxPause] = "2s"
	if p, err = redelivery.PolicyFromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if p.MaxWait != 5*time.Second {
		t.Errorf("MaxWait = %s, want the backoff cap, 5s: a cap below it would spend receives faster than the redrive count allows", p.MaxWait)
	}
}
