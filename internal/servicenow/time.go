package servicenow

import (
	"fmt"
	"time"
)

// TimeLayout is how the Table API writes glide_date_time values when
// sysparm_display_value=false: UTC, no zone, second resolution.
const TimeLayout = "2006-01-02 15:04:05"

// Time is a ServiceNow date-time. It parses and prints TimeLayout in UTC and
// maps the zero time to the empty string, which is how ServiceNow writes an
// unset date.
//
// The embedded time.Time would bring its own RFC 3339 JSON and text
// encodings; Time overrides them so a value round-trips in ServiceNow's
// format wherever it is serialised.
type Time struct{ time.Time }

// ParseTime parses a ServiceNow date-time; "" is the zero Time.
func ParseTime(s string) (Time, error) {
	if s == "" {
		return Time{}, nil
	}
	t, err := time.ParseInLocation(TimeLayout, s, time.UTC)
	if err != nil {
		return Time{}, fmt.Errorf("parse servicenow time %q: %w", s, err)
	}
	return Time{t}, nil
}

// NewTime returns t as a ServiceNow Time: in UTC, truncated to the second.
func NewTime(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{t.UTC().Truncate(time.Second)}
}

// String formats t in TimeLayout, UTC; the zero Time is "".
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// Equal reports whether t and u are the same instant. Its Time argument
// (the embedded time.Time's Equal takes a time.Time) lets go-cmp compare
// values that hold a Time.
func (t Time) Equal(u Time) bool { return t.Time.Equal(u.Time) }

// MarshalText implements encoding.TextMarshaler.
func (t Time) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Time) UnmarshalText(b []byte) error {
	v, err := ParseTime(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// MarshalJSON writes t as a JSON string in TimeLayout ("" when zero).
func (t Time) MarshalJSON() ([]byte, error) {
	s := t.String()
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a JSON string in TimeLayout; "" and null are the zero
// Time.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*t = Time{}
		return nil
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return fmt.Errorf("parse servicenow time: %s is not a JSON string", s)
	}
	return t.UnmarshalText(b[1 : len(b)-1])
}
