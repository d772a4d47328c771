package snowsim

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/dop251/goja"
)

// ErrBadRule is returned by AddBusinessRule for a rule that cannot run.
var ErrBadRule = errors.New("invalid business rule")

// Rule is an "after" Business Rule: when a record of Table is inserted or
// updated (per Insert and Update) and matches Condition (an encoded query,
// evaluated against the record after the change, comparing strings
// case-sensitively as filter conditions do; its change operators,
// VALCHANGES, CHANGESFROM and CHANGESTO, compare it with the record before
// the change, all empty on an insert), Script runs with
// current, previous, gs, sn_ws.RESTMessageV2 and the Glide classes.
//
// Scope is the rule's application scope: "" or "global" for Global, else a
// scoped application's scope name ("x_acme_app"). As on an instance,
// GlideCertificateEncryption exists only in Global; scoped scripts have
// CertificateEncryption; and a Global rule runs in ES5 Standards mode: a
// script using later syntax (let, const, arrow functions, template
// literals, classes…) is accepted but fails with a syntax error on every
// run, while a scoped rule runs ECMAScript 2021. An Inactive rule never
// runs. Registered rules read
// back through the Table API as sys_script records.
type Rule struct {
	Name      string
	Table     string
	Condition string
	Script    string
	Insert    bool
	Update    bool
	Scope     string
	Inactive  bool
}

type compiledRule struct {
	Rule
	cond *query
	prog *goja.Program
	// notES5 names the ES2015+ construct that makes a Global rule's script
	// fail in ES5 Standards mode ("" when it is plain ES5 or scoped).
	notES5 string
	sysID  string // its sys_script record
	added  string // when it was first added
}

// AddBusinessRule registers a rule, replacing one of the same name. It
// fails if the table is unknown, the condition does not parse or the
// script is not valid JavaScript.
func (s *Sim) AddBusinessRule(rule Rule) error {
	if _, ok := tableDefs[rule.Table]; !ok {
		return fmt.Errorf("%w %q: %w %s", ErrBadRule, rule.Name, ErrInvalidTable, rule.Table)
	}
	if !rule.Insert && !rule.Update {
		return fmt.Errorf("%w %q: fires on neither insert nor update", ErrBadRule, rule.Name)
	}
	cond, err := parseQuery(rule.Condition)
	if err != nil {
		return fmt.Errorf("%w %q: condition: %w", ErrBadRule, rule.Name, err)
	}
	// A filter condition is evaluated by GlideFilter, which compares
	// strings case-sensitively whatever the database does: a condition
	// assignment_group.name=network never matches the group "Network".
	cond.caseSensitive = true
	prog, err := goja.Compile(rule.Name, rule.Script, false)
	if err != nil {
		return fmt.Errorf("%w %q: script: %w", ErrBadRule, rule.Name, err)
	}
	cr := &compiledRule{Rule: rule, cond: cond, prog: prog, sysID: NewSysID(), added: formatTime(s.clock())}
	if rule.Scope == "" || rule.Scope == GlobalScope {
		// Saved as an instance saves it; every run then fails to compile.
		if cr.notES5, err = es5Violation(rule.Name, rule.Script); err != nil {
			return fmt.Errorf("%w %q: script: %w", ErrBadRule, rule.Name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.syncScriptsLocked()
	for i, r := range s.rules {
		if r.Name == rule.Name {
			cr.sysID, cr.added = r.sysID, r.added
			s.rules[i] = cr
			return nil
		}
	}
	s.rules = append(s.rules, cr)
	return nil
}

// RemoveBusinessRule unregisters a rule; it reports whether one existed.
func (s *Sim) RemoveBusinessRule(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if r.Name == name {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
			s.syncScriptsLocked()
			return true
		}
	}
	return false
}

// fireRules runs the rules a written change triggers. Conditions are
// checked under the read lock (dot-walks read other tables); scripts run
// outside it, in registration order, and their errors are logged, never
// returned: a broken script must not fail the Table API call.
func (s *Sim) fireRules(c change, user string) {
	if !c.written {
		return
	}
	var due []*compiledRule
	s.mu.RLock()
	get, previous := s.getterLocked(c.after), s.getterLocked(c.before)
	for _, r := range s.rules {
		if r.Inactive || r.Table != c.table || (c.op == "insert" && !r.Insert) || (c.op == "update" && !r.Update) {
			continue
		}
		if r.cond.matchChange(get, previous) {
			due = append(due, r)
		}
	}
	s.mu.RUnlock()
	for _, r := range due {
		runs := 1
		if s.duplicateRule() {
			runs = 2
		}
		for range runs {
			err := s.runScript(r, c, user)
			s.count(func(st *Stats) {
				st.RulesFired++
				if err != nil {
					st.RuleErrors++
				}
			})
			if err != nil {
				s.logger.Error("business rule failed", slog.String("rule", r.Name),
					slog.String("table", c.table), slog.String("sys_id", c.after["sys_id"]),
					slog.String("error", err.Error()))
			}
		}
	}
}
