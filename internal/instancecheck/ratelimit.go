package instancecheck

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rateLimitRecorder is the client's transport: it passes every request on
// and keeps the last X-RateLimit-* headers an answer carried (a rate limit
// rule that applies to the user sends them on every answer).
type rateLimitRecorder struct {
	base http.RoundTripper

	mu   sync.Mutex
	seen bool
	last rateLimitHeaders
}

type rateLimitHeaders struct {
	limit, remaining, rule string
	reset                  time.Time
	exhausted              bool // an answer was 429
}

func (t *rateLimitRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	h := resp.Header
	if limit := h.Get("X-RateLimit-Limit"); limit != "" {
		l := rateLimitHeaders{
			limit: limit, remaining: h.Get("X-RateLimit-Remaining"), rule: h.Get("X-RateLimit-Rule"),
			exhausted: resp.StatusCode == http.StatusTooManyRequests,
		}
		if epoch, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && epoch > 0 {
			l.reset = time.Unix(epoch, 0).UTC()
		}
		t.mu.Lock()
		t.seen, t.last = true, l
		t.mu.Unlock()
	}
	return resp, nil
}

func (t *rateLimitRecorder) observed() (rateLimitHeaders, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, t.seen
}

// rateLimit reports the headroom the last rate-limit headers showed:
// informational, failed only when the limit is used up.
func (r *runner) rateLimit() {
	l, seen := r.limits.observed()
	if !seen {
		r.add(CheckRateLimit, OK, "no X-RateLimit-* headers: no rate limit rule applies to the integration user", "")
		return
	}
	detail := "limit " + l.limit + " requests per window"
	if l.rule != "" {
		detail += " (rule " + l.rule + ")"
	}
	if l.remaining != "" {
		detail += ", " + l.remaining + " remaining"
	}
	if !l.reset.IsZero() {
		detail += fmt.Sprintf(", window resets at %s (in %s)", l.reset.Format(time.RFC3339), max(0, l.reset.Sub(r.now())).Round(time.Second))
	}
	if l.exhausted || l.remaining == "0" {
		r.add(CheckRateLimit, Failed, "exhausted: "+detail,
			"wait for the reset, or raise the limit of the rate limit rule that applies to the integration user "+
				"(System Web Services > REST API Rate Limiting > Rate Limit Rules)")
		return
	}
	r.add(CheckRateLimit, OK, detail, "")
}
