package registry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScopeQuery(t *testing.T) {
	tests := []struct {
		name string
		gw   Gateway
		want string
	}{
		{"no filters", Gateway{}, "active=true"},
		{"group", Gateway{AssignmentGroupFilter: "Network"}, "active=true^assignment_group.nameINNetwork"},
		{"groups and envs", Gateway{AssignmentGroupFilter: "Network, DB ,", EnvironmentFilter: "prod"},
			"active=true^assignment_group.nameINNetwork,DB^u_environmentINprod"},
		{"groups resolved to sys_ids", Gateway{AssignmentGroupFilter: "Network,DB", AssignmentGroupIDs: []string{"287ebd7da9fe198100f92cc8d1d2154e", "287ee6fea9fe198100ada7950d0b1b73"}},
			"active=true^assignment_groupIN287ebd7da9fe198100f92cc8d1d2154e,287ee6fea9fe198100ada7950d0b1b73"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.gw.ScopeQuery(); got != tc.want {
				t.Errorf("ScopeQuery() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRuleCondition(t *testing.T) {
	const a, b = "287ebd7da9fe198100f92cc8d1d2154e", "287ee6fea9fe198100ada7950d0b1b73"
	tests := []struct {
		name string
		gw   Gateway
		want []string // the ^NQ alternatives
	}{
		{"no filters", Gateway{}, []string{
			"active=true",
			"activeCHANGESTOfalse^sys_mod_count>0",
		}},
		{"groups by name", Gateway{AssignmentGroupFilter: "Network"}, []string{
			"active=true^assignment_group.nameINNetwork",
			"activeCHANGESTOfalse^sys_mod_count>0^assignment_group.nameINNetwork^ORassignment_groupVALCHANGES",
			"assignment_groupVALCHANGES^sys_mod_count>0^active=true^ORactiveCHANGESTOfalse",
		}},
		{"groups by sys_id and environments", Gateway{AssignmentGroupFilter: "Network,DB", AssignmentGroupIDs: []string{a, b}, EnvironmentFilter: "prod, test"}, []string{
			"active=true^assignment_groupIN" + a + "," + b + "^u_environmentINprod,test",
			"activeCHANGESTOfalse^sys_mod_count>0" +
				"^assignment_groupIN" + a + "," + b + "^ORassignment_groupCHANGESFROM" + a + "^ORassignment_groupCHANGESFROM" + b +
				"^u_environmentINprod,test^ORu_environmentCHANGESFROMprod^ORu_environmentCHANGESFROMtest",
			"assignment_groupCHANGESFROM" + a + "^ORassignment_groupCHANGESFROM" + b + "^sys_mod_count>0" +
				"^active=true^ORactiveCHANGESTOfalse" +
				"^u_environmentINprod,test^ORu_environmentCHANGESFROMprod^ORu_environmentCHANGESFROMtest",
			"u_environmentCHANGESFROMprod^ORu_environmentCHANGESFROMtest^sys_mod_count>0" +
				"^active=true^ORactiveCHANGESTOfalse" +
				"^assignment_groupIN" + a + "," + b + "^ORassignment_groupCHANGESFROM" + a + "^ORassignment_groupCHANGESFROM" + b,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Split(tc.gw.RuleCondition(), "^NQ")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("RuleCondition() alternatives (-want +got):\n%s", diff)
			}
			// The rule selects what the reconciler selects, and more.
			if got[0] != tc.gw.ScopeQuery() {
				t.Errorf("RuleCondition() starts with %q, want ScopeQuery() %q", got[0], tc.gw.ScopeQuery())
			}
		})
	}
}
