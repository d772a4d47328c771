package registry

import "strings"

// ServiceNow fields the scope filters apply to. The assignment group is a
// reference: matched by sys_id when the gateway's filter was resolved at
// registration, else (a gateway registered offline, or before filters were
// resolved) by name through a dot-walked field. Business Rule conditions
// compare strings case-sensitively, so a name matches only as spelled on
// the instance; a sys_id does not have that problem. The environment is
// the common custom field u_environment on the task record.
const (
	FieldAssignmentGroup     = "assignment_group"
	FieldAssignmentGroupName = "assignment_group.name"
	FieldEnvironment         = "u_environment"
)

// AssignmentGroups returns the gateway's assignment group filter as typed,
// as a list (the flag takes a comma-separated list); empty means any group.
func (g Gateway) AssignmentGroups() []string { return splitList(g.AssignmentGroupFilter) }

// GroupsByID reports whether the gateway's group filter is matched by
// sys_id (resolved at registration) rather than by name.
func (g Gateway) GroupsByID() bool { return len(g.AssignmentGroupIDs) > 0 }

// Environments returns the gateway's environment filter as a list; empty
// means any environment.
func (g Gateway) Environments() []string { return splitList(g.EnvironmentFilter) }

// EscalationGroupRef is the escalation group to assign to: its sys_id when
// resolved at registration, else the group as typed.
func (g Gateway) EscalationGroupRef() string {
	if g.EscalationGroupID != "" {
		return g.EscalationGroupID
	}
	return g.EscalationGroup
}

// ScopeQuery is the ServiceNow encoded query selecting the records this
// gateway acts on. The Business Rule's filter conditions and the
// reconciler's query both use it, so they select the same records.
func (g Gateway) ScopeQuery() string {
	parts := []string{"active=true"}
	if g.GroupsByID() {
		parts = append(parts, FieldAssignmentGroup+"IN"+strings.Join(g.AssignmentGroupIDs, ","))
	} else if groups := g.AssignmentGroups(); len(groups) > 0 {
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
