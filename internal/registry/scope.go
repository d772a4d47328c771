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
// gateway acts on. The reconciler's query uses it, and the Business Rule's
// filter condition (RuleCondition) starts with it, so they select the same
// records.
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

// Change operators of a Business Rule filter condition: they compare the
// record after the change with the record before it (previous), so they
// mean nothing in a database query. ServiceNow documents them in
// "Operators available for filters and queries" (Now Platform user
// interface, condition builder): VALCHANGES "changes", CHANGESFROM
// "changes from", CHANGESTO "changes to".
const (
	OpChanges     = "VALCHANGES"
	OpChangesFrom = "CHANGESFROM"
	OpChangesTo   = "CHANGESTO"
)

// RuleCondition is the Business Rule's filter condition: ScopeQuery, or a
// record that has just left the scope. A filter condition is evaluated on
// the record after the change, so ScopeQuery alone never fires for a
// ticket closed (active turns false) or moved to another group or
// environment, and the engine would hear of it only from the reconciler.
//
// Each of ScopeQuery's terms is a factor of "was in scope before the
// change": the term holds now, or the field just changed away from a
// value the term accepts (active changes to false; the group changes
// from one of the filter's groups; the environment changes from one of
// the filter's environments). The rule fires when every factor holds: the
// first alternative is ScopeQuery itself, and each further one has one
// field that just left the filter while the others were (or still are)
// in it. A ticket that was never in scope therefore never fires it.
// Leaving is something an update does: those alternatives also require
// sys_mod_count>0, since on an insert every field "changes" (from empty).
// The change operators need the record before the change, which an
// "after" rule has (businessrule.When); an async rule would not.
//
// A group filter by name (not resolved to sys_ids) can only say "the
// group changes": the previous value of a dot-walked field is not
// something a condition can compare, so such a gateway also hears of
// moves between two groups outside its filter; the processor finds them
// out of scope.
func (g Gateway) RuleCondition() string {
	type factor struct {
		now  string   // the ScopeQuery term
		left []string // the ways of having just left it, ORed
	}
	factors := []factor{{now: "active=true", left: []string{"active" + OpChangesTo + "false"}}}
	if g.GroupsByID() {
		f := factor{now: FieldAssignmentGroup + "IN" + strings.Join(g.AssignmentGroupIDs, ",")}
		for _, id := range g.AssignmentGroupIDs {
			f.left = append(f.left, FieldAssignmentGroup+OpChangesFrom+id)
		}
		factors = append(factors, f)
	} else if groups := g.AssignmentGroups(); len(groups) > 0 {
		factors = append(factors, factor{
			now:  FieldAssignmentGroupName + "IN" + strings.Join(groups, ","),
			left: []string{FieldAssignmentGroup + OpChanges},
		})
	}
	if envs := g.Environments(); len(envs) > 0 {
		f := factor{now: FieldEnvironment + "IN" + strings.Join(envs, ",")}
		for _, e := range envs {
			f.left = append(f.left, FieldEnvironment+OpChangesFrom+e)
		}
		factors = append(factors, f)
	}
	alternatives := []string{g.ScopeQuery()}
	for i, leaving := range factors {
		terms := []string{strings.Join(leaving.left, "^OR"), "sys_mod_count>0"}
		for j, other := range factors {
			if j != i {
				terms = append(terms, strings.Join(append([]string{other.now}, other.left...), "^OR"))
			}
		}
		alternatives = append(alternatives, strings.Join(terms, "^"))
	}
	return strings.Join(alternatives, "^NQ")
}
