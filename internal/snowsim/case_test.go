package snowsim_test

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestRuleConditionCaseSensitive follows the GlideFilter - Scoped, Global
// API reference (ServiceNow docs, "Case sensitivity"): a filter condition
// evaluated in memory is case-sensitive, unlike a GlideRecord query. A
// Business Rule whose condition names the group "network" never fires for
// the group "Network".
func TestRuleConditionCaseSensitive(t *testing.T) {
	tests := []struct {
		condition string
		fires     bool
	}{
		{"assignment_group.name=Network", true},
		{"assignment_group.name=network", false},
		{"assignment_group.nameINnetwork,database", false},
		{"assignment_group.nameINNetwork,Database", true},
		{"short_descriptionLIKEdisk", false},
		{"short_descriptionLIKEDisk", true},
		{"assignment_group.name!=network", true},
	}
	for _, tc := range tests {
		t.Run(tc.condition, func(t *testing.T) {
			sim, _ := start(t)
			if err := sim.AddBusinessRule(snowsim.Rule{
				Name: "r", Table: "incident", Insert: true, Condition: tc.condition, Script: `gs.info('fired')`,
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := sim.Insert("incident", map[string]string{
				"short_description": "Disk full", "assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
			}); err != nil {
				t.Fatal(err)
			}
			if got := sim.Stats().RulesFired == 1; got != tc.fires {
				t.Errorf("rule with condition %q fired = %v, want %v", tc.condition, got, tc.fires)
			}
		})
	}
}

// TestQueryCase follows the GlideFilter - Scoped, Global API reference
// ("GlideRecord queries are case-insensitive") and "Set case and accent
// sensitivity on a per-column basis" (ServiceNow docs, System
// localization): database text matches ignore case by default; an instance
// made case-sensitive (WithCaseSensitiveQueries) matches exactly.
func TestQueryCase(t *testing.T) {
	tests := []struct {
		query         string
		insensitive   []string
		caseSensitive []string
	}{
		{"short_description=database SLOW", []string{"INC0010002"}, []string{}},
		{"short_description=Database slow", []string{"INC0010002"}, []string{"INC0010002"}},
		{"assignment_group.name=network", []string{"INC0010001", "INC0010003"}, []string{}},
		{"short_descriptionLIKErouter", []string{"INC0010001", "INC0010003"}, []string{"INC0010003"}},
		{"short_descriptionSTARTSWITHROUTER", []string{"INC0010001", "INC0010003"}, []string{}},
	}
	for _, cs := range []bool{false, true} {
		_, srv := start(t, snowsim.WithCaseSensitiveQueries(cs))
		for _, tc := range tests {
			want := tc.insensitive
			if cs {
				want = tc.caseSensitive
			}
			r := call(t, "GET", srv.URL+"/api/now/table/incident?sysparm_query="+url.QueryEscape(tc.query), nil)
			if diff := cmp.Diff(want, r.column(t, "number")); diff != "" {
				t.Errorf("case-sensitive=%v query %q (-want +got):\n%s", cs, tc.query, diff)
			}
		}
	}
}
