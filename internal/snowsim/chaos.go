package snowsim

import (
	"errors"
	"math/rand/v2"
	"sync"
)

// OutboundFaults are failures of the instance's own outbound calls
// (RESTMessageV2: the webhooks), which Faults, being about requests the
// instance serves, cannot express. ServiceNow does not retry a failed
// outbound call, so a dropped one is a lost webhook.
type OutboundFaults struct {
	// Seed seeds the draws (0: a random seed).
	Seed int64
	// DropRate loses a call before it is sent: the script sees the same
	// failure as for an unreachable endpoint, and the receiver sees nothing.
	DropRate float64
}

// ReadFaults make the single-record reads (GET /api/now/table/{table}/{sys_id})
// of some records fail with 500 before they succeed, so a consumer's first
// attempts at a record fail however its retries are tuned, while the
// record stays readable in the end.
type ReadFaults struct {
	// Seed seeds the draws (0: a random seed).
	Seed int64
	// Rate is the share of records picked, drawn once per record at its
	// first single-record read after SetReadFaults.
	Rate float64
	// Failures is how many reads of a picked record fail in a row (1 when
	// zero or less).
	Failures int
}

// errOutboundDropped is what a dropped outbound call fails with.
var errOutboundDropped = errors.New("connection reset: outbound call dropped")

// chaosState holds OutboundFaults and ReadFaults; it has its own lock
// because it is consulted outside the tables' lock, on every outbound call
// and record read.
type chaosState struct {
	mu       sync.Mutex
	outbound OutboundFaults
	outRng   *rand.Rand
	read     ReadFaults
	readRng  *rand.Rand
	// left holds, per "table/sys_id" seen since SetReadFaults, how many of
	// its reads still fail (0 for a record not picked or done failing).
	left   map[string]int
	picked []string
	// ecc is the ECC queue of executeAsync calls.
	ecc    ECCQueue
	eccRng *rand.Rand
}

func seeded(seed int64) *rand.Rand {
	s := uint64(seed)
	if seed == 0 {
		s = rand.Uint64()
	}
	return rand.New(rand.NewPCG(s, s^0xc4a05))
}

// SetOutboundFaults replaces the outbound faults (the zero value turns them
// off) and restarts their random sequence.
func (s *Sim) SetOutboundFaults(f OutboundFaults) {
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	s.chaos.outbound = f
	s.chaos.outRng = seeded(f.Seed)
}

// SetReadFaults replaces the read faults (the zero value turns them off),
// restarts their random sequence and forgets which records were picked.
func (s *Sim) SetReadFaults(f ReadFaults) {
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	s.chaos.read = f
	s.chaos.readRng = seeded(f.Seed)
	s.chaos.left = map[string]int{}
	s.chaos.picked = nil
}

// ReadFaulted returns the records ("table/sys_id") that ReadFaults picked,
// in the order of their first read.
func (s *Sim) ReadFaulted() []string {
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	return append([]string(nil), s.chaos.picked...)
}

// dropOutbound draws whether this outbound call is lost.
func (s *Sim) dropOutbound() bool {
	c := &s.chaos
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outbound.DropRate > 0 && c.outRng != nil && c.outRng.Float64() < c.outbound.DropRate
}

// failRead reports whether this read of the record must fail.
func (s *Sim) failRead(table, sysID string) bool {
	c := &s.chaos
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read.Rate <= 0 || c.readRng == nil {
		return false
	}
	key := table + "/" + sysID
	left, seen := c.left[key]
	if !seen {
		left = 0
		if c.readRng.Float64() < c.read.Rate {
			left = max(c.read.Failures, 1)
			c.picked = append(c.picked, key)
		}
	}
	if left == 0 {
		c.left[key] = 0
		return false
	}
	c.left[key] = left - 1
	return true
}
