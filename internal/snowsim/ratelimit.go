package snowsim

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultRateLimitWindow is the window of a ServiceNow rate limit rule: an
// instance counts requests per user per hour.
const DefaultRateLimitWindow = time.Hour

// RateLimitRule is a REST API rate limit rule (sys_rate_limit_rules): each
// user it applies to may make Limit Table API requests per Window. A
// request it applies to is answered with X-RateLimit-Limit and
// X-RateLimit-Reset (the UNIX time the window ends) and X-RateLimit-Rule
// (the sys_id of the rule, RateLimitRuleSysID); one over the limit is
// answered 429 with Retry-After and not served.
type RateLimitRule struct {
	// Name identifies the rule; its sys_id, in X-RateLimit-Rule, derives
	// from it.
	Name string
	// User is the user the rule is for; empty: every user. A rule for a
	// user overrides the rules for every user; of several rules of the same
	// kind the one with the lowest Limit applies.
	User  string
	Limit int
	// Window is the counting period (default DefaultRateLimitWindow; tests
	// use shorter ones). Windows are aligned on the clock: an hourly window
	// resets on the hour.
	Window time.Duration
}

// RateLimitRuleSysID is the sys_id of the rate limit rule named name, the
// value of X-RateLimit-Rule: an instance names the rule that counted a
// request by its sys_id in sys_rate_limit_rules, not by its name.
func RateLimitRuleSysID(name string) string { return stableID("sys_rate_limit_rules:" + name) }

type rateCount struct {
	start time.Time
	n     int
}

type rateLimits struct {
	mu    sync.Mutex
	rules []RateLimitRule
	// fault is Faults.RateLimitPerMinute as a rule for every user.
	fault  *RateLimitRule
	counts map[string]*rateCount // rule name + "/" + user
}

// WithRateLimit adds rate limit rules.
func WithRateLimit(rules ...RateLimitRule) Option {
	return func(s *Sim) { s.limits.rules = append(s.limits.rules, rules...) }
}

// SetRateLimits replaces the rate limit rules (none: no limit) and resets
// their counts.
func (s *Sim) SetRateLimits(rules ...RateLimitRule) {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	s.limits.rules = append([]RateLimitRule(nil), rules...)
	clear(s.limits.counts)
}

// setFaultRateLimit installs Faults.RateLimitPerMinute.
func (s *Sim) setFaultRateLimit(perMinute int) {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	s.limits.fault = nil
	if perMinute > 0 {
		s.limits.fault = &RateLimitRule{Name: "faults: requests per minute", Limit: perMinute, Window: time.Minute}
	}
	for k := range s.limits.counts {
		if len(k) > 7 && k[:7] == "faults:" {
			delete(s.limits.counts, k)
		}
	}
}

// ruleFor picks the rule that applies to user.
func (rl *rateLimits) ruleFor(user string) (RateLimitRule, bool) {
	var best RateLimitRule
	found, forUser := false, false
	for _, r := range rl.rules {
		mine := r.User == user
		if r.User != "" && !mine {
			continue
		}
		switch {
		case !found, mine && !forUser, mine == forUser && r.Limit < best.Limit:
			best, found, forUser = r, true, mine
		}
	}
	if !found && rl.fault != nil {
		return *rl.fault, true
	}
	return best, found
}

// rateLimit counts a request by user against the rule that applies to it,
// sets the X-RateLimit headers, and answers 429 when the user is over the
// limit; it reports whether the request was answered.
func (s *Sim) rateLimit(w http.ResponseWriter, user string) bool {
	rl := &s.limits
	rl.mu.Lock()
	rule, ok := rl.ruleFor(user)
	if !ok {
		rl.mu.Unlock()
		return false
	}
	window := rule.Window
	if window <= 0 {
		window = DefaultRateLimitWindow
	}
	now := s.clock()
	start := now.Truncate(window)
	key := rule.Name + "/" + user
	c := rl.counts[key]
	if c == nil || !c.start.Equal(start) {
		c = &rateCount{start: start}
		rl.counts[key] = c
	}
	over := c.n >= rule.Limit
	if !over {
		c.n++
	}
	rl.mu.Unlock()

	reset := start.Add(window)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(rule.Limit))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Rule", RateLimitRuleSysID(rule.Name))
	if !over {
		return false
	}
	secs := int((reset.Sub(now) + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeError(w, http.StatusTooManyRequests, "Rate limit exceeded",
		"User "+user+" made more than "+strconv.Itoa(rule.Limit)+" requests in the rate limit rule's window")
	return true
}

// APISemaphore is the pool of API threads of the (single) node the
// simulator stands for: Threads requests are served at once, QueueDepth
// more wait in a queue for at most QueueTimeout. A request that finds the
// queue full is answered 429 without Retry-After; one that waited longer
// than QueueTimeout is answered 500. Threads 0 (the default) is no limit:
// see WithAPISemaphore.
type APISemaphore struct {
	Threads      int
	QueueDepth   int
	QueueTimeout time.Duration
}

// DefaultQueueTimeout is how long a request waits for an API thread when
// APISemaphore.QueueTimeout is unset.
const DefaultQueueTimeout = 10 * time.Second

type semaphore struct {
	mu     sync.Mutex
	cfg    APISemaphore
	active int
	queue  []chan struct{}
}

// WithAPISemaphore bounds the API threads. The default is no bound, which
// keeps a test's concurrency (and the injected Latency) from being
// throttled by accident; a real node serves a handful of API threads with
// a queue of a few dozen.
func WithAPISemaphore(c APISemaphore) Option { return func(s *Sim) { s.sem.cfg = c } }

// SetAPISemaphore replaces the API thread bound; requests already waiting
// keep their place.
func (s *Sim) SetAPISemaphore(c APISemaphore) {
	s.sem.mu.Lock()
	defer s.sem.mu.Unlock()
	s.sem.cfg = c
}

// APILoad reports how many requests hold an API thread and how many wait
// in the queue for one.
func (s *Sim) APILoad() (active, queued int) {
	s.sem.mu.Lock()
	defer s.sem.mu.Unlock()
	return s.sem.active, len(s.sem.queue)
}

type semResult int

const (
	semAcquired semResult = iota
	semUnbounded
	semQueueFull
	semTimedOut
)

// acquire takes an API thread, waiting in the queue if need be.
func (sm *semaphore) acquire(ctx context.Context) semResult {
	sm.mu.Lock()
	cfg := sm.cfg
	if cfg.Threads <= 0 {
		sm.mu.Unlock()
		return semUnbounded
	}
	if sm.active < cfg.Threads {
		sm.active++
		sm.mu.Unlock()
		return semAcquired
	}
	if len(sm.queue) >= cfg.QueueDepth {
		sm.mu.Unlock()
		return semQueueFull
	}
	ready := make(chan struct{})
	sm.queue = append(sm.queue, ready)
	sm.mu.Unlock()

	timeout := cfg.QueueTimeout
	if timeout <= 0 {
		timeout = DefaultQueueTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return semAcquired
	case <-t.C:
	case <-ctx.Done():
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for i, q := range sm.queue {
		if q == ready {
			sm.queue = append(sm.queue[:i], sm.queue[i+1:]...)
			return semTimedOut
		}
	}
	// Handed a thread while timing out: take it.
	return semAcquired
}

// release hands the thread to the first request waiting, or frees it.
func (sm *semaphore) release() {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if len(sm.queue) > 0 {
		next := sm.queue[0]
		sm.queue = sm.queue[1:]
		close(next)
		return
	}
	sm.active--
}

// withAPIThread serves an API request on an API thread, or answers it 429
// (queue full) or 500 (queued too long) for want of one.
func (s *Sim) withAPIThread(w http.ResponseWriter, r *http.Request, serve func()) {
	switch s.sem.acquire(r.Context()) {
	case semUnbounded:
		serve()
	case semAcquired:
		defer s.sem.release()
		serve()
	case semQueueFull:
		writeError(w, http.StatusTooManyRequests, "Too Many Requests",
			"All API threads are busy and the request queue is full")
	case semTimedOut:
		writeError(w, http.StatusInternalServerError, "Transaction cancelled",
			"The request waited longer than the queue timeout for an API thread")
	}
}
