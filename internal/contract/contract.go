// Package contract validates what snowgate and an automation engine send
// each other against the published JSON Schemas (docs/schemas/events and
// docs/schemas/results, embedded by package docs): job events on the
// dispatch queue and job results on the results queue.
//
// The schemas are closed, so validation is strict: an event with a field
// the contract does not document fails, which is how the pipeline's tests
// keep what it sends and what docs/engine.md promises the same. Engines are
// told to ignore unknown event fields; snowgate refuses unknown result
// fields (a misspelt "sumary" is a clear refusal, not a silently dropped
// summary), and the writer can call ValidateResult before applying
// anything, so a malformed result is poison, never half-applied.
//
// Errors name each wrong field by its path in the body ("ticket.active",
// "changed_fields[0]").
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/snowgate/snowgate/docs"
	"github.com/snowgate/snowgate/internal/queue"
)

// ErrInvalidEvent is wrapped by ValidateEvent's errors.
var ErrInvalidEvent = errors.New("invalid job event")

// ValidateResult's errors wrap queue.ErrMalformedResult, the error of
// queue.JobResult.Validate, so a consumer handles both the same way.

// Violation is one thing wrong with a body.
type Violation struct {
	// Field is the path of the offending value: "status", "ticket.active",
	// "changed_fields[0]"; "" for the body as a whole.
	Field string
	// Message says what is wrong with it.
	Message string
}

func (v Violation) String() string {
	if v.Field == "" {
		return v.Message
	}
	return v.Field + ": " + v.Message
}

// Error is a body that does not meet its contract. It wraps
// ErrInvalidEvent or queue.ErrMalformedResult.
type Error struct {
	kind       error
	Violations []Violation
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.String()
	}
	return e.kind.Error() + ": " + strings.Join(parts, "; ")
}

func (e *Error) Unwrap() error { return e.kind }

// ValidateEvent checks a dispatch queue message body against the job event
// schema.
func ValidateEvent(body []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	return validate(s.event, body, ErrInvalidEvent)
}

// ValidateResult checks a results queue message body against the job
// result schema.
func ValidateResult(body []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	return validate(s.result, body, queue.ErrMalformedResult)
}

type schemas struct{ event, result *jsonschema.Schema }

// compiled compiles the embedded schemas once. They are part of the
// binary, so an error here is a broken build, reported on every call
// rather than by a panic at start.
var compiled = sync.OnceValues(func() (schemas, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	var out schemas
	for _, s := range []struct {
		path string
		into **jsonschema.Schema
	}{{docs.EventSchema, &out.event}, {docs.ResultSchema, &out.result}} {
		b, err := docs.Contracts.ReadFile(s.path)
		if err != nil {
			return schemas{}, fmt.Errorf("read schema %s: %w", s.path, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return schemas{}, fmt.Errorf("parse schema %s: %w", s.path, err)
		}
		// The schemas refer only within themselves; the URL just names them.
		url := "docs:" + s.path
		if err := c.AddResource(url, doc); err != nil {
			return schemas{}, fmt.Errorf("add schema %s: %w", s.path, err)
		}
		if *s.into, err = c.Compile(url); err != nil {
			return schemas{}, fmt.Errorf("compile schema %s: %w", s.path, err)
		}
	}
	return out, nil
})

func validate(s *jsonschema.Schema, body []byte, kindErr error) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &Error{kind: kindErr, Violations: []Violation{{Message: "not JSON: " + jsonProblem(err)}}}
	}
	err = s.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{kind: kindErr, Violations: []Violation{{Message: err.Error()}}}
	}
	var eventType string
	if obj, ok := inst.(map[string]any); ok {
		eventType, _ = obj["type"].(string)
	}
	var vs []Violation
	leaves(ve, func(e *jsonschema.ValidationError) { vs = append(vs, violations(e, eventType)...) })
	slices.SortFunc(vs, func(a, b Violation) int { return strings.Compare(a.String(), b.String()) })
	return &Error{kind: kindErr, Violations: slices.Compact(vs)}
}

// jsonProblem is a JSON syntax error without the decoder's package prefix.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return strings.TrimPrefix(err.Error(), "jsonschema: ")
}

// leaves calls f for each error of the tree that has no causes: the
// specific problems, not "allOf failed" around them.
func leaves(e *jsonschema.ValidationError, f func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		f(e)
		return
	}
	for _, c := range e.Causes {
		leaves(c, f)
	}
}

func violations(e *jsonschema.ValidationError, eventType string) []Violation {
	at := e.InstanceLocation
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		var out []Violation
		for _, m := range k.Missing {
			out = append(out, Violation{Field: fieldPath(append(slices.Clip(at), m)), Message: "is required"})
		}
		return out
	case *kind.AdditionalProperties:
		var out []Violation
		for _, p := range k.Properties {
			out = append(out, Violation{Field: fieldPath(append(slices.Clip(at), p)), Message: "is not a field of the contract"})
		}
		return out
	case *kind.MaxLength:
		return []Violation{{Field: fieldPath(at), Message: fmt.Sprintf("has %d characters, more than %d", k.Got, k.Want)}}
	case *kind.MinLength:
		if k.Got == 0 {
			return []Violation{{Field: fieldPath(at), Message: "is empty"}}
		}
		return []Violation{{Field: fieldPath(at), Message: fmt.Sprintf("has %d characters, fewer than %d", k.Got, k.Want)}}
	case *kind.MinItems:
		if k.Got == 0 {
			return []Violation{{Field: fieldPath(at), Message: "is empty"}}
		}
		return []Violation{{Field: fieldPath(at), Message: fmt.Sprintf("has %d items, fewer than %d", k.Got, k.Want)}}
	case *kind.Minimum:
		return []Violation{{Field: fieldPath(at), Message: fmt.Sprintf("is %s, less than %s", k.Got.RatString(), k.Want.RatString())}}
	case *kind.Pattern:
		if k.Want == `\S` {
			return []Violation{{Field: fieldPath(at), Message: "is blank"}}
		}
	case *kind.FalseSchema:
		return []Violation{{Field: fieldPath(at), Message: "is not sent with a " + eventType + " event"}}
	}
	// A leaf alone: its message, without the tree around it.
	leaf := &jsonschema.ValidationError{ErrorKind: e.ErrorKind}
	return []Violation{{Field: fieldPath(at), Message: leaf.BasicOutput().Error.String()}}
}

// fieldPath writes an instance location as a path a reader of the JSON
// recognises: object keys joined by dots, array indexes in brackets.
func fieldPath(tokens []string) string {
	var b strings.Builder
	for i, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil && i > 0 {
			b.WriteString("[" + t + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}
