package servicenow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrNotFound is a 404 from the Table API. ServiceNow answers 404 both for a
// record that does not exist (or was deleted) and for one an ACL hides from
// the integration user, and it cannot say which. It matches an *Error with
// Status 404 through errors.Is, so the status and message stay available.
var ErrNotFound = errors.New("servicenow record not found or not readable")

// ErrBadResponse is a 2xx response the client cannot use: malformed JSON,
// a missing body where one is needed, an oversized body, a bad Link header.
var ErrBadResponse = errors.New("unusable servicenow response")

// ErrForbidden matches a 403 *Error: the integration user lacks the rights
// the call needs (a table's read ACL, a field's write ACL). No retry cures
// it; the gateway is misconfigured until someone grants a role.
var ErrForbidden = errors.New("servicenow access denied")

// Error is a non-2xx answer from ServiceNow. Message and Detail are
// ServiceNow's error.message and error.detail when the body has them
// (shape {"error":{"message":"…","detail":"…"},"status":"failure"}), the
// HTTP status text otherwise. Credentials are never part of it: requests
// carry them only in headers and the token request's form body, neither of
// which is kept.
type Error struct {
	Status  int
	Message string
	Detail  string
	// Outcome classifies the answer (see Outcome): a 429 is
	// OutcomeRateLimited (a rate limit rule) or OutcomeQueueFull (a node's
	// API queue), a 5xx OutcomeFailed, a 401 or 403 OutcomeDenied.
	Outcome Outcome
	// RateLimit holds the answer's X-RateLimit-* headers.
	RateLimit RateLimit
	// RetryAfter is how long ServiceNow asked the client to wait, on a 429
	// or 503: Retry-After, else the time to X-RateLimit-Reset when the
	// rule's window has nothing left (RateLimit.Remaining 0, as on every
	// rule's 429). Zero when it did not say, as on a full queue's 429.
	RetryAfter time.Duration
	// Table and Access ("read" or "write") say what the call needed, so a
	// 403 can name the missing right.
	Table  string
	Access string
	// Hint says what to change on the instance, for answers whose cause
	// is a known setting (a 401 from the token endpoint or to basic auth).
	Hint string
}

func (e *Error) Error() string {
	if e.Status == http.StatusForbidden && e.Table != "" {
		access := e.Access
		if access == "" {
			access = "read"
		}
		answer := fmt.Sprintf("%d %s", e.Status, e.Message)
		if e.Detail != "" && e.Detail != e.Message {
			answer += ": " + e.Detail
		}
		return fmt.Sprintf("servicenow: the integration user may not %s table %s (%s): grant it a role with %s access (e.g. itil)",
			access, e.Table, answer, access)
	}
	s := fmt.Sprintf("servicenow: %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" && e.Message != http.StatusText(e.Status) {
		s += ": " + e.Message
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	switch e.Outcome {
	case OutcomeRateLimited:
		s += " [rate limit rule"
		if e.RateLimit.Rule != "" {
			s += " " + e.RateLimit.Rule
		}
		if e.RateLimit.Limit > 0 {
			s += fmt.Sprintf(", %d requests per window", e.RateLimit.Limit)
		}
		s += "]"
	case OutcomeQueueFull:
		s += " [API queue full]"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// Is makes a 404 match ErrNotFound, a 403 ErrForbidden, a 429
// ErrThrottled, and a 429 also ErrRateLimited or ErrQueueFull by its
// Outcome.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrThrottled:
		return e.Throttled()
	case ErrRateLimited:
		return e.Outcome == OutcomeRateLimited
	case ErrQueueFull:
		return e.Outcome == OutcomeQueueFull
	}
	return false
}

// Throttled reports whether the answer was a 429: the instance refused the
// request for a limit (a rate limit rule or a full API queue), not for the
// request itself.
func (e *Error) Throttled() bool { return e.Status == http.StatusTooManyRequests }

// Kinds of a 2xx answer that is not a usable one, matched with errors.Is
// against an *AnswerError.
var (
	// ErrNotAPI: the 2xx answer is not JSON, such as the HTML page a
	// hibernating developer instance serves for every URL. Waking the
	// instance (from the developer portal) is the cure, not a quick retry.
	ErrNotAPI = errors.New("the instance did not answer the API (hibernating?)")
	// ErrFailureAnswer: a 2xx answer holding ServiceNow's error envelope
	// (a top-level "error" object or "status":"failure").
	ErrFailureAnswer = errors.New("servicenow answered success with an error")
	// ErrTransactionCancelled: the instance cut the answer short and
	// appended its error object, which is what a transaction cancelled by
	// a transaction quota rule sends; a partial page is never used.
	ErrTransactionCancelled = errors.New("transaction cancelled (quota rule)")
)

// AnswerError is a 2xx answer that is not what the API answers: not JSON,
// or ServiceNow's error envelope in place of (or appended to) the result.
// It is retryable: the instance may answer properly later.
type AnswerError struct {
	Status int
	// Kind is ErrNotAPI, ErrFailureAnswer or ErrTransactionCancelled.
	Kind error
	// ContentType is the answer's Content-Type (for ErrNotAPI).
	ContentType string
	// Message and Detail are the error object's, when there is one.
	Message, Detail string
}

func (e *AnswerError) Error() string {
	s := fmt.Sprintf("servicenow: %d %s: %s", e.Status, http.StatusText(e.Status), e.Kind)
	if e.Kind == ErrNotAPI && e.ContentType != "" {
		s += " (got " + e.ContentType + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Detail != "" && e.Detail != e.Message {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *AnswerError) Unwrap() error { return e.Kind }

// retryableStatus: rate limiting and server-side failures may clear; 501
// (a method the instance does not implement) will not.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || (status >= 500 && status != http.StatusNotImplemented)
}

// transportError is a failure to send a request or read its response:
// refused or reset connections, timeouts, truncated bodies.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// tokenError is a failure to get an OAuth token for a request.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// IsRetryable reports whether trying the same call again later may succeed:
// 429, 5xx, timeouts (a context deadline included: the call may fit the next
// attempt's budget), connection failures and 2xx answers that are not the
// API's (an *AnswerError: hibernation, a cancelled transaction, an error
// envelope). A context canceled by the caller, 4xx, certificate errors and
// malformed responses are final.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *AnswerError
	if errors.As(err, &ae) {
		return true
	}
	var se *Error
	if errors.As(err, &se) {
		return retryableStatus(se.Status)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te *transportError
	if errors.As(err, &te) {
		return !IsCertificateError(err)
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsCertificateError reports whether err is a failure to trust the
// instance's TLS certificate, which no retry can fix.
func IsCertificateError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) ||
		errors.As(err, &hostname) || errors.As(err, &verifyErr)
}
