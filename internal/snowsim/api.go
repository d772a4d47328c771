package snowsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxBody bounds a Table API request body.
const maxBody = 1 << 20

func (s *Sim) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /oauth_token.do", s.handleToken)
	m.HandleFunc("GET /api/now/table/{table}", s.authed(s.handleList))
	m.HandleFunc("POST /api/now/table/{table}", s.authed(s.handleCreate))
	m.HandleFunc("GET /api/now/table/{table}/{sys_id}", s.authed(s.handleGet))
	m.HandleFunc("PATCH /api/now/table/{table}/{sys_id}", s.authed(s.handleUpdate))
	m.HandleFunc("PUT /api/now/table/{table}/{sys_id}", s.authed(s.handleUpdate))
	m.HandleFunc("DELETE /api/now/table/{table}/{sys_id}", s.authed(s.handleDelete))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", nil)
	})
	return m
}

// ServeHTTP serves the Table API and the OAuth token endpoint.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, sim: s, method: r.Method}
	if s.Hibernating() {
		writeHibernating(sw)
		return
	}
	serve := func() {
		if s.injectFault(sw, r) {
			return
		}
		s.mux.ServeHTTP(sw, r)
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		serve()
		return
	}
	// Injected latency counts as time on an API thread.
	s.withAPIThread(sw, r, serve)
}

func (s *Sim) authed(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, ok := s.authenticate(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
			return
		}
		if s.rateLimit(w, user) {
			return
		}
		h(w, r, user)
	}
}

// writeError writes ServiceNow's error envelope; detail is a string or nil.
func writeError(w http.ResponseWriter, status int, message string, detail any) {
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"message": message, "detail": detail},
		"status": "failure",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeInvalidTable(w http.ResponseWriter, table string) {
	writeError(w, http.StatusBadRequest, "Invalid table "+table, nil)
}

func writeNoRecord(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
}

// writeNoReadRight is the answer for a table the user's ACLs do not let it
// read: 403, unlike a single row hidden by an ACL, which is a 404.
func writeNoReadRight(w http.ResponseWriter, table string) {
	writeError(w, http.StatusForbidden, "Insufficient rights to query records",
		"The session user has no read access to table "+table)
}

// syncGenerated brings sys_dictionary up to date with the tables' fields
// before it is read.
func (s *Sim) syncGenerated(table string) {
	if table == TableDictionary {
		s.mu.Lock()
		s.syncDictionaryLocked()
		s.mu.Unlock()
	}
}

// refuseGenerated answers a write to a table the simulator keeps itself.
func refuseGenerated(w http.ResponseWriter, table string) bool {
	if !generatedTables[table] {
		return false
	}
	writeError(w, http.StatusForbidden, "Operation Failed",
		"Table "+table+" is kept by the simulator: add Business Rules with AddBusinessRule, fields with a fixture")
	return true
}

func (s *Sim) knownTable(name string) bool {
	_, ok := s.tables[name] // the set of tables never changes after New
	return ok
}

// view is how a request wants records rendered.
type view struct {
	fields      []string // nil: every column
	excludeLink bool
	displayVal  bool
	baseURL     string
}

func (s *Sim) viewOf(r *http.Request) view {
	q := r.URL.Query()
	v := view{
		excludeLink: q.Get("sysparm_exclude_reference_link") == "true",
		displayVal:  q.Get("sysparm_display_value") == "true",
		baseURL:     baseURL(r),
	}
	if f := q.Get("sysparm_fields"); f != "" {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				v.fields = append(v.fields, name)
			}
		}
	}
	return v
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// renderLocked shapes a record for a response: the requested fields
// (dot-walks resolved), reference fields as {link, value} unless
// sysparm_exclude_reference_link=true, journal fields empty.
func (s *Sim) renderLocked(fields map[string]string, v view) map[string]any {
	get := s.getterLocked(fields)
	names := v.fields
	if names == nil {
		names = slices.Collect(maps.Keys(fields))
	}
	out := make(map[string]any, len(names))
	for _, name := range names {
		val := get(name)
		if journalFields[name] {
			val = ""
		}
		target, isRef := references[name]
		switch {
		case isRef && v.displayVal:
			out[name] = get(name + ".name")
		case isRef && !v.excludeLink && val != "":
			out[name] = map[string]string{
				"link":  v.baseURL + "/api/now/table/" + target + "/" + val,
				"value": val,
			}
		default:
			out[name] = val
		}
	}
	return out
}

func (s *Sim) handleGet(w http.ResponseWriter, r *http.Request, user string) {
	table, id := r.PathValue("table"), r.PathValue("sys_id")
	if !s.knownTable(table) {
		writeInvalidTable(w, table)
		return
	}
	if !s.canRead(user, table) {
		writeNoReadRight(w, table)
		return
	}
	s.syncGenerated(table)
	if s.hidden(table, id) {
		writeNoRecord(w)
		return
	}
	if s.failRead(table, id) {
		writeError(w, http.StatusInternalServerError, "Internal server error", "Injected read failure")
		return
	}
	s.mu.RLock()
	rec := s.tables[table].byID[id]
	var out map[string]any
	if rec != nil {
		out = s.renderLocked(rec.fields, s.viewOf(r))
	}
	s.mu.RUnlock()
	if rec == nil {
		writeNoRecord(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Sim) handleList(w http.ResponseWriter, r *http.Request, user string) {
	table := r.PathValue("table")
	if !s.knownTable(table) {
		writeInvalidTable(w, table)
		return
	}
	if !s.canRead(user, table) {
		writeNoReadRight(w, table)
		return
	}
	s.syncGenerated(table)
	params := r.URL.Query()
	limit := s.pageLimit
	if n, err := strconv.Atoi(params.Get("sysparm_limit")); err == nil && n > 0 {
		limit = min(n, s.pageLimit)
	}
	offset := 0
	if n, err := strconv.Atoi(params.Get("sysparm_offset")); err == nil && n > 0 {
		offset = n
	}
	v := s.viewOf(r)

	s.mu.RLock()
	q, bad := parseTerms(params.Get("sysparm_query"))
	q.caseSensitive = s.caseSensitiveQueries
	// An instance drops the invalid part of an encoded query (a term that
	// does not parse, a field the table lacks) and runs the rest, which
	// can return more rows, up to the whole table; with
	// glide.invalid_query.returns_no_rows=true it returns none instead.
	invalid := q.prune(func(f string) bool { return s.fieldKnownLocked(table, f) }) || len(bad) > 0
	var rows []*record
	if !invalid || !s.propertyTrue(PropInvalidQueryNoRows) {
		for _, rec := range s.tables[table].rows {
			if q.match(s.getterLocked(rec.fields)) {
				rows = append(rows, rec)
			}
		}
		sortRows(q, rows, func(r *record, f string) string { return s.getterLocked(r.fields)(f) })
	}
	total := len(rows)
	page := rows[min(offset, total):min(offset+limit, total)]
	result := make([]map[string]any, 0, len(page))
	for _, rec := range page {
		// ACLs are applied after the page is cut, as on an instance.
		if s.hidden(table, rec.fields["sys_id"]) {
			continue
		}
		result = append(result, s.renderLocked(rec.fields, v))
	}
	s.mu.RUnlock()

	noCount := params.Get("sysparm_no_count") == "true"
	if !noCount {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	w.Header().Set("Link", linkHeader(r, offset, limit, total, noCount))
	if s.quotaCancel() {
		writeQuotaCancelled(w, map[string]any{"result": result})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

// linkHeader builds the first/prev/next/last links ServiceNow sends.
func linkHeader(r *http.Request, offset, limit, total int, noCount bool) string {
	link := func(off int, rel string) string {
		q := r.URL.Query()
		q.Set("sysparm_offset", strconv.Itoa(off))
		q.Set("sysparm_limit", strconv.Itoa(limit))
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		return fmt.Sprintf(`<%s%s>;rel="%s"`, baseURL(r), u.String(), rel)
	}
	links := []string{link(0, "first")}
	if offset > 0 {
		links = append(links, link(max(offset-limit, 0), "prev"))
	}
	if offset+limit < total {
		links = append(links, link(offset+limit, "next"))
	}
	if !noCount {
		last := 0
		if total > 0 {
			last = (total - 1) / limit * limit
		}
		links = append(links, link(last, "last"))
	}
	return strings.Join(links, ",")
}

// readFields decodes a Table API body: a JSON object whose values are
// strings, numbers, booleans, null, or reference objects {"value": ...}.
func readFields(r *http.Request) (map[string]string, error) {
	var raw map[string]any
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode body: %w", err)
	}
	return stringFields(raw)
}

func stringFields(raw map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case nil:
			out[k] = ""
		case string:
			out[k] = v
		case bool:
			out[k] = strconv.FormatBool(v)
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case json.Number:
			out[k] = v.String()
		case map[string]any:
			s, ok := v["value"].(string)
			if !ok {
				return nil, fmt.Errorf("field %s: object without a string value", k)
			}
			out[k] = s
		default:
			return nil, fmt.Errorf("field %s: unsupported JSON value", k)
		}
	}
	return out, nil
}

// displayInput reports whether a write gives references by display value
// (sysparm_input_display_value=true); by default they are taken as given.
func displayInput(r *http.Request) bool {
	return r.URL.Query().Get("sysparm_input_display_value") == "true"
}

func writeBadBody(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request, user string) {
	table := r.PathValue("table")
	if !s.knownTable(table) {
		writeInvalidTable(w, table)
		return
	}
	if refuseGenerated(w, table) {
		return
	}
	in, err := readFields(r)
	if err != nil {
		writeBadBody(w)
		return
	}
	s.mu.Lock()
	c, err := s.insertLocked(table, in, user, false, displayInput(r))
	var out map[string]any
	if err == nil {
		out = s.renderLocked(c.after, s.viewOf(r))
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusForbidden, "Operation Failed", err.Error())
		return
	}
	s.fireRules(c, user)
	w.Header().Set("Location", baseURL(r)+"/api/now/table/"+table+"/"+c.after["sys_id"])
	writeJSON(w, http.StatusCreated, map[string]any{"result": out})
}

func (s *Sim) handleUpdate(w http.ResponseWriter, r *http.Request, user string) {
	table, id := r.PathValue("table"), r.PathValue("sys_id")
	if !s.knownTable(table) {
		writeInvalidTable(w, table)
		return
	}
	if refuseGenerated(w, table) {
		return
	}
	if s.hidden(table, id) {
		writeNoRecord(w)
		return
	}
	in, err := readFields(r)
	if err != nil {
		writeBadBody(w)
		return
	}
	s.mu.Lock()
	c, err := s.updateLocked(table, id, in, user, displayInput(r))
	var out map[string]any
	if err == nil {
		out = s.renderLocked(c.after, s.viewOf(r))
	}
	s.mu.Unlock()
	if errors.Is(err, ErrNoRecord) {
		writeNoRecord(w)
		return
	}
	if err != nil {
		writeError(w, http.StatusForbidden, "Operation Failed", err.Error())
		return
	}
	s.fireRules(c, user)
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Sim) handleDelete(w http.ResponseWriter, r *http.Request, _ string) {
	table, id := r.PathValue("table"), r.PathValue("sys_id")
	if !s.knownTable(table) {
		writeInvalidTable(w, table)
		return
	}
	if refuseGenerated(w, table) {
		return
	}
	if s.hidden(table, id) {
		writeNoRecord(w)
		return
	}
	s.mu.Lock()
	err := s.deleteLocked(table, id)
	s.mu.Unlock()
	if err != nil {
		writeNoRecord(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
