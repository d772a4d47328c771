package snowsim

import (
	"crypto/md5"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
)

// System tables the simulator holds, enough for a consumer to check an
// instance's setup: who the integration user is (its time zone, its
// roles), which groups and fields exist, and which Business Rules are in
// place.
const (
	TableUser       = "sys_user"
	TableRole       = "sys_user_role"
	TableUserRole   = "sys_user_has_role"
	TableDictionary = "sys_dictionary"
	TableScript     = "sys_script"
	TableScope      = "sys_scope"
	// TableCI is the configuration item base table cmdb_ci references.
	TableCI = "cmdb_ci"
)

// GlobalScope is the sys_id of the Global application scope, as on every
// instance.
const GlobalScope = "global"

// DefaultUserTimeZone is the time_zone of the users the simulator creates.
// On a real instance a new user's time zone is empty (the system's, often
// not UTC); the simulator's users are in UTC unless WithUserTimeZone says
// otherwise, which is what an integration user should be set to.
const DefaultUserTimeZone = "UTC"

// DefaultUserRoles are the roles of a user added with WithUser or
// WithWebServiceUser unless WithUserRoles says otherwise: itil, which reads
// and writes incidents and change requests and their work notes.
var DefaultUserRoles = []string{"itil"}

// generatedTables are kept by the simulator from its own state; the Table
// API reads them and refuses writes.
var generatedTables = map[string]bool{TableDictionary: true, TableScript: true}

var systemTableDefs = map[string]tableDef{
	TableUser: {columns: sysColumns(map[string]string{
		"user_name": "", "name": "", "first_name": "", "last_name": "", "email": "",
		"time_zone": "", "active": "true", "locked_out": "false", "web_service_access_only": "false",
	})},
	TableRole: {columns: sysColumns(map[string]string{"name": "", "description": ""})},
	TableUserRole: {columns: sysColumns(map[string]string{
		"user": "", "role": "", "state": "active", "inherited": "false",
	})},
	TableDictionary: {columns: sysColumns(map[string]string{
		"name": "", "element": "", "internal_type": "", "column_label": "", "reference": "", "active": "true",
	})},
	TableScript: {columns: sysColumns(map[string]string{
		"name": "", "collection": "", "active": "true", "sys_scope": "", "script": "",
		"filter_condition": "", "when": "after", "action_insert": "false", "action_update": "false",
		"advanced": "true", "order": "100",
	})},
	TableScope: {columns: sysColumns(map[string]string{"scope": "", "name": "", "version": ""})},
	TableCI: {columns: sysColumns(map[string]string{
		"name": "", "sys_class_name": "cmdb_ci", "operational_status": "1", "ip_address": "", "fqdn": "",
	})},
}

func sysColumns(extra map[string]string) map[string]string {
	return withColumns(map[string]string{
		"sys_id": "", "sys_created_on": "", "sys_created_by": "", "sys_updated_on": "",
		"sys_updated_by": "", "sys_mod_count": "0",
	}, extra)
}

// WithUserTimeZone sets a user's sys_user.time_zone (default
// DefaultUserTimeZone), for instance "America/Los_Angeles".
func WithUserTimeZone(user, tz string) Option {
	return func(s *Sim) { s.userTZ[user] = tz }
}

// WithUserRoles sets a user's roles (sys_user_has_role), replacing
// DefaultUserRoles.
func WithUserRoles(user string, roles ...string) Option {
	return func(s *Sim) { s.userRoles[user] = slices.Clone(roles) }
}

// WithoutField removes a field from a table's columns, as on an instance
// that lacks it (u_environment is a custom field); queries on it are then
// invalid terms and sys_dictionary does not list it.
func WithoutField(table, field string) Option {
	return func(s *Sim) {
		t, ok := s.tables[table]
		if !ok {
			return
		}
		t.def.columns = maps.Clone(t.def.columns)
		delete(t.def.columns, field)
		delete(t.extra, field)
		t.removed[field] = true
	}
}

// stableID derives a sys_id from a name, so generated records keep theirs.
func stableID(name string) string {
	sum := md5.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// seedUsersLocked writes the sys_user, sys_user_role and sys_user_has_role
// records of the users the Sim authenticates (and of "admin", the user an
// open Sim acts as), once options are applied.
func (s *Sim) seedUsersLocked() {
	users := map[string]bool{"admin": true}
	for u := range s.auth.users {
		users[u] = true
	}
	for _, u := range s.auth.appUser {
		users[u] = true
	}
	roleIDs := map[string]string{}
	role := func(name string) string {
		if id, ok := roleIDs[name]; ok {
			return id
		}
		id := stableID("role:" + name)
		roleIDs[name] = id
		_, _ = s.insertLocked(TableRole, map[string]string{"sys_id": id, "name": name}, "system", false, false)
		return id
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		tz, ok := s.userTZ[u]
		if !ok {
			tz = DefaultUserTimeZone
		}
		id := stableID("user:" + u)
		_, _ = s.insertLocked(TableUser, map[string]string{
			"sys_id": id, "user_name": u, "name": u, "time_zone": tz,
			"web_service_access_only": strconv.FormatBool(s.auth.wsOnly[u]),
		}, "system", false, false)
		roles, ok := s.userRoles[u]
		if !ok {
			roles = DefaultUserRoles
			if u == "admin" {
				roles = []string{"admin"}
			}
		}
		for _, r := range roles {
			_, _ = s.insertLocked(TableUserRole, map[string]string{
				"sys_id": stableID("has_role:" + u + ":" + r), "user": id, "role": role(r),
			}, "system", false, false)
		}
	}
	_, _ = s.insertLocked(TableScope, map[string]string{"sys_id": GlobalScope, "scope": "global", "name": "Global"}, "system", false, false)
}

// UserSysID returns the sys_id of a user's sys_user record.
func UserSysID(user string) string { return stableID("user:" + user) }

// scopeIDLocked returns the sys_scope sys_id of an application scope ("" or
// "global" is Global), adding the scope's record the first time.
func (s *Sim) scopeIDLocked(scope string) string {
	if scope == "" || scope == GlobalScope {
		return GlobalScope
	}
	id := stableID("scope:" + scope)
	if s.tables[TableScope].byID[id] == nil {
		_, _ = s.insertLocked(TableScope, map[string]string{"sys_id": id, "scope": scope, "name": scope}, "system", false, false)
	}
	return id
}

// syncScriptsLocked rewrites sys_script from the registered rules.
func (s *Sim) syncScriptsLocked() {
	t := s.tables[TableScript]
	t.rows, t.byID = nil, map[string]*record{}
	for _, r := range s.rules {
		f := maps.Clone(t.def.columns)
		maps.Copy(f, map[string]string{
			"sys_id": r.sysID, "name": r.Name, "collection": r.Table, "active": strconv.FormatBool(!r.Inactive),
			"sys_scope": s.scopeIDLocked(r.Scope), "script": r.Script, "filter_condition": r.Condition,
			"action_insert": strconv.FormatBool(r.Insert), "action_update": strconv.FormatBool(r.Update),
			"sys_created_on": r.added, "sys_updated_on": r.added, "sys_created_by": "admin", "sys_updated_by": "admin",
		})
		rec := &record{fields: f}
		t.rows = append(t.rows, rec)
		t.byID[r.sysID] = rec
	}
}

// internalType is a field's sys_dictionary internal_type.
func internalType(field string) (typ, ref string) {
	if target, ok := references[field]; ok {
		return "reference", target
	}
	switch {
	case journalFields[field]:
		return "journal_input", ""
	case field == "sys_id":
		return "GUID", ""
	case field == "active" || field == "locked_out" || field == "web_service_access_only" || field == "inherited" ||
		field == "advanced" || field == "action_insert" || field == "action_update":
		return "boolean", ""
	}
	switch fieldKinds[field] {
	case kindNumber:
		return "integer", ""
	case kindDate:
		return "glide_date_time", ""
	}
	return "string", ""
}

// syncDictionaryLocked rewrites sys_dictionary from the tables' columns:
// one collection record per table (element empty) and one per field.
func (s *Sim) syncDictionaryLocked() {
	d := s.tables[TableDictionary]
	d.rows, d.byID = nil, map[string]*record{}
	add := func(table, element, typ, ref string) {
		f := maps.Clone(d.def.columns)
		maps.Copy(f, map[string]string{
			"sys_id": stableID("dict:" + table + "." + element), "name": table, "element": element,
			"internal_type": typ, "reference": ref, "column_label": element,
		})
		rec := &record{fields: f}
		d.rows = append(d.rows, rec)
		d.byID[f["sys_id"]] = rec
	}
	for _, name := range slices.Sorted(maps.Keys(s.tables)) {
		t := s.tables[name]
		add(name, "", "collection", "")
		fields := slices.Collect(maps.Keys(t.def.columns))
		fields = append(fields, slices.Collect(maps.Keys(t.extra))...)
		slices.Sort(fields)
		for _, f := range fields {
			typ, ref := internalType(f)
			add(name, f, typ, ref)
		}
	}
}
