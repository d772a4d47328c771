package snowsim

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Faults are failures injected into requests, the OAuth token endpoint
// included. Rates are probabilities in
// [0, 1] drawn from a generator seeded with Seed, so a sequential test sees
// the same faults on every run (Seed 0 picks a random seed).
type Faults struct {
	Seed int64
	// Latency delays every request before it is handled.
	Latency time.Duration
	// ErrorRate answers with ErrorStatus (default 500) and ServiceNow's
	// error body.
	ErrorRate   float64
	ErrorStatus int
	// Status429Rate answers 429 with Retry-After: RetryAfter (default 1s).
	Status429Rate float64
	RetryAfter    time.Duration
	// DropRate closes the connection without a response.
	DropRate float64
	// RateLimitPerMinute is a rate limit rule for every user with a
	// one-minute window (0: none); a RateLimitRule set with WithRateLimit
	// or SetRateLimits takes precedence.
	RateLimitPerMinute int
	// Hidden records ("table/sys_id") read as 404 and are trimmed from query
	// results after the page is cut, as ServiceNow's ACLs do: a page may be
	// shorter than sysparm_limit while a next link still exists.
	Hidden map[string]bool
	// DuplicateRate makes a Business Rule run its script twice.
	DuplicateRate float64
	// QuotaCancelRate makes a query (GET of a table) be cancelled by a
	// transaction quota rule while its answer was being written: status 200
	// with the normal headers, the body cut part-way and an error object
	// appended to it.
	QuotaCancelRate float64
}

type faultState struct {
	f   Faults
	rng *rand.Rand
}

func (fs *faultState) reset(f Faults) {
	seed := uint64(f.Seed)
	if f.Seed == 0 {
		seed = rand.Uint64()
	}
	f.Hidden = maps.Clone(f.Hidden) // the caller may keep editing its map
	fs.f = f
	fs.rng = rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// roll draws against rate. It draws only for a rate above 0, so fault
// types left unset do not shift the sequence of the others.
func (fs *faultState) roll(rate float64) bool {
	return rate > 0 && fs.rng.Float64() < rate
}

// SetFaults replaces the injected faults (the zero Faults turns them off)
// and restarts their random sequence and rate-limit window.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	s.faults.reset(f)
	s.faultMu.Unlock()
	s.setFaultRateLimit(f.RateLimitPerMinute)
}

func (s *Sim) hidden(table, sysID string) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults.f.Hidden[table+"/"+sysID]
}

func (s *Sim) quotaCancel() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults.roll(s.faults.f.QuotaCancelRate)
}

// writeQuotaCancelled writes a query answer as a transaction cancelled by a
// quota rule does: 200, the JSON body cut off halfway, then the error and
// status members a complete error envelope would carry.
func writeQuotaCancelled(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v) // records of strings always marshal
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body[:len(body)/2])
	_, _ = w.Write([]byte(`"error":{"message":"Transaction cancelled: maximum execution time exceeded",` +
		`"detail":"A transaction quota rule cancelled the request while its answer was being written"},"status":"failure"}`))
}

func (s *Sim) duplicateRule() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults.roll(s.faults.f.DuplicateRate)
}

type faultAction int

const (
	faultNone faultAction = iota
	faultDrop
	fault429
	faultError
)

// decideFault picks this request's fault under the lock, so the draws keep
// their order; the slow parts (sleeping, writing) happen outside it.
func (s *Sim) decideFault() (faultAction, Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	fs := &s.faults
	f := fs.f
	switch {
	case fs.roll(f.DropRate):
		return faultDrop, f
	case fs.roll(f.Status429Rate):
		return fault429, f
	case fs.roll(f.ErrorRate):
		return faultError, f
	}
	return faultNone, f
}

// injectFault applies a fault to the request; it reports whether the
// request was answered (or dropped) and must not be handled.
func (s *Sim) injectFault(w *statusWriter, r *http.Request) bool {
	action, f := s.decideFault()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch action {
	case faultDrop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			w.record(0)
			_ = conn.Close()
			return true
		}
		// HTTP/2 cannot be hijacked: the closest is a gateway failure.
		writeError(w, http.StatusBadGateway, "Connection dropped", nil)
	case fault429:
		retry := f.RetryAfter
		if retry <= 0 {
			retry = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "Too Many Requests", "The instance is throttling requests")
	case faultError:
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusInternalServerError
		}
		writeError(w, status, "Internal server error", "Injected failure")
	default:
		return false
	}
	return true
}
