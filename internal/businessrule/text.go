package businessrule

import (
	"fmt"
	"strings"

	"github.com/snowgate/snowgate/internal/registry"
)

// Text is the block printed for an administrator: the form settings, then
// the script to paste into the Advanced tab. The Application line says how
// to switch to Global first: a new rule takes the application the
// administrator's session is in.
func (r Rule) Text() string {
	var b strings.Builder
	line := func(label string, value any) { fmt.Fprintf(&b, "  %-17s %v\n", label+":", value) }
	b.WriteString("--- ServiceNow Business Rule configuration ---\n")
	line("Name", r.Name)
	line("Table", fmt.Sprintf("%s [%s]", r.Table, r.Table))
	if r.Application == Application {
		line("Application", ApplicationLabel)
		fmt.Fprintf(&b, "  %-17s (before creating the rule, switch to Global: the application picker in the banner,\n", "")
		fmt.Fprintf(&b, "  %-17s  or Settings > Developer > Application; the form's Application must read Global)\n", "")
	} else {
		line("Application", r.Application)
	}
	line("Active", r.Active)
	line("Advanced", r.Advanced)
	line("When", r.When)
	line("Order", r.Order)
	line("Insert", r.Insert)
	line("Update", r.Update)
	line("Filter Conditions", r.Condition)
	fmt.Fprintf(&b, "  %-17s (%s)\n", "", r.ConditionText)
	b.WriteString("--- Script (paste into Advanced tab) ---\n")
	b.WriteString(r.Script)
	return b.String()
}

// operators of encoded queries, longest first so that a prefix never wins.
var operators = []struct{ op, words string }{
	// The change operators of filter conditions (registry.RuleCondition).
	{registry.OpChangesFrom, "changes from"},
	{registry.OpChangesTo, "changes to"},
	{registry.OpChanges, "changes"},
	{"NOT LIKE", "does not contain"},
	{"ISNOTEMPTY", "is not empty"},
	{"STARTSWITH", "starts with"},
	{"ENDSWITH", "ends with"},
	{"ISEMPTY", "is empty"},
	{"NOT IN", "is not one of"},
	{"LIKE", "contains"},
	{"IN", "is one of"},
	{"!=", "is not"},
	{">=", "is at least"},
	{"<=", "is at most"},
	{"=", "is"},
	{">", "is more than"},
	{"<", "is less than"},
}

// Describe renders an encoded query the way ServiceNow's condition builder
// reads it, e.g. "active=true^u_environmentINprod,test" becomes
// "Active is true AND Environment is one of prod, test". An OR group
// among other terms is put in parentheses, as the builder nests it:
// "active=true^ORactiveCHANGESTOfalse^u_environmentINprod" reads "(Active
// is true OR Active changes to false) AND Environment is one of prod".
// Terms it does not understand are shown as they are.
func Describe(query string) string {
	if query == "" {
		return "all records"
	}
	var out []string
	for i, q := range strings.Split(query, "^NQ") {
		// ^OR binds tighter than ^: groups of ORed terms, ANDed.
		var groups [][]string
		for j, t := range strings.Split(q, "^") {
			if rest, ok := strings.CutPrefix(t, "OR"); ok && j > 0 && !startsWithOperator(rest) {
				groups[len(groups)-1] = append(groups[len(groups)-1], describeTerm(rest))
				continue
			}
			groups = append(groups, []string{describeTerm(t)})
		}
		terms := make([]string, len(groups))
		for j, g := range groups {
			terms[j] = strings.Join(g, " OR ")
			if len(g) > 1 && len(groups) > 1 {
				terms[j] = "(" + terms[j] + ")"
			}
		}
		s := strings.Join(terms, " AND ")
		if i > 0 {
			s = "OR (" + s + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func startsWithOperator(s string) bool {
	for _, o := range operators {
		if strings.HasPrefix(s, o.op) {
			return true
		}
	}
	return false
}

func describeTerm(t string) string {
	end := strings.IndexFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.')
	})
	if end <= 0 {
		return t
	}
	field, rest := t[:end], t[end:]
	for _, o := range operators {
		value, ok := strings.CutPrefix(rest, o.op)
		if !ok {
			continue
		}
		if strings.HasSuffix(o.op, "IN") {
			value = strings.Join(strings.Split(value, ","), ", ")
		}
		return strings.TrimSpace(fieldLabel(field) + " " + o.words + " " + value)
	}
	return t
}

// labels are the labels of system fields that do not follow their names.
var labels = map[string]string{"sys_mod_count": "Updates"}

// fieldLabel turns a column name into its usual label: assignment_group.name
// becomes "Assignment group.Name", u_environment "Environment".
func fieldLabel(field string) string {
	parts := strings.Split(field, ".")
	for i, p := range parts {
		if l, ok := labels[p]; ok {
			parts[i] = l
			continue
		}
		p = strings.ReplaceAll(strings.TrimPrefix(p, "u_"), "_", " ")
		if p != "" {
			p = strings.ToUpper(p[:1]) + p[1:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}
