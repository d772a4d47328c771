package schema

// The optional edge (CloudFront with AWS WAF in front of the HTTP API):
// CloudFront adds OriginHeader, with the stack's origin secret as its value,
// to every request it forwards, replacing any a caller sent; ingest, given
// the same value in EnvOriginSecret, refuses a request without it, so the
// API is reachable only through the edge. Unset, ingest checks nothing.
const (
	OriginHeader    = "X-Snowgate-Origin"
	EnvOriginSecret = "SNOWGATE_ORIGIN_SECRET"
)
