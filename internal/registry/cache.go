package registry

import (
	"context"
	"sync"
	"time"
)

// GatewayReader reads one gateway; *Store is one.
type GatewayReader interface {
	Gateway(ctx context.Context, id string) (Gateway, error)
}

// Cache reuses gateways read from the registry for a while: a batch
// usually holds messages of one gateway, and warm invocations follow each
// other, so the functions read a gateway once per TTL rather than once per
// message. A change to a gateway therefore takes up to TTL to reach a warm
// function. Failed reads are not cached. It is safe for concurrent use.
type Cache struct {
	src GatewayReader
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	items map[string]cachedGateway
}

type cachedGateway struct {
	g  Gateway
	at time.Time
}

// NewCache returns a Cache over src keeping each gateway for ttl, reading
// the time from now (time.Now when nil).
func NewCache(src GatewayReader, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{src: src, ttl: ttl, now: now, items: map[string]cachedGateway{}}
}

// Gateway returns the gateway, from the cache when read less than TTL ago.
func (c *Cache) Gateway(ctx context.Context, id string) (Gateway, error) {
	now := c.now()
	c.mu.Lock()
	item, ok := c.items[id]
	c.mu.Unlock()
	if ok && now.Sub(item.at) < c.ttl {
		return item.g, nil
	}
	g, err := c.src.Gateway(ctx, id)
	if err != nil {
		return Gateway{}, err
	}
	c.mu.Lock()
	c.items[id] = cachedGateway{g: g, at: now}
	c.mu.Unlock()
	return g, nil
}
