package servicenow_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// countingGate admits up to allow requests and records what each admitted
// request reported.
type countingGate struct {
	mu       sync.Mutex
	allow    int
	admitted int
	done     []*servicenow.Signal
}

var errHeldBack = errors.New("held back")

func (g *countingGate) Admit(context.Context) (func(*servicenow.Signal), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.admitted >= g.allow {
		return nil, errHeldBack
	}
	g.admitted++
	return func(s *servicenow.Signal) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.done = append(g.done, s)
	}, nil
}

// Every HTTP request waits for the gate, retries included, and reports its
// answer once; a request the gate refuses is not sent and not retried.
func TestGateAdmitsEachRequest(t *testing.T) {
	f := newFake(t,
		reply{status: 500, body: errorBody("boom", "")},
		reply{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","sys_mod_count":"3"}}`},
	)
	var w waits
	g := &countingGate{allow: 3}
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithGate(g), servicenow.WithSleep(w.sleep))

	if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if g.admitted != 2 || len(g.done) != 2 {
		t.Fatalf("admitted %d, done %d; want 2 and 2 (a 500, then its retry)", g.admitted, len(g.done))
	}
	if g.done[0] == nil || g.done[0].Status != 500 || g.done[0].Outcome != servicenow.OutcomeFailed {
		t.Errorf("first report = %+v, want the 500", g.done[0])
	}
	if g.done[1] == nil || g.done[1].Status != 200 || g.done[1].Header.Get("Content-Type") == "" {
		t.Errorf("second report = %+v, want the 200 with its header", g.done[1])
	}

	// One admission left: the next call's first request goes, and it is
	// answered; the one after is held back without being sent.
	if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
		t.Fatalf("Get: %v", err)
	}
	sent := len(f.requests())
	_, err := c.Get(context.Background(), "incident", sysID1)
	if !errors.Is(err, errHeldBack) || !servicenow.IsNotAdmitted(err) {
		t.Fatalf("Get past the gate's allowance: %v, want the gate's error", err)
	}
	if got := len(f.requests()); got != sent {
		t.Errorf("a refused request was sent: %d requests, want %d", got, sent)
	}
}

// A request the caller cancels reports nil: it says nothing about the
// instance.
func TestGateCancelledReportsNothing(t *testing.T) {
	f := newFake(t, reply{hold: true})
	g := &countingGate{allow: 5}
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithGate(g))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(f.requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := c.Get(ctx, "incident", sysID1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get: %v, want context.Canceled", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.done) != 1 || g.done[0] != nil {
		t.Errorf("reports = %v, want one nil", g.done)
	}
}
