package connect

import (
	"errors"
	"net/http"
	"testing"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// What each answer tells the budget.
func TestOutcomeOf(t *testing.T) {
	boom := errors.New("boom")
	h := http.Header{"Retry-After": {"5"}}
	tests := []struct {
		name string
		sig  *servicenow.Signal
		want budget.Outcome
	}{
		{"cancelled: nothing", nil, budget.Outcome{}},
		{"served", &servicenow.Signal{Status: 200, Header: h}, budget.Outcome{Status: 200, Header: h}},
		{"not found is served", &servicenow.Signal{Status: 404}, budget.Outcome{Status: 404}},
		{"429", &servicenow.Signal{Status: 429, Header: h, Outcome: servicenow.OutcomeRateLimited}, budget.Outcome{Status: 429, Header: h}},
		{"429 retried is still a 429", &servicenow.Signal{Status: 429, Header: h, Retrying: true}, budget.Outcome{Status: 429, Header: h}},
		{"500, last attempt", &servicenow.Signal{Status: 500, Err: boom, Outcome: servicenow.OutcomeFailed}, budget.Outcome{Status: 500, Err: boom}},
		{"500 retried: not yet a failure", &servicenow.Signal{Status: 500, Retrying: true, Outcome: servicenow.OutcomeFailed}, budget.Outcome{}},
		{"timeout retried: not yet a failure", &servicenow.Signal{Err: boom, Retrying: true, Outcome: servicenow.OutcomeFailed}, budget.Outcome{}},
		{"timeout, last attempt", &servicenow.Signal{Err: boom, Outcome: servicenow.OutcomeFailed}, budget.Outcome{Err: boom}},
		{"no answer, no error", &servicenow.Signal{}, budget.Outcome{Err: errors.New("no answer")}},
		{"expired token refreshed", &servicenow.Signal{Status: 401, Retrying: true}, budget.Outcome{}},
		{"401", &servicenow.Signal{Status: 401, Outcome: servicenow.OutcomeDenied}, budget.Outcome{Status: 401}},
		{"grant refused", &servicenow.Signal{Status: 400, Outcome: servicenow.OutcomeDenied}, budget.Outcome{Status: 401}},
		{"HTML page in a 200", &servicenow.Signal{Status: 200, Outcome: servicenow.OutcomeFailed, Err: boom}, budget.Outcome{Status: 503, Err: boom}},
		{"journal unreadable: not the gateway's pause", &servicenow.Signal{Status: 403, Table: servicenow.TableJournal, Outcome: servicenow.OutcomeDenied}, budget.Outcome{Status: 200}},
		{"403 on a record table", &servicenow.Signal{Status: 403, Table: "incident", Outcome: servicenow.OutcomeDenied}, budget.Outcome{Status: 403}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := outcomeOf(tc.sig)
			if got.Status != tc.want.Status || (got.Err == nil) != (tc.want.Err == nil) || len(got.Header) != len(tc.want.Header) {
				t.Errorf("outcomeOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}
