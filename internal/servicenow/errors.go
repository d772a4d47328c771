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
	// RetryAfter is how long ServiceNow asked the client to wait (429 and
	// 503 with Retry-After or X-RateLimit-Reset); zero when it did not say.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("servicenow: %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" && e.Message != http.StatusText(e.Status) {
		s += ": " + e.Message
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	return s
}

// Is makes a 404 match ErrNotFound.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

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
// attempt's budget) and connection failures. A context canceled by the
// caller, 4xx, certificate errors and unusable responses are final.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
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
		return !isCertificateError(err)
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isCertificateError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) ||
		errors.As(err, &hostname) || errors.As(err, &verifyErr)
}
