package ingest

import (
	"sync"
	"time"
)

// routeCache keeps recently read routes for a few seconds so that a burst of
// webhooks for one path costs one DynamoDB read. The Handler keeps two: one
// of routes found, and one of paths found unknown (nil routes), with a
// shorter lifetime and a bound of its own, so that a flood on unknown
// paths neither reads the table each time nor pushes out the routes in
// use. It is bounded: when full, a put looks at a few entries and evicts
// the expired among them, or else one of them, so that a put costs the
// same on a full cache under a flood as on an empty one.
type routeCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	r       *route
	fetched time.Time
}

func newRouteCache(ttl time.Duration, max int) *routeCache {
	if ttl <= 0 || max <= 0 {
		return nil // disabled: every request reads the table
	}
	return &routeCache{ttl: ttl, max: max, m: make(map[string]cacheEntry, min(max, 64))}
}

func (c *routeCache) get(path string, now time.Time) (*route, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[path]
	if !ok {
		return nil, false
	}
	if age := now.Sub(e.fetched); age >= c.ttl || age < 0 {
		delete(c.m, path)
		return nil, false
	}
	return e.r, true
}

func (c *routeCache) put(path string, r *route, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[path]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[path] = cacheEntry{r: r, fetched: now}
}

// evictSample is how many entries a put on a full cache looks at.
const evictSample = 8

// evict makes room for one entry: of a sample of entries (map iteration
// starts at a random place), the expired ones go, or else the first.
func (c *routeCache) evict(now time.Time) {
	first, seen := "", 0
	for k, e := range c.m {
		if seen == 0 {
			first = k
		}
		if now.Sub(e.fetched) >= c.ttl {
			delete(c.m, k)
		}
		if seen++; seen == evictSample {
			break
		}
	}
	if len(c.m) >= c.max {
		delete(c.m, first)
	}
}

func (c *routeCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
