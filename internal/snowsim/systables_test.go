package snowsim_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func query(t *testing.T, base, table, q, fields string) response {
	t.Helper()
	u := base + "/api/now/table/" + table + "?sysparm_exclude_reference_link=true&sysparm_query=" + url.QueryEscape(q)
	if fields != "" {
		u += "&sysparm_fields=" + fields
	}
	r := call(t, "GET", u, nil, "admin", "pw")
	if r.Status != 200 {
		t.Fatalf("GET %s?%s: status %d, body %v", table, q, r.Status, r.Body)
	}
	return r
}

// TestUsersAndRoles follows ServiceNow's user administration tables
// (sys_user with its time_zone, web service access only flag for
// non-interactive users, "Non-interactive sessions"; roles granted through
// sys_user_has_role): a consumer can read who its integration user is,
// its time zone and its roles through the Table API.
func TestUsersAndRoles(t *testing.T) {
	_, srv := start(t, snowsim.WithUser("admin", "pw"), snowsim.WithWebServiceUser("svc", "pw"),
		snowsim.WithUser("pacific", "pw"), snowsim.WithUserTimeZone("pacific", "America/Los_Angeles"),
		snowsim.WithUserRoles("svc", "itil", "rest_api_explorer"))
	users := query(t, srv.URL, "sys_user", "user_nameINsvc,pacific^ORDERBYuser_name", "user_name,time_zone,web_service_access_only,sys_id")
	want := []any{
		map[string]any{"user_name": "pacific", "time_zone": "America/Los_Angeles", "web_service_access_only": "false",
			"sys_id": snowsim.UserSysID("pacific")},
		map[string]any{"user_name": "svc", "time_zone": "UTC", "web_service_access_only": "true", "sys_id": snowsim.UserSysID("svc")},
	}
	if diff := cmp.Diff(want, users.Body["result"]); diff != "" {
		t.Errorf("sys_user (-want +got):\n%s", diff)
	}
	roles := query(t, srv.URL, "sys_user_has_role", "user.user_name=svc^ORDERBYrole.name", "role.name")
	if diff := cmp.Diff([]string{"itil", "rest_api_explorer"}, roles.column(t, "role.name")); diff != "" {
		t.Errorf("svc's roles (-want +got):\n%s", diff)
	}
	if got := query(t, srv.URL, "sys_user_has_role", "user="+snowsim.UserSysID("pacific"), "role.name").column(t, "role.name"); !cmp.Equal(got, []string{"itil"}) {
		t.Errorf("pacific's roles = %v, want the default [itil]", got)
	}
	groups := query(t, srv.URL, "sys_user_group", "name=Network", "sys_id,name")
	if diff := cmp.Diff([]string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"}, groups.column(t, "sys_id")); diff != "" {
		t.Errorf("sys_user_group name=Network (-want +got):\n%s", diff)
	}
}

// TestDictionary follows ServiceNow's data dictionary (sys_dictionary: one
// collection entry per table, one entry per field with its internal_type
// and, for a reference, the table it references): a consumer can tell which
// fields a table has, and a field the instance lacks is not there.
func TestDictionary(t *testing.T) {
	_, srv := start(t, snowsim.WithUser("admin", "pw"))
	r := query(t, srv.URL, "sys_dictionary", "name=incident^elementINassignment_group,u_environment,work_notes,priority^ORDERBYelement",
		"element,internal_type,reference")
	want := []any{
		map[string]any{"element": "assignment_group", "internal_type": "reference", "reference": "sys_user_group"},
		map[string]any{"element": "priority", "internal_type": "integer", "reference": ""},
		map[string]any{"element": "u_environment", "internal_type": "string", "reference": ""},
		map[string]any{"element": "work_notes", "internal_type": "journal_input", "reference": ""},
	}
	if diff := cmp.Diff(want, r.Body["result"]); diff != "" {
		t.Errorf("sys_dictionary for incident (-want +got):\n%s", diff)
	}
	if got := query(t, srv.URL, "sys_dictionary", "name=sys_journal_field^element=", "internal_type").column(t, "internal_type"); !cmp.Equal(got, []string{"collection"}) {
		t.Errorf("sys_journal_field collection entry: %v, want [collection]", got)
	}
	if r := call(t, "POST", srv.URL+"/api/now/table/sys_dictionary", map[string]any{"name": "incident", "element": "u_x"}, "admin", "pw"); r.Status != 403 {
		t.Errorf("POST sys_dictionary: status %d, want 403", r.Status)
	}

	// An instance without the custom field: no dictionary entry, and a
	// query on it is an invalid term (ignored).
	_, bare := start(t, snowsim.WithUser("admin", "pw"), snowsim.WithoutField("incident", "u_environment"))
	if got := query(t, bare.URL, "sys_dictionary", "name=incident^element=u_environment", "element").column(t, "element"); len(got) != 0 {
		t.Errorf("without u_environment: dictionary entries %v, want none", got)
	}
}

// TestBusinessRuleRecords follows ServiceNow's "Business rules" (sys_script:
// table, active, filter condition, application scope) and the
// GlideCertificateEncryption - Global API reference (the class exists in
// the Global scope; a scoped application uses CertificateEncryption).
func TestBusinessRuleRecords(t *testing.T) {
	sim, srv := start(t, snowsim.WithUser("admin", "pw"))
	mac := `var k = GlideStringUtil.base64Encode('k'); gs.info(new %s().generateMac(k, 'HmacSHA256', 'x'));`
	for _, r := range []snowsim.Rule{
		{Name: "global mac", Table: "incident", Update: true, Script: strings.ReplaceAll(mac, "%s", "GlideCertificateEncryption")},
		{Name: "scoped mac", Table: "incident", Update: true, Scope: "x_snowgate", Script: strings.ReplaceAll(mac, "%s", "GlideCertificateEncryption")},
		{Name: "scoped equivalent", Table: "incident", Update: true, Scope: "x_snowgate", Script: strings.ReplaceAll(mac, "%s", "CertificateEncryption")},
		{Name: "switched off", Table: "change_request", Insert: true, Inactive: true, Condition: "active=true", Script: `gs.info('x')`},
	} {
		if err := sim.AddBusinessRule(r); err != nil {
			t.Fatal(err)
		}
	}
	rules := query(t, srv.URL, "sys_script", "ORDERBYname", "name,collection,active,sys_scope,sys_scope.scope,filter_condition,action_insert,action_update")
	want := []any{
		map[string]any{"name": "global mac", "collection": "incident", "active": "true", "sys_scope": "global", "sys_scope.scope": "global",
			"filter_condition": "", "action_insert": "false", "action_update": "true"},
		map[string]any{"name": "scoped equivalent", "collection": "incident", "active": "true", "sys_scope": scopeID(t, srv.URL), "sys_scope.scope": "x_snowgate",
			"filter_condition": "", "action_insert": "false", "action_update": "true"},
		map[string]any{"name": "scoped mac", "collection": "incident", "active": "true", "sys_scope": scopeID(t, srv.URL), "sys_scope.scope": "x_snowgate",
			"filter_condition": "", "action_insert": "false", "action_update": "true"},
		map[string]any{"name": "switched off", "collection": "change_request", "active": "false", "sys_scope": "global", "sys_scope.scope": "global",
			"filter_condition": "active=true", "action_insert": "true", "action_update": "false"},
	}
	if diff := cmp.Diff(want, rules.Body["result"]); diff != "" {
		t.Errorf("sys_script (-want +got):\n%s", diff)
	}

	if _, err := sim.Update("incident", "00000000000000000000000000000004", map[string]string{"priority": "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Insert("change_request", map[string]string{"short_description": "x"}); err != nil {
		t.Fatal(err)
	}
	// Three incident rules ran; the scoped one using the global class threw.
	if st := sim.Stats(); st.RulesFired != 3 || st.RuleErrors != 1 {
		t.Errorf("RulesFired %d RuleErrors %d, want 3 and 1 (GlideCertificateEncryption undefined in a scoped rule, the inactive rule not run)",
			st.RulesFired, st.RuleErrors)
	}
}

// scopeID returns the sys_id of the x_snowgate scope.
func scopeID(t *testing.T, base string) string {
	t.Helper()
	ids := query(t, base, "sys_scope", "scope=x_snowgate", "sys_id").column(t, "sys_id")
	if len(ids) != 1 {
		t.Fatalf("sys_scope x_snowgate: %v, want one record", ids)
	}
	return ids[0]
}

// TestGlobalRulesRunES5 follows ServiceNow's "JavaScript modes" (API
// reference, server-side scripting): global applications run in ES5
// Standards mode, scoped applications in ECMAScript 2021. A Global rule
// using let or an arrow function is saved but fails on every run; the same
// script in a scoped rule runs.
func TestGlobalRulesRunES5(t *testing.T) {
	tests := []struct {
		name, scope, script string
		fails               bool
	}{
		{"ES5 in Global", "", `var n = [1, 2].map(function (x) { return x * 2; }); gs.info('n ' + n);`, false},
		{"arrow function in Global", "", `var n = [1, 2].map(x => x * 2); gs.info('n ' + n);`, true},
		{"let in Global", "global", `let n = 1; gs.info('n ' + n);`, true},
		{"template literal in Global", "", "gs.info(`n ${1}`);", true},
		{"default parameter in Global", "", `function f(a, b = 2) { return a + b; } gs.info('n ' + f(1));`, true},
		{"arrow function in a scoped app", "x_snowgate", `var n = [1, 2].map(x => x * 2); gs.info('n ' + n);`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, _ := start(t)
			if err := sim.AddBusinessRule(snowsim.Rule{Name: "r", Table: "incident", Insert: true, Scope: tc.scope, Script: tc.script}); err != nil {
				t.Fatalf("AddBusinessRule: %v (an instance saves the rule)", err)
			}
			if _, err := sim.Insert("incident", map[string]string{"short_description": "x"}); err != nil {
				t.Fatal(err)
			}
			if st := sim.Stats(); st.RulesFired != 1 || (st.RuleErrors == 1) != tc.fails {
				t.Errorf("RulesFired %d RuleErrors %d, want 1 run that fails = %v", st.RulesFired, st.RuleErrors, tc.fails)
			}
		})
	}
}
