package ingest

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/webhook"
)

// HandleAPIGateway serves a payload format 2.0 event, from either front
// the stack can put before ingest: an API Gateway HTTP API route, or a
// Lambda function URL (same event shape, with no path parameters and the
// whole request path in rawPath). It always returns a response and a nil
// error: an error would turn into the front's own 500, hiding the answer
// we chose.
func (h *Handler) HandleAPIGateway(ctx context.Context, e events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	req := Request{
		Method:        e.RequestContext.HTTP.Method,
		Path:          webhookPath(e),
		ContentType:   header(e.Headers, "content-type"),
		Secret:        header(e.Headers, "x-webhook-secret"),
		Origin:        header(e.Headers, strings.ToLower(schema.OriginHeader)),
		EdgeRequestID: e.RequestContext.RequestID,
		Signed: webhook.SignedHeaders{
			ID:        header(e.Headers, "webhook-id"),
			Timestamp: header(e.Headers, "webhook-timestamp"),
			Signature: header(e.Headers, "webhook-signature"),
		},
	}
	if e.IsBase64Encoded {
		req.Body = base64.NewDecoder(base64.StdEncoding, strings.NewReader(e.Body))
		req.ContentLength = decodedLen(e.Body)
	} else {
		req.Body = strings.NewReader(e.Body)
		req.ContentLength = int64(len(e.Body))
	}
	req.RequestID = requestID(ctx, e.RequestContext.RequestID)
	resp := h.Handle(ctx, req)
	return events.APIGatewayV2HTTPResponse{
		StatusCode: resp.Status,
		Headers:    resp.Header,
		Body:       string(resp.Body),
	}, nil
}

// webhookPath is the {path} part of the request. An HTTP API route gives it
// as a path parameter. A function URL (or a catch-all route) gives only
// rawPath: PathPrefix followed by the path, at the start or after one
// leading segment (a stage name). Anything else yields a path that fails
// validation, so a function URL, which every path reaches, answers other
// addresses exactly as it answers an unknown webhook.
func webhookPath(e events.APIGatewayV2HTTPRequest) string {
	if p := e.PathParameters["path"]; p != "" {
		return p
	}
	raw := e.RawPath
	if p, ok := strings.CutPrefix(raw, PathPrefix); ok {
		return p
	}
	if rest, ok := strings.CutPrefix(raw, "/"); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 {
			if p, ok := strings.CutPrefix(rest[i:], PathPrefix); ok {
				return p
			}
		}
	}
	return ""
}

// ServeHTTP serves the route on net/http, mounted as
// "POST /api/webhooks/ingest/{path}" or under PathPrefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.PathValue("path")
	if path == "" {
		var ok bool
		if path, ok = strings.CutPrefix(r.URL.Path, PathPrefix); !ok {
			http.NotFound(w, r)
			return
		}
	}
	req := Request{
		Method:        r.Method,
		Path:          path,
		ContentType:   r.Header.Get("Content-Type"),
		ContentLength: r.ContentLength,
		Secret:        r.Header.Get(HeaderSecret),
		Origin:        r.Header.Get(schema.OriginHeader),
		Signed: webhook.SignedHeaders{
			ID:        r.Header.Get(HeaderWebhookID),
			Timestamp: r.Header.Get(HeaderWebhookTimestamp),
			Signature: r.Header.Get(HeaderWebhookSignature),
		},
		Body:      r.Body,
		RequestID: requestID(r.Context(), ""),
	}
	resp := h.Handle(r.Context(), req)
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body) // the client went away: nothing left to do
}

// requestID prefers the Lambda request id, then the edge's, then a new one.
func requestID(ctx context.Context, edge string) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	if edge != "" {
		return edge
	}
	return uuid.NewString()
}

// header finds a header in an API Gateway event. HTTP APIs lower-case header
// names; other producers of the same event shape may not.
func header(hs map[string]string, lower string) string {
	if v, ok := hs[lower]; ok {
		return v
	}
	for k, v := range hs {
		if strings.EqualFold(k, lower) {
			return v
		}
	}
	return ""
}

// decodedLen is the size of a base64 body once decoded (exact for the
// padded standard encoding API Gateway uses; the read limit still applies).
func decodedLen(s string) int64 {
	n := int64(len(s)) / 4 * 3
	if strings.HasSuffix(s, "==") {
		n -= 2
	} else if strings.HasSuffix(s, "=") {
		n--
	}
	return n
}
