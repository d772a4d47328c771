package budget

import (
	"context"
	"time"
)

// Status is a gateway's budget as `gateway show` prints it. The JSON keys
// are the ones the CLI's --output json documents.
type Status struct {
	GatewayID string `json:"gateway_id"`
	// ConfiguredRate is the settings' requests per hour (defaults applied).
	ConfiguredRate int `json:"configured_rate_per_hour"`
	// LearnedLimit is the instance's X-RateLimit-Limit last seen, 0 if none.
	LearnedLimit int       `json:"learned_limit_per_hour,omitempty"`
	LearnedAt    time.Time `json:"learned_at,omitzero"`
	// Rate and Burst are the bucket in force.
	Rate  int `json:"rate_per_hour"`
	Burst int `json:"burst"`
	// Tokens is what could be taken now (0 while tokens are owed).
	Tokens float64 `json:"tokens"`
	// MaxConcurrency is the ceiling; SlotsInUse the leases live now.
	MaxConcurrency int `json:"max_concurrency"`
	SlotsInUse     int `json:"slots_in_use"`
	// Paused is set while requests are held back; PausedUntil is the end
	// of the pause, or the next probe when ProbeRequired.
	Paused        bool      `json:"paused"`
	PausedUntil   time.Time `json:"paused_until,omitzero"`
	PausedAt      time.Time `json:"paused_at,omitzero"`
	PauseCause    Cause     `json:"pause_cause,omitempty"`
	PauseReason   string    `json:"pause_reason,omitempty"`
	ProbeRequired bool      `json:"probe_required,omitempty"`
	// Failures is the count of consecutive failures Trip has seen.
	Failures int `json:"consecutive_failures"`
}

// Status reads the gateway's budget now (one strongly consistent read).
// A gateway that never drew on its budget shows a full bucket.
func (b *Budget) Status(ctx context.Context, gatewayID string, s Settings) (Status, error) {
	rec, err := b.read(ctx, gatewayID)
	if err != nil {
		return Status{}, err
	}
	s = s.WithDefaults()
	lim := effective(s, rec.learned)
	now := b.now()
	ms := now.UnixMilli()
	st := Status{
		GatewayID:      gatewayID,
		ConfiguredRate: s.RatePerHour,
		LearnedLimit:   rec.learned,
		Rate:           lim.rate,
		Burst:          lim.burst,
		Tokens:         float64(lim.burst),
		MaxConcurrency: lim.ceiling,
		SlotsInUse:     rec.liveSlots(ms),
		Paused:         rec.paused(ms),
		Failures:       rec.failures,
	}
	if rec.learnedAt > 0 {
		st.LearnedAt = msTime(rec.learnedAt)
	}
	if debt := rec.fullAt - ms; debt > 0 {
		burst, iv := lim.burst, lim.interval
		if rec.interval > 0 { // as the item counts it, until a take converts it
			burst, iv = rec.burst, rec.interval
		}
		st.Tokens = max(0, float64(burst)-float64(debt)/float64(iv))
	}
	if st.Paused {
		st.PausedUntil = msTime(rec.pausedUntil)
		st.PauseCause, st.PauseReason, st.ProbeRequired = rec.cause, rec.reason, rec.probe
		if rec.pausedAt > 0 {
			st.PausedAt = msTime(rec.pausedAt)
		}
	}
	return st, nil
}
