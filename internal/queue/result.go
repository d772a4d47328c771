package queue

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Result statuses: what the engine reports about a job.
const (
	ResultInProgress = "in_progress"
	ResultSucceeded  = "succeeded"
	ResultFailed     = "failed"
	ResultPartial    = "partial"
)

// ResultStatuses lists the result statuses.
var ResultStatuses = []string{ResultInProgress, ResultSucceeded, ResultFailed, ResultPartial}

// MaxResultText bounds each text of a result: ServiceNow journal fields
// take 4,000 characters by default (longer entries are cut), close_notes as
// many. A longer text is a malformed result, not something to cut silently.
const MaxResultText = 4000

// JobResult is the body of a results queue message: the engine's report on
// a job, applied to the ticket by the writer through the gateway's
// outbound mapping. It is the engine's contract (docs/schemas/results).
//
// ResultID identifies the report: a redelivered or re-sent result with an
// id already applied changes nothing.
type JobResult struct {
	JobID         string `json:"job_id"`
	ResultID      string `json:"result_id"`
	Status        string `json:"status"`
	Summary       string `json:"summary,omitempty"`
	WorkNote      string `json:"work_note,omitempty"`
	PublicComment string `json:"public_comment,omitempty"`
	// CloseCode overrides the gateway's resolve close code (succeeded).
	CloseCode string `json:"close_code,omitempty"`
}

// ErrMalformedResult is wrapped by JobResult.Validate's errors.
var ErrMalformedResult = errors.New("malformed result")

// Validate checks a result before anything of it is applied, so a bad one
// is refused whole (poison), never half-applied.
func (r JobResult) Validate() error {
	var problems []string
	if strings.TrimSpace(r.JobID) == "" {
		problems = append(problems, "job_id is empty")
	}
	if strings.TrimSpace(r.ResultID) == "" {
		problems = append(problems, "result_id is empty")
	}
	if !slices.Contains(ResultStatuses, r.Status) {
		problems = append(problems, fmt.Sprintf("status %q is not one of %s", r.Status, strings.Join(ResultStatuses, ", ")))
	}
	for _, f := range []struct{ name, v string }{
		{"job_id", r.JobID}, {"result_id", r.ResultID}, {"summary", r.Summary}, {"work_note", r.WorkNote},
		{"public_comment", r.PublicComment}, {"close_code", r.CloseCode},
	} {
		if !utf8.ValidString(f.v) {
			problems = append(problems, f.name+" is not valid UTF-8")
		} else if n := utf8.RuneCountInString(f.v); n > MaxResultText {
			problems = append(problems, fmt.Sprintf("%s has %d characters, more than %d", f.name, n, MaxResultText))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrMalformedResult, strings.Join(problems, "; "))
	}
	return nil
}
