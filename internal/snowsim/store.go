package snowsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tables the simulator holds.
const (
	TableIncident      = "incident"
	TableChangeRequest = "change_request"
	TableUserGroup     = "sys_user_group"
	// TableJournal holds the entries of every journal field (comments, work
	// notes): element_id is the record's sys_id, element the field, name
	// the record's table.
	TableJournal = "sys_journal_field"
)

// Outcome errors of record operations.
var (
	ErrInvalidTable = errors.New("invalid table")
	ErrNoRecord     = errors.New("no record found")
	ErrDuplicate    = errors.New("duplicate sys_id")
)

// tableDef is a table's columns (with their defaults) and number prefix.
type tableDef struct {
	prefix   string
	firstNum int
	columns  map[string]string
}

var taskColumns = map[string]string{
	"number": "", "short_description": "", "description": "", "active": "true",
	"priority": "4", "impact": "3", "urgency": "3", "assignment_group": "",
	"assigned_to": "", "cmdb_ci": "", "u_environment": "", "opened_at": "",
	"closed_at": "", "work_notes": "", "comments": "", "sys_class_name": "",
	"sys_id": "", "sys_created_on": "", "sys_created_by": "", "sys_updated_on": "",
	"sys_updated_by": "", "sys_mod_count": "0",
}

func withColumns(base map[string]string, extra map[string]string) map[string]string {
	m := maps.Clone(base)
	maps.Copy(m, extra)
	return m
}

var tableDefs = mergeDefs(systemTableDefs, map[string]tableDef{
	TableIncident: {prefix: "INC", firstNum: 10001, columns: withColumns(taskColumns, map[string]string{
		"state": "1", "priority": "5", "caller_id": "", "category": "inquiry",
		"sys_class_name": "incident", "resolved_at": "", "close_code": "",
	})},
	TableChangeRequest: {prefix: "CHG", firstNum: 30001, columns: withColumns(taskColumns, map[string]string{
		"state": "-5", "type": "normal", "approval": "not requested", "risk": "3",
		"start_date": "", "end_date": "", "sys_class_name": "change_request",
	})},
	TableUserGroup: {columns: map[string]string{
		"name": "", "description": "", "active": "true", "email": "", "manager": "",
		"sys_id": "", "sys_created_on": "", "sys_created_by": "", "sys_updated_on": "",
		"sys_updated_by": "", "sys_mod_count": "0",
	}},
	TableJournal: {columns: map[string]string{
		"element_id": "", "element": "", "value": "", "name": "",
		"sys_id": "", "sys_created_on": "", "sys_created_by": "",
	}},
})

func mergeDefs(a, b map[string]tableDef) map[string]tableDef {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// references maps a reference field to the table it points at; the
// simulator resolves dot-walks ("assignment_group.name") through it.
var references = map[string]string{
	"assignment_group": TableUserGroup, "assigned_to": TableUser, "caller_id": TableUser,
	"cmdb_ci": TableCI, "user": TableUser, "role": TableRole, "manager": TableUser,
	"sys_scope": TableScope,
}

// journalFields are appended to sys_journal_field on write and read back
// as "" on the record.
var journalFields = map[string]bool{"work_notes": true, "comments": true}

// systemFields are set by the instance; writes to them are ignored.
var systemFields = map[string]bool{
	"sys_mod_count": true, "sys_created_on": true, "sys_created_by": true,
	"sys_updated_on": true, "sys_updated_by": true, "sys_class_name": true,
}

// inactiveStates are the states in which ServiceNow clears "active".
var inactiveStates = map[string]map[string]bool{
	TableIncident:      {"7": true, "8": true},
	TableChangeRequest: {"3": true, "4": true},
}

var sysIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

type record struct {
	fields map[string]string
}

type table struct {
	def  tableDef
	next int
	rows []*record
	byID map[string]*record
	// extra are fields beyond the table's default columns that a fixture
	// or a write introduced (custom u_ fields on a real instance).
	extra map[string]bool
	// removed are fields this instance lacks (WithoutField); writes to them
	// are ignored, as the Table API ignores fields a table does not have.
	removed map[string]bool
}

func (t *table) hasField(f string) bool {
	_, ok := t.def.columns[f]
	return ok || t.extra[f]
}

// noteField records a field written to the table.
func (t *table) noteField(f string) {
	if _, ok := t.def.columns[f]; !ok {
		t.extra[f] = true
	}
}

// fieldKnownLocked reports whether a table has a field; a dot-walk
// ("assignment_group.name") is known when the reference field is and the
// table it points at has the field.
func (s *Sim) fieldKnownLocked(tableName, field string) bool {
	t, ok := s.tables[tableName]
	if !ok {
		return false
	}
	ref, sub, dotted := strings.Cut(field, ".")
	if !t.hasField(ref) {
		return false
	}
	if !dotted {
		return true
	}
	target, ok := references[ref]
	return ok && !strings.Contains(sub, ".") && s.tables[target].hasField(sub)
}

func newTables() map[string]*table {
	ts := make(map[string]*table, len(tableDefs))
	for name, def := range tableDefs {
		ts[name] = &table{def: def, next: def.firstNum, byID: map[string]*record{}, extra: map[string]bool{}, removed: map[string]bool{}}
	}
	return ts
}

// NewSysID returns a random 32-hex-digit sys_id.
func NewSysID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// change is the result of a write: the record after it, the record before
// it (nil on insert) and whether anything was written.
type change struct {
	table   string
	op      string // "insert" or "update"
	after   map[string]string
	before  map[string]string
	written bool
}

// insertLocked adds a record. seed keeps system fields from the input
// (fixtures); a reference field given by display value (a group's name) is
// resolved to its sys_id only with displayInput
// (sysparm_input_display_value=true) or seed, else it is stored as given.
func (s *Sim) insertLocked(tableName string, in map[string]string, user string, seed, displayInput bool) (change, error) {
	t, ok := s.tables[tableName]
	if !ok {
		return change{}, fmt.Errorf("%w %s", ErrInvalidTable, tableName)
	}
	now := s.clock().UTC().Format(timeLayout)
	rec := &record{fields: maps.Clone(t.def.columns)}
	var notes []journalEntry
	for k, v := range in {
		switch {
		case t.removed[k]:
		case systemFields[k] && !seed:
		case journalFields[k]:
			if v != "" {
				notes = append(notes, journalEntry{element: k, value: v})
			}
		default:
			t.noteField(k)
			if seed || displayInput {
				if displayInput {
					v = s.resolveRefLocked(k, v)
				}
			}
			rec.fields[k] = v
		}
	}
	f := rec.fields
	switch id := f["sys_id"]; {
	case t.byID[id] != nil:
		return change{}, fmt.Errorf("insert %s %s: %w", tableName, id, ErrDuplicate)
	case !sysIDPattern.MatchString(id) && !(tableName == TableScope && id == GlobalScope):
		// ServiceNow makes a sys_id when none (or an unusable one) is given.
		f["sys_id"] = NewSysID()
	}
	if t.def.prefix != "" {
		if f["number"] == "" {
			f["number"] = fmt.Sprintf("%s%07d", t.def.prefix, t.next)
			t.next++
		} else if n, err := strconv.Atoi(strings.TrimPrefix(f["number"], t.def.prefix)); err == nil && n >= t.next {
			t.next = n + 1
		}
	}
	has := func(k string) bool { _, ok := t.def.columns[k]; return ok }
	for _, k := range []string{"sys_created_on", "sys_updated_on"} {
		if has(k) && (f[k] == "" || !seed) {
			f[k] = now
		}
	}
	if _, ok := f["opened_at"]; ok && f["opened_at"] == "" {
		f["opened_at"] = f["sys_created_on"]
	}
	if f["sys_created_by"] == "" || !seed {
		f["sys_created_by"] = user
	}
	if has("sys_updated_by") && (f["sys_updated_by"] == "" || !seed) {
		f["sys_updated_by"] = user
	}
	if has("sys_mod_count") && (!seed || f["sys_mod_count"] == "") {
		f["sys_mod_count"] = "0"
	}
	if _, given := in["active"]; !given && inactiveStates[tableName][f["state"]] {
		f["active"] = "false"
	}
	t.rows = append(t.rows, rec)
	t.byID[f["sys_id"]] = rec
	// Entries are ordered by field name so that a record given both journal
	// fields journals them in a stable order.
	slices.SortFunc(notes, func(a, b journalEntry) int { return strings.Compare(a.element, b.element) })
	for _, n := range notes {
		s.appendJournalLocked(tableName, f["sys_id"], n.element, n.value, f["sys_created_by"], f["sys_created_on"])
	}
	return change{table: tableName, op: "insert", after: maps.Clone(f), written: true}, nil
}

// updateLocked applies in to a record. As on ServiceNow, a write that
// changes nothing is not written: no sys_mod_count bump and no rules.
// displayInput resolves references given by display value, as for insert.
func (s *Sim) updateLocked(tableName, sysID string, in map[string]string, user string, displayInput bool) (change, error) {
	t, ok := s.tables[tableName]
	if !ok {
		return change{}, fmt.Errorf("%w %s", ErrInvalidTable, tableName)
	}
	rec := t.byID[sysID]
	if rec == nil {
		return change{}, fmt.Errorf("%s/%s: %w", tableName, sysID, ErrNoRecord)
	}
	before := maps.Clone(rec.fields)
	changed := false
	var notes []journalEntry
	for k, v := range in {
		switch {
		case t.removed[k]:
		case systemFields[k] || k == "sys_id":
		case journalFields[k]:
			if v != "" {
				notes = append(notes, journalEntry{element: k, value: v})
			}
		default:
			t.noteField(k)
			if displayInput {
				v = s.resolveRefLocked(k, v)
			}
			if old, ok := rec.fields[k]; !ok || old != v {
				rec.fields[k] = v
				changed = true
			}
		}
	}
	if !changed && len(notes) == 0 {
		return change{table: tableName, op: "update", after: before, before: before}, nil
	}
	f := rec.fields
	if _, given := in["active"]; !given && f["state"] != before["state"] {
		if inactiveStates[tableName][f["state"]] {
			f["active"] = "false"
		}
	}
	n, _ := strconv.Atoi(f["sys_mod_count"])
	f["sys_mod_count"] = strconv.Itoa(n + 1)
	now := s.clock().UTC().Format(timeLayout)
	f["sys_updated_on"] = now
	f["sys_updated_by"] = user
	// A journal entry is part of the update: the record's version moves and
	// update rules fire, as for any other field.
	slices.SortFunc(notes, func(a, b journalEntry) int { return strings.Compare(a.element, b.element) })
	for _, n := range notes {
		s.appendJournalLocked(tableName, sysID, n.element, n.value, user, now)
	}
	return change{table: tableName, op: "update", after: maps.Clone(f), before: before, written: true}, nil
}

// journalEntry is a value written to a journal field.
type journalEntry struct{ element, value string }

// appendJournalLocked adds one sys_journal_field entry for a record.
func (s *Sim) appendJournalLocked(tableName, sysID, element, value, user, at string) {
	t := s.tables[TableJournal]
	rec := &record{fields: map[string]string{
		"sys_id": NewSysID(), "element_id": sysID, "element": element, "value": value,
		"name": tableName, "sys_created_on": at, "sys_created_by": user,
	}}
	t.rows = append(t.rows, rec)
	t.byID[rec.fields["sys_id"]] = rec
}

// journalLocked returns the values journaled in a record's field, oldest
// first.
func (s *Sim) journalLocked(tableName, sysID, element string) []string {
	var out []string
	for _, r := range s.tables[TableJournal].rows {
		f := r.fields
		if f["element_id"] == sysID && f["element"] == element && f["name"] == tableName {
			out = append(out, f["value"])
		}
	}
	return out
}

// resolveRefLocked turns a reference given by display value (a group's or
// a user's name) into the sys_id it stands for, as the Table API does on
// write with sysparm_input_display_value=true; a value that names nothing
// is kept as given.
func (s *Sim) resolveRefLocked(field, v string) string {
	target, ok := references[field]
	if !ok || v == "" || sysIDPattern.MatchString(v) {
		return v
	}
	for _, r := range s.tables[target].rows {
		if r.fields["name"] == v {
			return r.fields["sys_id"]
		}
	}
	return v
}

// getterLocked reads a record's fields, resolving one level of dot-walk
// through a reference field.
func (s *Sim) getterLocked(fields map[string]string) func(string) string {
	return func(f string) string {
		ref, sub, ok := strings.Cut(f, ".")
		if !ok {
			return fields[f]
		}
		target, ok := references[ref]
		if !ok {
			return ""
		}
		r := s.tables[target].byID[fields[ref]]
		if r == nil {
			return ""
		}
		return r.fields[sub]
	}
}

func (s *Sim) deleteLocked(tableName, sysID string) error {
	t, ok := s.tables[tableName]
	if !ok {
		return fmt.Errorf("%w %s", ErrInvalidTable, tableName)
	}
	rec := t.byID[sysID]
	if rec == nil {
		return fmt.Errorf("%s/%s: %w", tableName, sysID, ErrNoRecord)
	}
	delete(t.byID, sysID)
	for i, r := range t.rows {
		if r == rec {
			t.rows = append(t.rows[:i], t.rows[i+1:]...)
			break
		}
	}
	return nil
}

// formatTime writes t the way ServiceNow writes date-times.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }
