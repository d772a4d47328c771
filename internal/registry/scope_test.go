package registry

import "testing"

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
