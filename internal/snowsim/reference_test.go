package snowsim_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestReferenceWrites follows ServiceNow's "Display values" (Reference
// field type: a reference stores the sys_id of the referenced record, the
// UI shows its display value) and the Table API reference (the
// sysparm_input_display_value and sysparm_exclude_reference_link
// parameters): a write stores a reference as given unless asked to resolve
// display values; a read gives {link, value} unless links are excluded;
// every value, booleans and numbers included, reads as a string.
func TestReferenceWrites(t *testing.T) {
	sim, srv := start(t, snowsim.WithUser("admin", "pw"), snowsim.WithUser("Jane Doe", "pw"))
	base := srv.URL + "/api/now/table/incident"
	jane := snowsim.UserSysID("Jane Doe")

	raw := call(t, "POST", base+"?sysparm_exclude_reference_link=true", map[string]any{
		"short_description": "by name, as is", "assignment_group": "Network", "caller_id": "Jane Doe",
	}, "admin", "pw").result(t)
	if raw["assignment_group"] != "Network" || raw["caller_id"] != "Jane Doe" {
		t.Errorf("names written without sysparm_input_display_value: assignment_group %v caller_id %v, want both stored as given",
			raw["assignment_group"], raw["caller_id"])
	}
	if got := sim.Records("incident"); len(got) != 5 {
		t.Fatalf("%d incidents, want 5", len(got))
	}

	resolved := call(t, "POST", base+"?sysparm_exclude_reference_link=true&sysparm_input_display_value=true", map[string]any{
		"short_description": "by name, resolved", "assignment_group": "Network", "caller_id": "Jane Doe", "priority": 2, "active": true,
	}, "admin", "pw").result(t)
	for k, want := range map[string]any{"assignment_group": groupNetwork, "caller_id": jane, "priority": "2", "active": "true"} {
		if resolved[k] != want {
			t.Errorf("with sysparm_input_display_value=true: %s = %#v, want %#v", k, resolved[k], want)
		}
	}
	id := resolved["sys_id"].(string)

	byID := call(t, "PATCH", base+"/"+id, map[string]any{"assigned_to": jane, "cmdb_ci": "0123456789abcdef0123456789abcdef"}, "admin", "pw").result(t)
	want := map[string]any{
		"assigned_to": map[string]any{"link": srv.URL + "/api/now/table/sys_user/" + jane, "value": jane},
		"cmdb_ci": map[string]any{"link": srv.URL + "/api/now/table/cmdb_ci/0123456789abcdef0123456789abcdef",
			"value": "0123456789abcdef0123456789abcdef"},
		"assignment_group": map[string]any{"link": srv.URL + "/api/now/table/sys_user_group/" + groupNetwork, "value": groupNetwork},
	}
	for k, w := range want {
		if diff := cmp.Diff(w, byID[k]); diff != "" {
			t.Errorf("%s read with links (-want +got):\n%s", k, diff)
		}
	}
	if byID["sys_mod_count"] != "1" || byID["priority"] != "2" {
		t.Errorf("sys_mod_count %#v priority %#v, want the strings \"1\" and \"2\"", byID["sys_mod_count"], byID["priority"])
	}
}
