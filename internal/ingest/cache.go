package ingest

import (
	"sync"
	"time"
)

// routeCache keeps recently read routes for a few seconds so that a burst of
// webhooks for one path costs one DynamoDB read. Only hits are cached: a
// path registered a moment ago is found at once. It is bounded: when full,
// expired entries go first, then arbitrary ones.
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
		for k, e := range c.m {
			if now.Sub(e.fetched) >= c.ttl {
				delete(c.m, k)
			}
		}
		// Map iteration order is random, so this evicts an arbitrary entry.
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[path] = cacheEntry{r: r, fetched: now}
}

func (c *routeCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
