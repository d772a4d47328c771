package servicenow

import (
	"context"
	"errors"
	"fmt"
)

// Gate admits the requests a client sends, one HTTP request at a time: the
// first attempt of a call, each retry and each OAuth token request. It is
// how a budget shared by every caller of an instance (package budget)
// bounds what they send together, and learns from each answer.
type Gate interface {
	// Admit returns once the request may go, or an error saying why it
	// must not (it is handed to the caller, wrapped; it is not retried).
	// The request's end is reported to done exactly once: with the Signal
	// of the answer, or nil when the request says nothing about the
	// instance (the caller cancelled it).
	Admit(ctx context.Context) (done func(*Signal), err error)
}

// WithGate makes every request the client sends wait for g's admission.
func WithGate(g Gate) Option { return func(c *Client) { c.gate = g } }

// GateError is the error of a call its Gate did not admit; Err is the
// gate's own, to be matched with errors.Is or errors.As.
type GateError struct {
	Method, Table string
	Err           error
}

func (e *GateError) Error() string {
	if e.Table == "" {
		return fmt.Sprintf("servicenow %s not admitted: %v", e.Method, e.Err)
	}
	return fmt.Sprintf("servicenow %s %s not admitted: %v", e.Method, e.Table, e.Err)
}

func (e *GateError) Unwrap() error { return e.Err }

// IsNotAdmitted reports whether err is a call its Gate held back.
func IsNotAdmitted(err error) bool {
	var ge *GateError
	return errors.As(err, &ge)
}

// admit asks the gate, if any, for one request.
func (c *Client) admit(ctx context.Context, r request) (func(*Signal), error) {
	if c.gate == nil {
		return func(*Signal) {}, nil
	}
	done, err := c.gate.Admit(ctx)
	if err != nil {
		return nil, &GateError{Method: r.method, Table: r.table, Err: err}
	}
	return done, nil
}
