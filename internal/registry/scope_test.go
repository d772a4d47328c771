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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.gw.ScopeQuery(); got != tc.want {
				t.Errorf("ScopeQuery() = %q, want %q", got, tc.want)
			}
		})
	}
}
