package servicenow

import (
	"context"
	"sync"
)

// CallLimit bounds the calls in flight to each instance, whatever gateway
// or goroutine makes them: an instance serves a few API threads per node,
// and a function invocation must not queue more on it than it can take.
// It is safe for concurrent use.
type CallLimit struct {
	n int

	mu    sync.Mutex
	slots map[string]chan struct{} // per instance URL
}

// NewCallLimit returns a CallLimit of n calls in flight per instance.
func NewCallLimit(n int) *CallLimit {
	return &CallLimit{n: n, slots: map[string]chan struct{}{}}
}

// Do runs f once a slot of the instance is free, or returns ctx's error
// when ctx ends first.
func (l *CallLimit) Do(ctx context.Context, instanceURL string, f func() error) error {
	l.mu.Lock()
	s, ok := l.slots[instanceURL]
	if !ok {
		s = make(chan struct{}, l.n)
		l.slots[instanceURL] = s
	}
	l.mu.Unlock()
	select {
	case s <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s }()
	return f()
}
