package servicenow

import (
	"context"
	"time"
)

// WithSleep replaces the wait between attempts, so that tests see the
// waits the client chose without spending them.
func WithSleep(f func(context.Context, time.Duration) error) Option {
	return func(c *Client) { c.sleep = f }
}
