package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Defaults for a gateway whose settings leave a field zero. They are chosen
// for a small instance, where nobody has told us better:
//
//   - DefaultRatePerHour: ServiceNow's rate-limit rules count requests per
//     user per hour; 3,600 an hour (one a second on average) is well under
//     the rules instances are commonly given for an integration user, and
//     an instance that sends X-RateLimit-Limit lowers it further by itself.
//   - DefaultBurst: 20 lets one SQS batch (10 messages) or a reconciler
//     page be fetched without waiting, and is 0.6 % of the hour, so the
//     burst cannot be what pushes an hour over an instance's rule.
//   - DefaultMaxConcurrency: a node serves about four API threads with a
//     short queue behind them; two leaves half of a one-node instance to
//     its people and other integrations. At a few hundred milliseconds a
//     request, two slots carry several requests a second, more than the
//     default rate needs.
const (
	DefaultRatePerHour    = 3600
	DefaultBurst          = 20
	DefaultMaxConcurrency = 2
)

// Upper bounds on settings: the bucket counts in milliseconds (at most a
// request a millisecond) and slots are attributes of one item.
const (
	MaxRatePerHour    = int(time.Hour / time.Millisecond)
	MaxBurst          = 10000
	MaxMaxConcurrency = 64
)

// Kind is the value of the "kind" attribute of budget items.
const Kind = "BUDGET"

const keyPrefix = "BUDGET#"

// Key is the state table partition key of a gateway's budget item.
func Key(gatewayID string) string { return keyPrefix + gatewayID }

// Settings are a gateway's budget as configured (the gateway's
// --rate-limit N/h and --max-concurrency N). Zero fields take the defaults.
type Settings struct {
	// RatePerHour is the most requests an hour, before anything learned
	// from the instance lowers it.
	RatePerHour int
	// Burst is how many requests may go at once after a quiet spell.
	Burst int
	// MaxConcurrency is how many requests may be in flight at once.
	MaxConcurrency int
}

// WithDefaults returns s with zero (or negative) fields set to the defaults
// and every field held to its upper bound.
func (s Settings) WithDefaults() Settings {
	fill := func(v, def, hi int) int {
		if v <= 0 {
			return def
		}
		return min(v, hi)
	}
	return Settings{
		RatePerHour:    fill(s.RatePerHour, DefaultRatePerHour, MaxRatePerHour),
		Burst:          fill(s.Burst, DefaultBurst, MaxBurst),
		MaxConcurrency: fill(s.MaxConcurrency, DefaultMaxConcurrency, MaxMaxConcurrency),
	}
}

// limits is the bucket in force: the settings lowered by the learned limit.
type limits struct {
	rate     int   // requests an hour
	burst    int   // bucket size
	interval int64 // milliseconds per token, rounded up so the rate is never exceeded
	ceiling  int
}

// effective applies a learned X-RateLimit-Limit (0: none) to settings that
// already have their defaults. If rate×1h + burst would exceed the
// instance's limit, the burst shrinks to at most a tenth of the limit and
// the rate to what is left, so no hour can hold more than the limit.
func effective(s Settings, learned int) limits {
	rate, burst := s.RatePerHour, s.Burst
	if learned > 0 && rate+burst > learned {
		burst = max(1, min(burst, learned/10))
		rate = max(1, min(rate, learned-burst))
	}
	ms := int64(time.Hour / time.Millisecond)
	return limits{rate: rate, burst: burst, interval: (ms + int64(rate) - 1) / int64(rate), ceiling: s.MaxConcurrency}
}

// Errors a DeniedError wraps, to tell with errors.Is why a request must
// wait.
var (
	// ErrPaused: the gateway's circuit is open (429, outage, auth, operator).
	ErrPaused = errors.New("gateway paused")
	// ErrNoTokens: the gateway's request rate is spent for now.
	ErrNoTokens = errors.New("gateway request rate spent")
	// ErrNoSlot: the gateway's concurrency ceiling is reached.
	ErrNoSlot = errors.New("gateway concurrency ceiling reached")
)

var (
	// ErrTooMany: a take asked for more tokens than the burst; it could
	// never be granted.
	ErrTooMany = errors.New("more tokens than the burst")
	// ErrContended: every bounded attempt lost a race to other takers; try
	// again shortly. Rare: concurrent takers of a busy bucket do not race.
	ErrContended = errors.New("budget contended")
)

// DeniedError says that a request must not go now, and when to try again.
type DeniedError struct {
	GatewayID string
	// Err is ErrPaused, ErrNoTokens or ErrNoSlot.
	Err error
	// Until is the earliest time worth trying again: the pause's end, when
	// enough tokens will be there, or (for a slot) a short wait.
	Until time.Time
	// Cause and Reason say why the gateway is paused (ErrPaused only).
	Cause  Cause
	Reason string
}

func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("budget %s: %v until %s", e.GatewayID, e.Err, e.Until.UTC().Format(time.RFC3339))
	if e.Reason != "" {
		msg += " (" + string(e.Cause) + ": " + e.Reason + ")"
	}
	return msg
}

func (e *DeniedError) Unwrap() error { return e.Err }

// RetryAt reports when a request denied with err may try again: the Until
// of a *DeniedError in err's chain.
func RetryAt(err error) (time.Time, bool) {
	var d *DeniedError
	if errors.As(err, &d) {
		return d.Until, true
	}
	return time.Time{}, false
}

// Grant is what Take and Acquire hand out. Pass it to Release (or Done)
// when the request is over; a Grant without a slot needs no release.
type Grant struct {
	GatewayID string
	// Tokens is how many tokens were taken.
	Tokens int
	// Slot is the slot held, -1 for none. Its lease ends at Expires.
	Slot    int
	Expires time.Time
	// Probe is set when the gateway is paused until a probe succeeds and
	// this caller is the one let through to find out: report its outcome
	// (Report or Done), which resumes the gateway on success.
	Probe bool

	lease    string
	settings Settings
}

// Options adjust a Budget; the zero value is right for production.
type Options struct {
	// Now is the clock (default time.Now); tests move a fake one.
	Now func() time.Time
	// Rand returns a float in [0, 1) for the jitter of Trip's pauses
	// (default math/rand/v2).
	Rand func() float64
	// Sleep waits in AcquireWait (default: a timer that honours ctx).
	Sleep func(ctx context.Context, d time.Duration) error
	// SlotLease is how long a slot holds if its holder vanishes (default
	// DefaultSlotLease). It must outlast the longest request a slot covers;
	// the default is twice the functions' 30 s timeout, so no request
	// under a slot outlives its lease, and a crashed holder's slot is back
	// within a minute.
	SlotLease time.Duration
	// ProbeLease is how long the caller let through as a probe has to
	// report before another caller may probe (default DefaultProbeLease).
	ProbeLease time.Duration
	// SlotWait is what a caller denied a slot is told to wait at most
	// (default DefaultSlotWait): slots are released after a request, far
	// sooner than their leases end.
	SlotWait time.Duration
	// MaxPause bounds every pause: a Retry-After, a trip's backoff, the
	// time to an auth probe (default DefaultMaxPause, the retry horizon).
	// The end-to-end tests, which run in compressed time, shorten it.
	MaxPause time.Duration
}

// Defaults of Options.
const (
	DefaultSlotLease  = time.Minute
	DefaultProbeLease = time.Minute
	DefaultSlotWait   = time.Second
	DefaultMaxPause   = 24 * time.Hour
)

// maxAttempts bounds the conditional writes one call makes when it loses
// races; each lost race reads the item the winner left.
const maxAttempts = 5

// Budget takes and gives back gateways' ServiceNow budgets. It is safe for
// concurrent use; make one per process and share it. It remembers the last
// budget item it saw of each gateway to build its next condition, so a
// take on the happy path is one write.
type Budget struct {
	db    *dynamodb.Client
	table string
	opts  Options

	mu    sync.Mutex
	seen  map[string]record
	randM sync.Mutex
}

// New returns a Budget over the named state table.
func New(db *dynamodb.Client, table string, opts Options) *Budget {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = mrand.Float64
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.SlotLease <= 0 {
		opts.SlotLease = DefaultSlotLease
	}
	if opts.ProbeLease <= 0 {
		opts.ProbeLease = DefaultProbeLease
	}
	if opts.SlotWait <= 0 {
		opts.SlotWait = DefaultSlotWait
	}
	if opts.MaxPause <= 0 {
		opts.MaxPause = DefaultMaxPause
	}
	return &Budget{db: db, table: table, opts: opts, seen: map[string]record{}}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Budget) now() time.Time { return b.opts.Now() }

func (b *Budget) rand() float64 {
	b.randM.Lock()
	defer b.randM.Unlock()
	return b.opts.Rand()
}

func (b *Budget) cached(gatewayID string) record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[gatewayID]
}

func (b *Budget) remember(gatewayID string, r record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[gatewayID] = r
}

func newLease() string {
	p := make([]byte, 8)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}
