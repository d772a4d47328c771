package snowsim_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestTableACL follows ServiceNow KB2971488 ("REST API 403: Forbidden —
// Field-Level ACL Diagnosis Guide") and the Table API reference: a user
// without read rights on a table gets 403 "Insufficient rights to query
// records" in the usual error envelope, while a single row hidden by an ACL
// reads as 404.
func TestTableACL(t *testing.T) {
	sim, srv := start(t, snowsim.WithUser("svc", "pw"), snowsim.WithUser("admin", "pw"),
		snowsim.WithReadDenied("svc", "change_request"))
	wantBody := map[string]any{
		"error": map[string]any{
			"message": "Insufficient rights to query records",
			"detail":  "The session user has no read access to table change_request",
		},
		"status": "failure",
	}
	for _, path := range []string{
		"/api/now/table/change_request",
		"/api/now/table/change_request/cccccccccccccccccccccccccccccc01",
	} {
		r := call(t, "GET", srv.URL+path, nil, "svc", "pw")
		if r.Status != 403 {
			t.Errorf("GET %s as svc: status %d, want 403", path, r.Status)
		}
		if diff := cmp.Diff(wantBody, r.Body); diff != "" {
			t.Errorf("GET %s as svc (-want +got):\n%s", path, diff)
		}
		if r := call(t, "GET", srv.URL+path, nil, "admin", "pw"); r.Status != 200 {
			t.Errorf("GET %s as admin: status %d, want 200", path, r.Status)
		}
	}
	if r := call(t, "GET", srv.URL+"/api/now/table/incident", nil, "svc", "pw"); r.Status != 200 {
		t.Errorf("GET incident as svc: status %d, want 200 (only change_request is denied)", r.Status)
	}
	sim.SetReadDenied("svc", "change_request", false)
	if r := call(t, "GET", srv.URL+"/api/now/table/change_request", nil, "svc", "pw"); r.Status != 200 {
		t.Errorf("GET change_request after the right is given back: status %d, want 200", r.Status)
	}
}
