// Package ingest is the public edge of snowgate: it accepts a ServiceNow
// webhook (POST /api/webhooks/ingest/{path}), verifies it against the
// registration for that path, validates the body and puts one message on
// the intake queue.
//
// It fails closed. Every authentication failure (unknown path, inactive
// webhook or gateway, missing or wrong secret or signature, a registration
// that cannot be verified, a rule running on another instance than its
// gateway's) gets the very same 401 response, so the edge is no oracle for
// which paths exist. Cheap checks run before expensive ones: no table read
// for a malformed path or one found unknown a moment ago, no key fetch for
// a stale or unsigned request, no body parse before the caller is
// authenticated.
//
// A signed request (HMAC) is remembered by its webhook-id for the
// timestamp tolerance (package replay), and a repeat is answered 200
// "duplicate" without a message. A static secret carries no message id:
// replay protection needs HMAC signing. Once a caller is authenticated, a
// store failure in the checks that follow (the replay store, the
// gateway's instance) does not drop the change, which ServiceNow would not
// send again: it is enqueued, logged as an error and counted (see
// Handler.remember). Only a failed enqueue is a 503.
//
// The webhook path is the URL's secret part: no log line carries it.
//
// The core is Handle(ctx, Request) Response; ServeHTTP and HandleAPIGateway
// adapt it to net/http and to payload 2.0 events (an API Gateway HTTP API
// route or a Lambda function URL).
package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/metrics"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

// MaxBody is the largest body accepted (16 KiB): a Business Rule sends a
// sys_id and a few hints, never the record.
const MaxBody = 16 << 10

// DefaultCacheSize bounds the route cache.
const DefaultCacheSize = 1024

// DefaultUnknownTTL is how long a path found unknown is answered without a
// table read: short, so that a webhook created a moment after a probe of
// its (random) path is not refused for long, yet long enough that a flood
// on a path costs one read per environment every couple of seconds.
const DefaultUnknownTTL = 2 * time.Second

// DefaultUnknownCacheSize bounds the unknown paths remembered, apart from
// the known ones, so a flood of random paths cannot push out the routes in
// use.
const DefaultUnknownCacheSize = 4096

// MaxMessageID bounds webhook-id: a Business Rule sends "msg_" and a
// 32-character GUID, and the id is part of a DynamoDB key.
const MaxMessageID = 256

// PathPrefix is the URL prefix of the ingest route; the webhook path follows.
const PathPrefix = "/api/webhooks/ingest/"

// Registry looks up the registration for a webhook path and the gateway
// it belongs to (for the gateway's instance); an unknown path or gateway
// is registry.ErrNotFound.
type Registry interface {
	Route(ctx context.Context, path string) (registry.Route, error)
	Gateway(ctx context.Context, id string) (registry.Gateway, error)
}

// Secrets returns a secret's value (an HMAC signing key); a missing secret
// is secrets.ErrNotFound.
type Secrets interface {
	Get(ctx context.Context, arn string) (string, error)
}

// Enqueuer puts an intake message on the intake queue.
type Enqueuer interface {
	Send(ctx context.Context, m queue.IntakeMessage) error
}

// Replays remembers signed messages by webhook-id until they expire;
// Remember reports false for a message remembered before.
type Replays interface {
	Remember(ctx context.Context, webhookID, messageID string, now, expires time.Time) (bool, error)
	Forget(ctx context.Context, webhookID, messageID string, now time.Time) error
}

// Metrics writes an EMF line with several dimension sets.
type Metrics interface {
	PutSets(dimensions map[string]string, sets [][]string, properties map[string]string, ms ...metrics.Metric) error
}

var (
	_ Registry = (*registry.Store)(nil)
	_ Secrets  = (*secrets.Store)(nil)
	_ Enqueuer = (*queue.Sender)(nil)
	_ Replays  = (*replay.Store)(nil)
	_ Metrics  = (*metrics.Emitter)(nil)
)

// Options tune a Handler; the zero value is the production setting, but for
// Replays and Metrics, which the function sets.
type Options struct {
	// CacheTTL is how long a route is reused: 0 means DefaultCacheTTL,
	// negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the cache; 0 means DefaultCacheSize.
	CacheSize int
	// UnknownTTL is how long a path found unknown is answered without a
	// read: 0 means DefaultUnknownTTL, never longer than CacheTTL;
	// negative, or the cache disabled, turns it off.
	UnknownTTL time.Duration
	// Tolerance is how old (or how far ahead) a signed request's timestamp
	// may be; 0 means DefaultTolerance.
	Tolerance time.Duration
	// Replays remembers signed messages; nil turns replay detection off
	// (the function always sets it).
	Replays Replays
	// Metrics receives the counts of rejected requests; nil drops them.
	Metrics Metrics
	// Logger receives one line per request; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OriginSecret, when set, is required in schema.OriginHeader: the
	// value the stack's CloudFront edge adds, so that the API's own
	// endpoint, bypassing the edge and its WAF, answers 401 to all.
	OriginSecret string
}

// Handler verifies webhooks and enqueues them. It is safe for concurrent use.
type Handler struct {
	routes    Registry
	gateways  *registry.Cache
	secrets   Secrets
	queue     Enqueuer
	replays   Replays
	metrics   Metrics
	cache     *routeCache
	unknown   *routeCache // paths found unknown, with nil routes
	tolerance time.Duration
	log       *slog.Logger
	now       func() time.Time
	// origin is the SHA-256 of Options.OriginSecret, nil when unset.
	origin []byte
}

// New returns a Handler reading routes and gateways, signing keys and
// writing to q.
func New(routes Registry, keys Secrets, q Enqueuer, opts Options) *Handler {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.UnknownTTL == 0 {
		opts.UnknownTTL = min(DefaultUnknownTTL, opts.CacheTTL)
	}
	if opts.CacheTTL < 0 {
		opts.UnknownTTL = -1
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = DefaultTolerance
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var origin []byte
	if opts.OriginSecret != "" {
		sum := sha256.Sum256([]byte(opts.OriginSecret))
		origin = sum[:]
	}
	return &Handler{
		origin: origin,
		routes: routes,
		// Gateways change as rarely as routes and are cached as long.
		gateways:  registry.NewCache(routes, opts.CacheTTL, opts.Now),
		secrets:   keys,
		queue:     q,
		replays:   opts.Replays,
		metrics:   opts.Metrics,
		cache:     newRouteCache(opts.CacheTTL, opts.CacheSize),
		unknown:   newRouteCache(opts.UnknownTTL, DefaultUnknownCacheSize),
		tolerance: opts.Tolerance,
		log:       opts.Logger,
		now:       opts.Now,
	}
}

// Request is what the handler needs of an HTTP request, whatever carried it.
type Request struct {
	Method string
	// Path is the {path} part of the URL.
	Path        string
	ContentType string
	// ContentLength is the body size when known in advance, else -1.
	ContentLength int64
	// Secret is the X-Webhook-Secret header.
	Secret string
	// Signed holds the Standard Webhooks headers (signing "hmac").
	Signed webhook.SignedHeaders
	Body   io.Reader
	// Origin is the schema.OriginHeader header.
	Origin string
	// RequestID identifies the invocation in logs, the message and the
	// response (the Lambda request id); EdgeRequestID is API Gateway's.
	RequestID     string
	EdgeRequestID string
}

// Response is the answer; Header is shared between responses and must not
// be modified.
type Response struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Header names the handler reads, in canonical form.
const (
	HeaderSecret           = "X-Webhook-Secret"
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// Outcomes, as logged.
const (
	outcomeAccepted     = "accepted"
	outcomeDuplicate    = "duplicate"
	outcomeUnauthorized = "unauthorized"
	outcomeBadRequest   = "bad_request"
	outcomeTooLarge     = "too_large"
	outcomeBadMethod    = "method_not_allowed"
	outcomeBadType      = "unsupported_media_type"
	outcomeUnavailable  = "unavailable"
)

// result is what one request came to, for the log line and the metrics.
type result struct {
	outcome string
	reason  string
	route   *route
	sysID   string
	// caveats name what an accepted request was accepted without (see
	// the caveat constants); each is counted.
	caveats []string
	err     error
}

// Handle serves one request, logs one line about it and counts it when it
// was refused, a repeat, or accepted with a caveat. It never panics on
// malformed input and never returns 202 for a message that was not
// enqueued.
func (h *Handler) Handle(ctx context.Context, req Request) Response {
	start := h.now()
	resp, res := h.handle(ctx, req, start)
	h.logResult(ctx, req, resp, res, start)
	h.count(ctx, res)
	return resp
}

func (h *Handler) handle(ctx context.Context, req Request, now time.Time) (Response, result) {
	if h.origin != nil {
		got := sha256.Sum256([]byte(req.Origin))
		if subtle.ConstantTimeCompare(got[:], h.origin) != 1 {
			return unauthorized("not_through_edge", nil)
		}
	}
	if req.Method != http.MethodPost {
		return respMethod, result{outcome: outcomeBadMethod}
	}
	if !isJSON(req.ContentType) {
		return respMediaType, result{outcome: outcomeBadType}
	}
	// A declared size is known before anything else, for every path alike.
	if req.ContentLength > MaxBody {
		return respTooLarge, result{outcome: outcomeTooLarge}
	}
	if !validPath(req.Path) {
		return unauthorized("malformed_path", nil)
	}

	rt, err := h.route(ctx, req.Path, now)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return unauthorized("unknown_path", nil)
	case err != nil:
		return unavailable(err, nil)
	}
	if reason := rt.usable(); reason != "" {
		return unauthorized(reason, rt)
	}

	buf := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(buf)
	var body []byte

	switch rt.signing {
	case registry.SigningSecret:
		var accepted [4]webhook.Digest
		if err := webhook.VerifySecret(req.Secret, rt.digestsAt(now, accepted[:0])); err != nil {
			return unauthorized("bad_secret", rt)
		}
		if body, err = readBody(req.Body, *buf); err != nil {
			return bodyError(err, rt)
		}
	case registry.SigningHMAC:
		if len(req.Signed.ID) > MaxMessageID {
			return unauthorized("bad_webhook_id", rt)
		}
		if err := webhook.CheckTimestamp(req.Signed, now, h.tolerance); err != nil {
			return unauthorized(reasonOf(err), rt)
		}
		if body, err = readBody(req.Body, *buf); err != nil {
			// The signature covers the whole body: one we will not read
			// cannot be authenticated, and saying "too large" here would
			// tell an unauthenticated caller that the path exists.
			return unauthorized("unverifiable_body", rt)
		}
		keys, reason, err := h.signingKeys(ctx, rt, now)
		if err != nil {
			return unavailable(err, rt)
		}
		if len(keys) == 0 {
			return unauthorized(reason, rt)
		}
		if err := webhook.VerifySignature(keys, req.Signed, body, now, h.tolerance); err != nil {
			return unauthorized(reasonOf(err), rt)
		}
	default:
		return unauthorized("unknown_signing_mode", rt) // never accept what we cannot verify
	}

	p, errResp := parsePayload(body)
	if errResp != nil {
		return *errResp, result{outcome: outcomeBadRequest, reason: "invalid_body", route: rt}
	}
	res := result{outcome: outcomeAccepted, route: rt, sysID: p.SysID}
	if reason := h.checkInstance(ctx, rt, p.Instance, &res); reason != "" {
		return unauthorized(reason, rt)
	}
	remembered := false
	if rt.signing == registry.SigningHMAC {
		var dup bool
		if dup, remembered = h.remember(ctx, rt, req.Signed, now, &res); dup {
			res.outcome = outcomeDuplicate
			return respDuplicate, res
		}
	}
	msg := queue.IntakeMessage{
		GatewayID:   rt.gatewayID,
		WebhookID:   rt.webhookID,
		Table:       rt.table, // the registration decides the table, not the body
		SysID:       p.SysID,
		Source:      queue.SourceWebhook,
		ReceivedAt:  now.UTC(),
		RequestID:   req.RequestID,
		Number:      p.Number,
		SysModCount: p.SysModCount.ptr(),
		Operation:   p.Operation,
	}
	if err := h.queue.Send(ctx, msg); err != nil {
		if remembered {
			err = errors.Join(err, h.forget(ctx, rt, req.Signed, now))
		}
		return unavailable(err, rt)
	}
	return accepted(req.RequestID), res
}

// route returns the compiled registration for a path, from the cache when
// fresh; a path found unknown a moment ago is unknown without a read.
func (h *Handler) route(ctx context.Context, path string, now time.Time) (*route, error) {
	if rt, ok := h.cache.get(path, now); ok {
		return rt, nil
	}
	if _, ok := h.unknown.get(path, now); ok {
		return nil, registry.ErrNotFound
	}
	r, err := h.routes.Route(ctx, path)
	if errors.Is(err, registry.ErrNotFound) {
		h.unknown.put(path, nil, now)
	}
	if err != nil {
		return nil, err
	}
	rt := compile(r)
	h.cache.put(path, rt, now)
	return rt, nil
}

// signingKeys fetches the route's unexpired HMAC keys. A key that is gone
// from Secrets Manager or malformed is skipped (and named in reason when no
// key is left); any other error is returned, since we cannot verify now.
func (h *Handler) signingKeys(ctx context.Context, rt *route, now time.Time) ([][]byte, string, error) {
	var keys [][]byte
	reason := "no_signing_key"
	for _, ref := range rt.keys {
		if !ref.Expires.IsZero() && !now.Before(ref.Expires) {
			continue
		}
		v, err := h.secrets.Get(ctx, ref.SecretARN)
		if errors.Is(err, secrets.ErrNotFound) {
			reason = "signing_key_not_found"
			continue
		}
		if err != nil {
			return nil, "", err
		}
		k, err := webhook.DecodeSigningKey(v)
		if err != nil {
			reason = "malformed_signing_key"
			continue
		}
		keys = append(keys, k)
	}
	return keys, reason, nil
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, webhook.ErrNoSignature):
		return "no_signature"
	case errors.Is(err, webhook.ErrTimestamp):
		return "timestamp_out_of_tolerance"
	default:
		return "bad_signature"
	}
}

// validPath is registry.ValidPath (24 lower-case hex digits) without a
// regular expression: it runs on every request, before any lookup.
func validPath(p string) bool {
	if len(p) != 24 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isJSON accepts application/json with optional parameters (charset).
func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

var bodyPool = sync.Pool{New: func() any {
	b := make([]byte, MaxBody+1)
	return &b
}}

var errTooLarge = errors.New("body too large")

// readBody reads at most MaxBody bytes into buf (MaxBody+1 long); a longer
// body is errTooLarge, and is never read further.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	if r == nil {
		return buf[:0], nil
	}
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return nil, errTooLarge
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n], nil
	default:
		return nil, err
	}
}

func bodyError(err error, rt *route) (Response, result) {
	if errors.Is(err, errTooLarge) {
		return respTooLarge, result{outcome: outcomeTooLarge, route: rt}
	}
	return respUnreadable, result{outcome: outcomeBadRequest, reason: "unreadable_body", route: rt, err: err}
}

func unauthorized(reason string, rt *route) (Response, result) {
	return respUnauthorized, result{outcome: outcomeUnauthorized, reason: reason, route: rt}
}

func unavailable(err error, rt *route) (Response, result) {
	return respUnavailable, result{outcome: outcomeUnavailable, route: rt, err: err}
}

// Fixed responses. Every auth failure is respUnauthorized, byte for byte.
var (
	jsonHeader       = map[string]string{"Content-Type": "application/json"}
	respUnauthorized = Response{http.StatusUnauthorized, jsonHeader, []byte(`{"error":"unauthorized"}`)}
	respMethod       = Response{http.StatusMethodNotAllowed, map[string]string{"Content-Type": "application/json", "Allow": http.MethodPost}, []byte(`{"error":"method not allowed"}`)}
	respMediaType    = Response{http.StatusUnsupportedMediaType, jsonHeader, []byte(`{"error":"content type must be application/json"}`)}
	respTooLarge     = Response{http.StatusRequestEntityTooLarge, jsonHeader, []byte(`{"error":"body larger than 16 KiB"}`)}
	respUnreadable   = Response{http.StatusBadRequest, jsonHeader, []byte(`{"error":"body could not be read"}`)}
	respUnavailable  = Response{http.StatusServiceUnavailable, map[string]string{"Content-Type": "application/json", "Retry-After": "1"}, []byte(`{"error":"temporarily unavailable, retry"}`)}
	// respDuplicate is a success: the message was accepted when it first
	// came, and a sender that retries should stop.
	respDuplicate = Response{http.StatusOK, jsonHeader, []byte(`{"status":"duplicate"}`)}
)

func accepted(requestID string) Response {
	b, err := json.Marshal(struct {
		Status    string `json:"status"`
		RequestID string `json:"request_id"`
	}{"accepted", requestID})
	if err != nil { // cannot happen for two strings; stay well-formed anyway
		b = []byte(`{"status":"accepted"}`)
	}
	return Response{http.StatusAccepted, jsonHeader, b}
}
