package registry

import "strings"

// ServiceNow fields the scope filters apply to. The assignment group is
// matched by name (what operators type) through a dot-walked field, which
// ServiceNow accepts in encoded queries, Business Rule conditions and
// sysparm_fields alike. The environment is the common custom field
// u_environment on the task record.
const (
	FieldAssignmentGroupName = "assignment_group.name"
	FieldEnvironment         = "u_environment"
)

// AssignmentGroups returns the gateway's assignment group filter as a list
// (the flag takes a comma-separated list); empty means any group.
func (g Gateway) AssignmentGroups() []string { return splitList(g.AssignmentGroupFilter) }

// Environments returns the gateway's environment filter as a list; empty
// means any environment.
func (g Gateway) Environments() []string { return splitList(g.EnvironmentFilter) }

// ScopeQuery is the ServiceNow encoded query selecting the records this
// gateway acts on. The Business Rule's filter conditions and the
// reconciler's query both use it, so they select the same records.
func (g Gateway) ScopeQuery() string {
	parts := []string{"active=true"}
	if groups := g.AssignmentGroups(); len(groups) > 0 {
		parts = append(parts, FieldAssignmentGroupName+"IN"+strings.Join(groups, ","))
	}
	if envs := g.Environments(); len(envs) > 0 {
		parts = append(parts, FieldEnvironment+"IN"+strings.Join(envs, ","))
	}
	return strings.Join(parts, "^")
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
