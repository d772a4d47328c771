// Package servicenow is a client for the subset of the ServiceNow Table API
// snowgate uses: fetch one record, query records page by page, insert and
// update records and add work notes and comments. It authenticates with
// basic auth or OAuth (client credentials or password grant), retries what
// may clear (429, 5xx, connection failures) within the caller's context
// deadline and honours ServiceNow's rate-limit headers.
//
// A 2xx is trusted only when its body is the API's answer: an HTML page (a
// hibernating developer instance), ServiceNow's error envelope, or a body
// cut short with the error appended (a transaction cancelled by a quota
// rule) is an *AnswerError, never a page. A 403 (ErrForbidden) is final
// and names the right the integration user lacks; a 401 names the
// instance setting that may refuse it. A journal write (WriteJournal) is
// never sent twice on a guess: an unknown outcome is looked up in
// sys_journal_field first.
//
// # Flow control
//
// ServiceNow bounds its callers in two ways, and the client tells them
// apart. A rate limit rule counts the integration user's requests per
// hour: every answer to a request it applies to carries X-RateLimit-Limit,
// X-RateLimit-Reset (a UNIX time) and X-RateLimit-Rule, and the request
// over the limit is a 429 with Retry-After (ErrRateLimited, a pause until
// the window resets). A node serves a few API threads with a short queue:
// a request finding the queue full is a 429 without either header
// (ErrQueueFull, a pause of seconds), one left too long in it a 500. Both
// 429s match ErrThrottled; the *Error carries the Outcome, the headers
// (RateLimit) and RetryAfter.
//
// WithObserver hands the caller a Signal for every request sent, success
// or not: its Outcome (served, rate-limited, queue full, failed, denied),
// the rate-limit headers and the wait the instance asked for, so a budget
// shared by every caller of an instance can learn its limit and open a
// circuit. ServiceNow does not send X-RateLimit-Remaining: such a budget
// counts its own requests against Limit and Reset. By default the client
// waits out a 429 within its attempts when the wait fits its backoff cap;
// WithoutThrottleRetries hands every 429 back at once, for a caller that
// pauses instead of sleeping.
//
// Values are raw (sysparm_display_value=false,
// sysparm_exclude_reference_link=true), so a Record is a map of strings;
// Incident and ChangeRequest are typed views over one.
package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
)

// Defaults of a Client; see the matching options.
const (
	DefaultMaxAttempts      = 4
	DefaultBackoffBase      = 200 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultMaxResponseBytes = 32 << 20
	DefaultUserAgent        = "snowgate"
	// maxErrorBodyBytes bounds what is read of an error response: only
	// error.message and error.detail are kept.
	maxErrorBodyBytes = 64 << 10
)

// Client calls one ServiceNow instance. It is safe for concurrent use; make
// one per instance and reuse it, so that connections and the OAuth token
// are reused.
type Client struct {
	base     *url.URL // instance URL without a trailing slash
	tokenURL string
	auth     authSession
	mode     string

	hc           *http.Client
	maxAttempts  int
	backoffBase  time.Duration
	backoffMax   time.Duration
	maxBody      int64
	userAgent    string
	insecureHTTP bool
	now          func() time.Time
	sleep        func(context.Context, time.Duration) error

	observers       []func(Signal)
	noThrottleRetry bool
	gate            Gate
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc. The client
// uses a copy of hc without a cookie jar (ServiceNow serialises the
// requests of one session, so a shared session cookie would make
// concurrent calls queue behind each other) and that does not follow
// redirects (an instance redirects to a login page, not to an API answer).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithMaxAttempts sets how many times one call is tried, the first attempt
// included (1 disables retries).
func WithMaxAttempts(n int) Option {
	return func(c *Client) { c.maxAttempts = max(1, n) }
}

// WithBackoff sets the retry backoff: a jittered exponential wait starting
// at base and capped at max. max also caps the wait the client accepts from
// Retry-After or X-RateLimit-Reset: when ServiceNow asks for a longer one,
// the call fails at once with an *Error whose RetryAfter says how long, so
// the caller can schedule the retry instead of blocking.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) {
		if base > 0 {
			c.backoffBase = base
		}
		if max >= c.backoffBase {
			c.backoffMax = max
		}
	}
}

// WithUserAgent sets the User-Agent header, which shows in the instance's
// transaction log.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithMaxResponseBytes bounds the size of a response body the client reads;
// a larger one fails with ErrBadResponse.
func WithMaxResponseBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// WithClock sets the clock used for token expiry and for Retry-After dates.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithInsecureHTTP allows a plain http instance URL on a host that is not
// loopback. Without it such a URL is refused, since the credentials would
// travel in clear text.
func WithInsecureHTTP() Option { return func(c *Client) { c.insecureHTTP = true } }

// sharedTransport is the default transport of every Client in the process,
// so that clients of the same instance share idle connections. Timeouts are
// left to the caller's context, except for connection setup.
var sharedTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	// The processor fetches up to 10 records of one instance at a time,
	// and a reconciler may run beside it.
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	return t
})

// New returns a client of the instance at instanceURL (such as
// https://example.service-now.com) authenticating with auth.
func New(instanceURL string, auth Auth, opts ...Option) (*Client, error) {
	if auth == nil {
		return nil, errors.New("servicenow client: no auth")
	}
	u, err := url.Parse(strings.TrimRight(instanceURL, "/"))
	if err != nil {
		// url.Error quotes the URL, which may hold credentials.
		return nil, errors.New("servicenow client: instance URL does not parse")
	}
	c := &Client{
		base:        u,
		mode:        auth.Mode(),
		hc:          &http.Client{Transport: sharedTransport()},
		maxAttempts: DefaultMaxAttempts,
		backoffBase: DefaultBackoffBase,
		backoffMax:  DefaultBackoffMax,
		maxBody:     DefaultMaxResponseBytes,
		userAgent:   DefaultUserAgent,
		now:         time.Now,
		sleep:       sleep,
	}
	for _, o := range opts {
		o(c)
	}
	if err := c.checkBase(); err != nil {
		return nil, fmt.Errorf("servicenow client: instance URL %q: %w", u.Redacted(), err)
	}
	hc := *c.hc
	hc.Jar = nil
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	c.tokenURL = c.base.String() + "/oauth_token.do"
	c.auth = auth.session(c)
	return c, nil
}

func (c *Client) checkBase() error {
	u := c.base
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("scheme must be https")
	case u.Host == "":
		return errors.New("no host")
	case u.User != nil:
		// Credentials belong in the Auth; in the URL they would end up in
		// every error message.
		return errors.New("credentials in the URL")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("query or fragment in the URL")
	case u.Scheme == "http" && !c.insecureHTTP && !isLoopback(u.Hostname()):
		return errors.New("plain http to a host that is not loopback")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// InstanceURL returns the instance URL the client calls.
func (c *Client) InstanceURL() string { return c.base.String() }

// AuthMode returns the registry.Auth* name of the client's authentication.
func (c *Client) AuthMode() string { return c.mode }

// request is one logical call, sent as many times as retries need.
type request struct {
	method      string
	url         string
	body        []byte
	contentType string
	// authorize: add the client's credentials (the token request itself
	// carries them in its body).
	authorize bool
	// idempotent: a failure after the request may have been processed can
	// be retried. When false, only answers that say the request was not
	// processed (429, 503) are retried.
	idempotent bool
	// table and access ("read", "write", "create") name what the call
	// needs, for the message of a 403.
	table, access string
}

type response struct {
	status int
	header http.Header
	body   []byte
	// sig is the exchange's Signal, when observed.
	sig      Signal
	observed bool
	// done reports the request's end to the gate that admitted it.
	done func(*Signal)
}

// do sends r, retrying what may clear, and returns the 2xx response. calls,
// when not nil, counts the HTTP requests sent. Each request's Signal goes
// to the observers once the client knows whether it will retry.
func (c *Client) do(ctx context.Context, r request, calls *int) (response, error) {
	refreshed := false
	for attempt := 1; ; attempt++ {
		res, credential, err := c.send(ctx, r, calls)
		if err == nil {
			c.signal(res, attempt, false)
			return res, nil
		}
		wait, again, refresh := c.retry(ctx, r, err, attempt, credential, refreshed)
		c.signal(res, attempt, again)
		if !again {
			return response{}, err
		}
		if refresh {
			// An expired or revoked token: fetch a new one and try again,
			// once, without counting it as an attempt.
			refreshed = true
			attempt--
			continue
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return response{}, fmt.Errorf("%w (waiting to retry after: %w)", serr, err)
		}
	}
}

// signal completes the Signal of an exchange and hands it to the
// observers and to the gate that admitted the request.
func (c *Client) signal(res response, attempt int, retrying bool) {
	if !res.observed {
		if res.done != nil {
			res.done(nil)
		}
		return
	}
	sig := res.sig
	sig.Attempt, sig.Retrying = attempt, retrying
	if len(c.observers) > 0 {
		c.observe(sig)
	}
	if res.done != nil {
		res.done(&sig)
	}
}

// retry decides what follows a failed attempt: again after wait, again at
// once with a new token (refresh), or not at all.
func (c *Client) retry(ctx context.Context, r request, err error, attempt int, credential string, refreshed bool) (wait time.Duration, again, refresh bool) {
	if ctx.Err() != nil {
		return 0, false, false
	}
	var se *Error
	var te *transportError
	var tk *tokenError
	var ae *AnswerError
	switch {
	case errors.As(err, &tk):
		// The token request has had its own retries.
		return 0, false, false
	case errors.As(err, &ae):
		// An error envelope in a 2xx is retried like a 5xx. A
		// hibernating instance or a transaction that ran into a quota
		// rule would answer the same way again at once: the caller
		// retries later (one layer of retries, not two).
		if !r.idempotent || ae.Kind != ErrFailureAnswer {
			return 0, false, false
		}
		wait = c.backoff(attempt)
	case errors.As(err, &se):
		if se.Status == http.StatusUnauthorized && r.authorize && !refreshed && c.auth.invalidate(credential) {
			return 0, true, true
		}
		if !retryableStatus(se.Status) {
			return 0, false, false
		}
		if se.Throttled() && c.noThrottleRetry {
			return 0, false, false
		}
		// 429 and 503 say the request was not run: safe to send again
		// even when it is not idempotent.
		notRun := se.Status == http.StatusTooManyRequests || se.Status == http.StatusServiceUnavailable
		if !r.idempotent && !notRun {
			return 0, false, false
		}
		if notRun && se.RetryAfter > 0 {
			if se.RetryAfter > c.backoffMax {
				return 0, false, false
			}
			wait = se.RetryAfter
		} else {
			wait = c.backoff(attempt)
		}
	case errors.As(err, &te):
		if !r.idempotent || !IsRetryable(err) {
			return 0, false, false
		}
		wait = c.backoff(attempt)
	default:
		return 0, false, false
	}
	if attempt >= c.maxAttempts {
		return 0, false, false
	}
	// Sleeping past the deadline would only turn a retryable answer
	// into a timeout: hand the answer back now.
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return 0, false, false
	}
	return wait, true, false
}

// send makes one HTTP request and reads its answer. A non-2xx answer is an
// *Error; a failure to send or read is a *transportError. credential
// identifies the credentials used, for a refresh after a 401; it is kept
// out of the Error so that no formatting of an error can show a token.
// The response holds the exchange's Signal, on failure too, whenever the
// request was sent and its end says something about the instance.
func (c *Client) send(ctx context.Context, r request, calls *int) (res response, credential string, err error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return response{}, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.authorize {
		if credential, err = c.auth.authorize(ctx, req); err != nil {
			return response{}, "", &tokenError{err}
		}
	}
	done, err := c.admit(ctx, r)
	if err != nil {
		return response{}, credential, err
	}
	// The gate hears of the request once do knows whether it retries.
	defer func() { res.done = done }()
	if calls != nil {
		*calls++
	}
	// failed is the answer to a request that ended in err: its Signal
	// says what was learnt.
	failed := func(status int, h http.Header, err error) (response, string, error) {
		var res response
		if o, ok := failureOutcome(ctx, err); ok {
			res.sig = Signal{At: c.now(), Method: r.method, Table: r.table, Status: status, Outcome: o, Header: h, RateLimit: rateLimitFrom(status, h), Err: err}
			res.observed = true
		}
		return res, credential, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return failed(0, nil, ctx.Err())
		}
		return failed(0, nil, &transportError{err})
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := c.maxBody
	if !ok {
		limit = maxErrorBodyBytes
	}
	b, err := readBody(resp.Body, limit, resp.ContentLength)
	if err != nil {
		if ctx.Err() != nil {
			return failed(resp.StatusCode, resp.Header, ctx.Err())
		}
		if ok || !errors.Is(err, ErrBadResponse) {
			return failed(resp.StatusCode, resp.Header, err)
		}
		// An oversized error body: the status is what matters.
	}
	now := c.now()
	rl := rateLimitFrom(resp.StatusCode, resp.Header)
	res.sig = Signal{
		At: now, Method: r.method, Table: r.table, Status: resp.StatusCode, Header: resp.Header,
		Outcome:    outcomeOf(resp.StatusCode, resp.Header, r.url == c.tokenURL),
		RateLimit:  rl,
		RetryAfter: retryAfter(resp.StatusCode, resp.Header, rl, now),
	}
	res.observed = true
	if !ok {
		e := errorFrom(resp, b)
		e.Outcome, e.RateLimit = res.sig.Outcome, rl
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			e.RetryAfter = res.sig.RetryAfter
		}
		e.Table, e.Access = r.table, r.access
		e.Hint = c.hint(e, r)
		res.sig.Err = e
		return response{sig: res.sig, observed: true}, credential, e
	}
	// A 2xx is an answer of the API only when its body says so.
	if err := checkAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), b); err != nil {
		res.sig.Outcome, res.sig.Err = OutcomeFailed, err
		return response{sig: res.sig, observed: true}, credential, err
	}
	res.status, res.header, res.body = resp.StatusCode, resp.Header, b
	return res, credential, nil
}

// hint says which instance setting a 401 points at. ServiceNow's own
// message for these is a bare "User Not Authenticated" or an OAuth
// "access_denied", which does not say which gate refused.
func (c *Client) hint(e *Error, r request) string {
	token := r.url == c.tokenURL
	refused := e.Status == http.StatusUnauthorized || e.Status == http.StatusBadRequest
	switch {
	case token && refused && c.mode == registry.AuthOAuthClientCredentials && e.Message == "unauthorized_client":
		return "the OAuth application has no OAuth Application User: set one on its Application Registry " +
			"record (tokens are issued as that user)"
	case token && refused && c.mode == registry.AuthOAuthClientCredentials:
		return "the instance refused the OAuth client credentials grant, which is off by default: " +
			"set the system property glide.oauth.inbound.client.credential.grant_type.enabled to true, " +
			"give the OAuth application (Application Registry) an OAuth Application User, " +
			"and check the client id and secret"
	case token && e.Status == http.StatusUnauthorized:
		return "the instance refused the OAuth password grant: check the client id and secret " +
			"and the integration user's name and password"
	case e.Status == http.StatusUnauthorized && c.mode == registry.AuthBasic && r.authorize:
		return "the instance refused basic auth: check the user name and password; " +
			"instances restrict basic auth for interactive accounts, so make the integration user " +
			"a web service access only user, or review the instance's basic auth restriction"
	}
	return ""
}

// readBody reads at most limit bytes; a longer body is ErrBadResponse.
func readBody(r io.Reader, limit, hint int64) ([]byte, error) {
	var buf bytes.Buffer
	if hint > 0 && hint <= limit {
		buf.Grow(int(hint) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, &transportError{fmt.Errorf("read response: %w", err)}
	}
	if n > limit {
		return buf.Bytes()[:limit], fmt.Errorf("%w: body larger than %d bytes", ErrBadResponse, limit)
	}
	return buf.Bytes(), nil
}

// errorFrom builds the Error of a non-2xx response. It understands the
// Table API's {"error":{"message","detail"}} and OAuth's
// {"error","error_description"}.
func errorFrom(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var doc struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Error) > 0 {
		var table struct{ Message, Detail string }
		var oauth string
		if json.Unmarshal(doc.Error, &table) == nil {
			e.Message, e.Detail = table.Message, table.Detail
		} else if json.Unmarshal(doc.Error, &oauth) == nil {
			e.Message, e.Detail = oauth, doc.ErrorDescription
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// retryAfter reads how long the server asked to wait: on a 429 or 503,
// Retry-After in seconds or as an HTTP date; else, when the rate limit
// rule's window has nothing left (rl.Remaining 0, which a rule's 429
// implies), the time to X-RateLimit-Reset. Zero when neither says.
func retryAfter(status int, h http.Header, rl RateLimit, now time.Time) time.Duration {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
			if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
				if secs > 0 && secs < 1<<31 {
					return time.Duration(secs) * time.Second
				}
				return 0
			}
			if t, err := http.ParseTime(v); err == nil {
				return max(0, t.Sub(now))
			}
		}
	}
	if rl.Remaining == 0 && !rl.Reset.IsZero() {
		return max(0, rl.Reset.Sub(now))
	}
	return 0
}

// backoff is the wait before retry number attempt (1 for the first):
// exponential from backoffBase, capped at backoffMax, with the upper half
// jittered so that clients failing together do not retry together.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.backoffMax
	if attempt-1 < 32 {
		d = min(c.backoffMax, c.backoffBase<<(attempt-1))
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
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
