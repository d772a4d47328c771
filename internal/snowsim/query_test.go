package snowsim_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestQueryOperators(t *testing.T) {
	_, srv := start(t)
	tests := []struct {
		name  string
		query string
		want  []string // numbers, in the order returned
	}{
		{"empty query", "", []string{"INC0010001", "INC0010002", "INC0010003", "INC0010004"}},
		{"string equals, case-insensitive", "short_description=database SLOW", []string{"INC0010002"}},
		{"string not equals", "u_environment!=production", []string{"INC0010002", "INC0010003"}},
		{"string greater", "short_description>Printer jammed", []string{"INC0010001", "INC0010003"}},
		{"string less or equal", "short_description<=Database slow", []string{"INC0010002"}},
		{"string IN", "u_environmentINstaging,qa", []string{"INC0010002"}},
		{"string LIKE", "short_descriptionLIKErouter", []string{"INC0010001", "INC0010003"}},
		{"string NOT LIKE", "short_descriptionNOT LIKErouter", []string{"INC0010002", "INC0010004"}},
		{"string STARTSWITH", "short_descriptionSTARTSWITHrouter", []string{"INC0010001", "INC0010003"}},
		{"string ENDSWITH", "short_descriptionENDSWITHjammed", []string{"INC0010004"}},
		{"ISEMPTY", "u_environmentISEMPTY", []string{"INC0010003"}},
		{"number equals", "priority=1", []string{"INC0010001"}},
		{"number not equals", "priority!=1", []string{"INC0010002", "INC0010003", "INC0010004"}},
		// Numeric, not text: "100" > "12" > "3" > "0".
		{"number greater or equal", "sys_mod_count>=12", []string{"INC0010002", "INC0010004"}},
		{"number greater", "sys_mod_count>3", []string{"INC0010002", "INC0010004"}},
		{"number less", "sys_mod_count<12", []string{"INC0010001", "INC0010003"}},
		{"number less or equal", "sys_mod_count<=3", []string{"INC0010001", "INC0010003"}},
		{"number IN", "priorityIN1,5", []string{"INC0010001", "INC0010004"}},
		{"date equals", "sys_updated_on=2026-03-01 10:00:00", []string{"INC0010001", "INC0010003"}},
		{"date not equals", "sys_updated_on!=2026-03-01 10:00:00", []string{"INC0010002", "INC0010004"}},
		{"date greater", "sys_updated_on>2026-03-01 10:00:00", []string{"INC0010002"}},
		{"date greater or equal", "sys_updated_on>=2026-03-01 10:00:00", []string{"INC0010001", "INC0010002", "INC0010003"}},
		{"date less", "sys_updated_on<2026-03-01 10:00:00", []string{"INC0010004"}},
		{"date less or equal", "sys_updated_on<=2026-03-01 10:00:00", []string{"INC0010001", "INC0010003", "INC0010004"}},
		{"date by dateGenerate", "sys_updated_on>=javascript:gs.dateGenerate('2026-03-02','00:00:00')", []string{"INC0010002"}},
		{"date BETWEEN", "sys_created_onBETWEENjavascript:gs.dateGenerate('2026-02-28','00:00:00')@javascript:gs.dateGenerate('2026-03-01','08:30:00')", []string{"INC0010002", "INC0010004"}},
		{"active", "active=true", []string{"INC0010001", "INC0010002", "INC0010004"}},
		{"AND", "active=true^priority<=3", []string{"INC0010001", "INC0010002"}},
		{"OR", "priority=1^ORpriority=5", []string{"INC0010001", "INC0010004"}},
		// ^OR binds tighter than ^: (priority=1 OR priority=2) AND active=true.
		{"OR then AND", "priority=1^ORpriority=2^active=true", []string{"INC0010001"}},
		{"NQ", "priority=1^NQstate=7", []string{"INC0010001", "INC0010003"}},
		{"dot-walk IN", "assignment_group.nameINNetwork,Database", []string{"INC0010001", "INC0010002", "INC0010003"}},
		{"dot-walk equals", "assignment_group.name=Service Desk", []string{"INC0010004"}},
		{"gateway scope", "active=true^assignment_group.nameINNetwork^u_environmentINproduction", []string{"INC0010001"}},
		{"ORDERBY two keys", "ORDERBYsys_updated_on^ORDERBYsys_id", []string{"INC0010004", "INC0010003", "INC0010001", "INC0010002"}},
		{"ORDERBYDESC two keys", "ORDERBYDESCsys_updated_on^ORDERBYDESCsys_id", []string{"INC0010002", "INC0010001", "INC0010003", "INC0010004"}},
		{"ORDERBY number", "ORDERBYDESCsys_mod_count", []string{"INC0010004", "INC0010002", "INC0010003", "INC0010001"}},
		{"ORDERBY with filter", "active=true^ORDERBYpriority", []string{"INC0010001", "INC0010002", "INC0010004"}},
		{"ORDERBY then EQ", "sys_updated_on>=2026-03-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id^EQ", []string{"INC0010003", "INC0010001", "INC0010002"}},
		// An unparseable term is dropped, not answered with no rows; see
		// TestInvalidQuery.
		{"unparseable term is ignored", "^^nooperator", []string{"INC0010001", "INC0010002", "INC0010003", "INC0010004"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := srv.URL + "/api/now/table/incident?sysparm_query=" + url.QueryEscape(tc.query)
			r := call(t, "GET", u, nil)
			if r.Status != 200 {
				t.Fatalf("GET %q: status %d, body %v", tc.query, r.Status, r.Body)
			}
			if diff := cmp.Diff(tc.want, r.column(t, "number")); diff != "" {
				t.Errorf("query %q (-want +got):\n%s", tc.query, diff)
			}
		})
	}
}

func TestQueryChangeRequestDates(t *testing.T) {
	_, srv := start(t)
	q := "approval=approved^stateIN-2,-1^start_date<=2026-03-05 22:00:00^end_date>2026-03-05 23:00:00"
	r := call(t, "GET", srv.URL+"/api/now/table/change_request?sysparm_query="+url.QueryEscape(q), nil)
	if diff := cmp.Diff([]string{"CHG0030001"}, r.column(t, "number")); diff != "" {
		t.Errorf("query %q (-want +got):\n%s", q, diff)
	}
}

// TestInvalidQuery follows the GlideRecord - Scoped API reference
// (ServiceNow docs, the note on invalid encoded queries) and the developer
// blog post on glide.invalid_query.returns_no_rows: an instance drops the
// invalid part of an encoded query (an unknown field, a term without an
// operator) and runs the rest, returning more rows, possibly the whole
// table; only with the property set to true does it return no rows. The
// simulator counts the change operators (VALCHANGES, CHANGESFROM,
// CHANGESTO) among the invalid terms of a query: there is no record
// before a change to compare with.
func TestInvalidQuery(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []string // numbers, default instance
	}{
		{"unknown field alone matches all", "u_no_such_field=1", []string{"INC0010001", "INC0010002", "INC0010003", "INC0010004"}},
		{"unknown field ANDed is dropped", "priority=1^u_no_such_field=1", []string{"INC0010001"}},
		{"unknown field ORed is dropped", "priority=1^ORu_no_such_field=1", []string{"INC0010001"}},
		{"unknown dot-walk is dropped", "assignment_group.u_region=emea^priority<=2", []string{"INC0010001", "INC0010003"}},
		{"dot-walk through a non-reference is dropped", "short_description.name=x^priority=5", []string{"INC0010004"}},
		{"term without operator is dropped", "priority=1^priority", []string{"INC0010001"}},
		// The change operators of Business Rule conditions compare with the
		// record before a change, which a query does not have.
		{"changes operator is dropped", "priority=1^stateVALCHANGES", []string{"INC0010001"}},
		{"changes from operator is dropped", "priority=1^ORactiveCHANGESFROMtrue", []string{"INC0010001"}},
		{"changes to operator alone matches all", "activeCHANGESTOfalse", []string{"INC0010001", "INC0010002", "INC0010003", "INC0010004"}},
		{"custom field a record has is valid", "u_environment=staging", []string{"INC0010002"}},
	}
	for _, strict := range []bool{false, true} {
		var opts []snowsim.Option
		if strict {
			opts = append(opts, snowsim.WithProperty(snowsim.PropInvalidQueryNoRows, "true"))
		}
		_, srv := start(t, opts...)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/returns_no_rows=%v", tc.name, strict), func(t *testing.T) {
				want := tc.want
				if strict && tc.name != "custom field a record has is valid" {
					want = []string{}
				}
				u := srv.URL + "/api/now/table/incident?sysparm_query=" + url.QueryEscape(tc.query)
				r := call(t, "GET", u, nil)
				if r.Status != 200 {
					t.Fatalf("GET %q: status %d, want 200", tc.query, r.Status)
				}
				if diff := cmp.Diff(want, r.column(t, "number")); diff != "" {
					t.Errorf("query %q (-want +got):\n%s", tc.query, diff)
				}
			})
		}
	}
}
