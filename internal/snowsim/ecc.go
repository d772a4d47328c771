package snowsim

import (
	"time"
)

// ECCQueue is how RESTMessageV2.executeAsync calls leave the instance: an
// asynchronous call is written to the ECC queue and sent later by a
// worker, so it arrives late, calls made close together can arrive out of
// order, and now and then one is sent twice with the same headers and
// body. Nothing retries a call that failed.
type ECCQueue struct {
	// Seed seeds the jitter and resend draws (0: a random seed).
	Seed int64
	// Delay is how long a call waits in the queue before it is sent.
	Delay time.Duration
	// Jitter adds a uniformly drawn [0, Jitter) to each call's delay; calls
	// made within Jitter of each other can arrive in any order.
	Jitter time.Duration
	// ResendRate is the share of calls sent a second time, after a second
	// delay, with the same headers and body (the response the script sees
	// is the first one's).
	ResendRate float64
}

// DefaultECCDelay is the queue delay of an executeAsync call unless
// WithECCQueue says otherwise. A real instance's ECC worker takes from
// under a second to a few seconds; the default is short so that tests,
// which wait for outbound calls (WaitOutbound) one write after another,
// keep their timing, yet not zero, so that a webhook normally arrives
// after the Table API call that caused it has returned, as on an instance.
const DefaultECCDelay = 10 * time.Millisecond

// WithECCQueue sets how executeAsync calls are delayed, reordered and
// resent (default: DefaultECCDelay, no jitter, no resend).
func WithECCQueue(q ECCQueue) Option {
	return func(s *Sim) {
		s.chaos.ecc = q
		s.chaos.eccRng = seeded(q.Seed)
	}
}

// SetECCQueue replaces the ECC queue behaviour and restarts its draws.
func (s *Sim) SetECCQueue(q ECCQueue) {
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	s.chaos.ecc = q
	s.chaos.eccRng = seeded(q.Seed)
}

// eccPlan draws one call's queue delay and, when it is to be sent twice,
// the delay before the second send (0: sent once).
func (s *Sim) eccPlan() (delay, resend time.Duration) {
	c := &s.chaos
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.ecc
	draw := func() time.Duration {
		d := q.Delay
		if q.Jitter > 0 {
			d += time.Duration(c.eccRng.Int64N(int64(q.Jitter)))
		}
		return max(d, 0)
	}
	delay = draw()
	if q.ResendRate > 0 && c.eccRng.Float64() < q.ResendRate {
		resend = max(draw(), time.Millisecond)
	}
	return delay, resend
}
