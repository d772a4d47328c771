package snowsim

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadQuery is returned for an encoded query the simulator cannot parse.
var ErrBadQuery = errors.New("invalid encoded query")

// timeLayout is how ServiceNow writes date-times in the Table API (UTC when
// sysparm_display_value=false).
const timeLayout = "2006-01-02 15:04:05"

// Operators of an encoded query condition, longest first so that "!=" is
// not read as "=" and "NOT LIKE" not as "LIKE".
var operators = []string{
	opChangesFrom, opChangesTo, opChanges,
	"ISNOTEMPTY", "STARTSWITH", "ISEMPTY", "ENDSWITH", "NOT LIKE", "NOTLIKE",
	"BETWEEN", "NOT IN", "NOTIN", "LIKE", "IN", "!=", ">=", "<=", "=", ">", "<",
}

// The change operators of a Business Rule filter condition compare the
// record after the change with the record before it ("Operators available
// for filters and queries" in ServiceNow's documentation: changes, changes
// from, changes to). On an insert the record before has every field empty.
// ServiceNow documents them only for conditions evaluated on a change, and
// a database query has no record before: the simulator's Table API treats
// such a term as invalid (prune), dropping it, or answering no rows with
// glide.invalid_query.returns_no_rows.
const (
	opChanges     = "VALCHANGES"
	opChangesFrom = "CHANGESFROM"
	opChangesTo   = "CHANGESTO"
)

func isChangeOp(op string) bool { return op == opChanges || op == opChangesFrom || op == opChangesTo }

// canonicalOp folds spelling variants onto one operator.
var canonicalOp = map[string]string{"NOTLIKE": "NOT LIKE", "NOTIN": "NOT IN"}

// condition is one field/operator/value term.
type condition struct {
	field string
	op    string
	value string
}

// orderKey is one ORDERBY or ORDERBYDESC term.
type orderKey struct {
	field string
	desc  bool
}

// query is a parsed encoded query: alternatives separated by ^NQ, each an
// AND of OR-groups (ServiceNow binds ^OR tighter than ^), plus sort keys.
//
// caseSensitive says how strings compare, and the two evaluators differ on
// a real instance: a database query (Table API, GlideRecord) compares as
// the database's collation does, case-insensitively on the instance's
// default databases, while a Business Rule filter condition is evaluated
// in memory by GlideFilter, which is case-sensitive. The simulator sets it
// per use: Sim's WithCaseSensitiveQueries for the Table API, always true
// for rule conditions.
type query struct {
	alternatives  [][][]condition
	order         []orderKey
	caseSensitive bool
}

// parseQuery parses a ServiceNow encoded query such as
// "active=true^priority<=2^ORurgency=1^ORDERBYDESCsys_updated_on"; a term
// that does not parse is an error (Business Rule conditions).
func parseQuery(s string) (*query, error) {
	q, bad := parseTerms(s)
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrBadQuery, bad[0])
	}
	return q, nil
}

// parseTerms parses an encoded query, skipping the terms that do not parse
// and returning why each was skipped.
func parseTerms(s string) (q *query, bad []string) {
	q = &query{}
	if strings.TrimSpace(s) == "" {
		return q, nil
	}
	for _, alt := range strings.Split(s, "^NQ") {
		var groups [][]condition
		for _, term := range strings.Split(alt, "^") {
			switch {
			case term == "" || term == "EQ":
				continue
			case strings.HasPrefix(term, "ORDERBYDESC"):
				q.order = append(q.order, orderKey{field: strings.TrimPrefix(term, "ORDERBYDESC"), desc: true})
				continue
			case strings.HasPrefix(term, "ORDERBY"):
				q.order = append(q.order, orderKey{field: strings.TrimPrefix(term, "ORDERBY")})
				continue
			}
			or := strings.HasPrefix(term, "OR")
			c, err := parseCondition(strings.TrimPrefix(term, "OR"))
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			if or && len(groups) > 0 {
				groups[len(groups)-1] = append(groups[len(groups)-1], c)
			} else {
				groups = append(groups, []condition{c})
			}
		}
		if len(groups) > 0 {
			q.alternatives = append(q.alternatives, groups)
		}
	}
	return q, bad
}

// prune drops the conditions and sort keys on fields the table does not
// have, and the change operators, which need a record before the change
// that a database query does not have, as an instance drops the invalid
// part of an encoded query; it reports whether it dropped anything. An
// alternative left with no condition matches every record.
func (q *query) prune(known func(field string) bool) bool {
	dropped := false
	alts := q.alternatives[:0]
	for _, groups := range q.alternatives {
		kept := groups[:0]
		for _, group := range groups {
			g := slices.DeleteFunc(group, func(c condition) bool { return !known(c.field) || isChangeOp(c.op) })
			dropped = dropped || len(g) < len(group)
			if len(g) > 0 {
				kept = append(kept, g)
			}
		}
		if len(kept) == 0 {
			// Nothing left: this alternative, so the query, matches every
			// record.
			dropped = true
			alts = nil
			break
		}
		alts = append(alts, kept)
	}
	q.alternatives = alts
	// A sort key on an unknown field orders nothing; it is not counted as
	// an invalid condition.
	q.order = slices.DeleteFunc(q.order, func(k orderKey) bool { return !known(k.field) })
	return dropped
}

// parseCondition splits "fieldOPvalue". Field names are lower case
// (dot-walks included), operators upper case or symbols, which is what makes
// "assignment_group.nameINNetwork,Database" unambiguous.
func parseCondition(term string) (condition, error) {
	i := 0
	for i < len(term) && isFieldChar(term[i]) {
		i++
	}
	field, rest := term[:i], term[i:]
	if field == "" {
		return condition{}, fmt.Errorf("%w: term %q has no field", ErrBadQuery, term)
	}
	for _, op := range operators {
		if v, ok := strings.CutPrefix(rest, op); ok {
			if c, ok := canonicalOp[op]; ok {
				op = c
			}
			return condition{field: field, op: op, value: normaliseValue(v)}, nil
		}
	}
	return condition{}, fmt.Errorf("%w: term %q has no operator", ErrBadQuery, term)
}

func isFieldChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '.'
}

// dateGenerate matches the form list filters and clients use for dates:
// javascript:gs.dateGenerate('2026-01-02','12:00:00').
var dateGenerate = regexp.MustCompile(`javascript:gs\.dateGenerate\('([0-9-]+)','([0-9:]+)'\)`)

func normaliseValue(v string) string {
	return dateGenerate.ReplaceAllString(v, "$1 $2")
}

// match reports whether a record, read through get (which resolves
// dot-walked fields), satisfies the query. A change operator never holds:
// there is no record before.
func (q *query) match(get func(field string) string) bool {
	return q.matchChange(get, nil)
}

// matchChange reports whether a change satisfies the query: get reads the
// record after it, previous the record before it (nil for none).
func (q *query) matchChange(get, previous func(field string) string) bool {
	if len(q.alternatives) == 0 {
		return true
	}
	for _, groups := range q.alternatives {
		if matchAll(groups, get, previous, q.caseSensitive) {
			return true
		}
	}
	return false
}

func matchAll(groups [][]condition, get, previous func(string) string, cs bool) bool {
	for _, group := range groups {
		ok := false
		for _, c := range group {
			if isChangeOp(c.op) {
				ok = previous != nil && c.matchChange(get(c.field), previous(c.field), cs)
			} else {
				ok = c.match(get(c.field), cs)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// fieldKind is how a field's values compare.
type fieldKind int

const (
	kindString fieldKind = iota
	kindNumber
	kindDate
)

var fieldKinds = map[string]fieldKind{
	"priority": kindNumber, "state": kindNumber, "impact": kindNumber, "urgency": kindNumber,
	"risk": kindNumber, "sys_mod_count": kindNumber, "reassignment_count": kindNumber,
	"sys_created_on": kindDate, "sys_updated_on": kindDate, "opened_at": kindDate,
	"closed_at": kindDate, "resolved_at": kindDate, "start_date": kindDate,
	"end_date": kindDate, "due_date": kindDate,
}

func kindOf(field string) fieldKind {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	return fieldKinds[field]
}

// match reports whether value v satisfies the condition; cs makes string
// comparisons case-sensitive.
func (c condition) match(v string, cs bool) bool {
	kind := kindOf(c.field)
	fold := func(x string) string {
		if cs {
			return x
		}
		return strings.ToLower(x)
	}
	switch c.op {
	case "=":
		return equal(kind, v, c.value, cs)
	case "!=":
		return !equal(kind, v, c.value, cs)
	case ">", ">=", "<", "<=":
		n, ok := compare(kind, v, c.value, cs)
		if !ok {
			return false
		}
		switch c.op {
		case ">":
			return n > 0
		case ">=":
			return n >= 0
		case "<":
			return n < 0
		default:
			return n <= 0
		}
	case "IN", "NOT IN":
		in := false
		for _, want := range strings.Split(c.value, ",") {
			if equal(kind, v, want, cs) {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	case "LIKE":
		return strings.Contains(fold(v), fold(c.value))
	case "NOT LIKE":
		return !strings.Contains(fold(v), fold(c.value))
	case "STARTSWITH":
		return strings.HasPrefix(fold(v), fold(c.value))
	case "ENDSWITH":
		return strings.HasSuffix(fold(v), fold(c.value))
	case "ISEMPTY":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "BETWEEN":
		lo, hi, ok := strings.Cut(c.value, "@")
		if !ok {
			return false
		}
		a, ok1 := compare(kind, v, lo, cs)
		b, ok2 := compare(kind, v, hi, cs)
		return ok1 && ok2 && a >= 0 && b <= 0
	}
	return false
}

// matchChange reports whether a field going from was to v satisfies a
// change condition. A field changes when its stored value differs; the
// value of "changes from" and "changes to" compares as "is" does.
func (c condition) matchChange(v, was string, cs bool) bool {
	if v == was {
		return false
	}
	kind := kindOf(c.field)
	switch c.op {
	case opChanges:
		return true
	case opChangesFrom:
		return equal(kind, was, c.value, cs)
	case opChangesTo:
		return equal(kind, v, c.value, cs)
	}
	return false
}

// equal compares numbers and dates by value and strings case-insensitively,
// as the instance database does, or exactly when cs is set.
func equal(kind fieldKind, a, b string, cs bool) bool {
	if kind != kindString {
		if n, ok := compare(kind, a, b, cs); ok {
			return n == 0
		}
	}
	if cs {
		return a == b
	}
	return strings.EqualFold(a, b)
}

// compare orders two values of a field; ok is false when either does not
// parse as the field's type (an empty number or date matches no range).
func compare(kind fieldKind, a, b string, cs bool) (int, bool) {
	switch kind {
	case kindNumber:
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case kindDate:
		if len(a) == len(b) && (len(a) == len(timeLayout) || len(a) == len("2006-01-02")) && a[4] == '-' && b[4] == '-' {
			// Same fixed-width layout: text order is time order.
			return strings.Compare(a, b), true
		}
		x, ok1 := parseDate(a)
		y, ok2 := parseDate(b)
		if !ok1 || !ok2 {
			return 0, false
		}
		return x.Compare(y), true
	}
	if cs {
		return strings.Compare(a, b), true
	}
	return compareFold(a, b), true
}

// compareFold orders strings case-insensitively without allocating for
// ASCII, the common case for field values.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if x >= 0x80 || y >= 0x80 {
			return strings.Compare(strings.ToLower(a[i:]), strings.ToLower(b[i:]))
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return int(x) - int(y)
		}
	}
	return len(a) - len(b)
}

func cmpOrdered(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{timeLayout, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// sortRows orders rows by the query's ORDERBY keys; rows equal on every key
// keep their insertion order. get reads field f of a row; keys are read
// once per row, not once per comparison.
func sortRows[T any](q *query, rows []T, get func(row T, f string) string) {
	if len(q.order) == 0 {
		return
	}
	type keyed struct {
		row  T
		pos  int
		keys []string
	}
	ks := make([]keyed, len(rows))
	for i, r := range rows {
		ks[i] = keyed{row: r, pos: i, keys: make([]string, len(q.order))}
		for j, k := range q.order {
			ks[i].keys[j] = get(r, k.field)
		}
	}
	kinds := make([]fieldKind, len(q.order))
	for j, k := range q.order {
		kinds[j] = kindOf(k.field)
	}
	// The position tiebreak makes the order total, so the faster unstable
	// sort gives the stable result.
	slices.SortFunc(ks, func(a, b keyed) int {
		for j, k := range q.order {
			if c := sortCompare(kinds[j], a.keys[j], b.keys[j], q.caseSensitive); c != 0 {
				if k.desc {
					return -c
				}
				return c
			}
		}
		return a.pos - b.pos
	})
	for i := range ks {
		rows[i] = ks[i].row
	}
}

// sortCompare puts empty values first (as the database sorts NULLs), then
// typed values, then falls back to text.
func sortCompare(kind fieldKind, a, b string, cs bool) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	case b == "":
		return 1
	}
	if n, ok := compare(kind, a, b, cs); ok {
		return n
	}
	return compareFold(a, b)
}
