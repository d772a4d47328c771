package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

var (
	tablePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}$`)
	sysIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// ValidTable reports whether s has the shape of a ServiceNow table name.
func ValidTable(s string) bool { return tablePattern.MatchString(s) }

// ValidSysID reports whether s has the shape of a sys_id: 32 lowercase hex
// digits.
func ValidSysID(s string) bool { return sysIDPattern.MatchString(s) }

// DefaultPageSize is the sysparm_limit of a Query that does not set one.
const DefaultPageSize = 1000

// Query selects records of a table.
type Query struct {
	// Encoded is the sysparm_query, ordering included
	// ("active=true^sys_updated_on>=…^ORDERBYsys_updated_on^ORDERBYsys_id").
	// Order by a unique key when paging over data that may change.
	Encoded string
	// Fields is the sysparm_fields; empty means every field.
	Fields []string
	// PageSize is the sysparm_limit; DefaultPageSize when zero.
	PageSize int
}

// QueryStats says what a Query did: pages received, HTTP calls made for
// them (retries included, token requests not) and records handed over.
type QueryStats struct {
	Pages   int
	Calls   int
	Records int
}

// Get fetches one record: GET /api/now/table/{table}/{sys_id}, limited to
// fields when any are given. A record that is deleted or hidden by an ACL is
// an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, table, sysID string, fields ...string) (Record, error) {
	u, err := c.recordURL(table, sysID, fields)
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", table, sysID, err)
	}
	res, err := c.do(ctx, request{method: http.MethodGet, url: u, authorize: true, idempotent: true, table: table, access: "read"}, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", table, sysID, err)
	}
	rec, err := decodeRecord(res.body)
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", table, sysID, err)
	}
	return rec, nil
}

// Query runs q against table and hands each page of records to page, in
// order, until the last page or the first error page returns. It follows
// the Link rel="next" header rather than stopping at a short page: the
// instance applies ACLs after sysparm_limit, so a page may hold fewer
// records than asked for (none, even) with more pages behind it. A page
// may therefore be empty. The stats are returned in every case.
func (c *Client) Query(ctx context.Context, table string, q Query, page func([]Record) error) (QueryStats, error) {
	var stats QueryStats
	if !ValidTable(table) {
		return stats, fmt.Errorf("query %s: invalid table name", table)
	}
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	v := readParams(q.Fields)
	v.Set("sysparm_query", q.Encoded)
	v.Set("sysparm_limit", strconv.Itoa(size))
	// The count costs the instance a second query per page and is not
	// needed: paging follows the Link header.
	v.Set("sysparm_no_count", "true")
	next := c.base.String() + "/api/now/table/" + table + "?" + v.Encode()
	// A next link to a page already read would loop forever.
	visited := map[string]bool{}
	for {
		visited[pageKey(next)] = true
		res, err := c.do(ctx, request{method: http.MethodGet, url: next, authorize: true, idempotent: true, table: table, access: "read"}, &stats.Calls)
		if err != nil {
			return stats, fmt.Errorf("query %s: page %d: %w", table, stats.Pages+1, err)
		}
		recs, err := decodeRecords(res.body)
		if err != nil {
			return stats, fmt.Errorf("query %s: page %d: %w", table, stats.Pages+1, err)
		}
		stats.Pages++
		stats.Records += len(recs)
		if err := page(recs); err != nil {
			return stats, fmt.Errorf("query %s: page %d: %w", table, stats.Pages, err)
		}
		link, ok := nextLink(res.header)
		if !ok {
			return stats, nil
		}
		u, err := c.follow(next, link)
		if err != nil {
			return stats, fmt.Errorf("query %s: page %d: %w", table, stats.Pages, err)
		}
		if visited[pageKey(u)] {
			return stats, fmt.Errorf("query %s: page %d: %w: next page link points at a page already read", table, stats.Pages, ErrBadResponse)
		}
		next = u
	}
}

// Insert creates a record: POST /api/now/table/{table}. It returns the
// record as the instance stored it, sys_id included. Insert is retried only
// when the instance said it did not process the request (429, 503), since
// a retry after any other failure could create the record twice.
func (c *Client) Insert(ctx context.Context, table string, fields map[string]string) (Record, error) {
	if !ValidTable(table) {
		return nil, fmt.Errorf("insert into %s: invalid table name", table)
	}
	u := c.base.String() + "/api/now/table/" + table + "?" + readParams(nil).Encode()
	res, err := c.write(ctx, http.MethodPost, table, u, fields)
	if err != nil {
		return nil, fmt.Errorf("insert into %s: %w", table, err)
	}
	rec, err := decodeRecord(res.body)
	if err != nil {
		return nil, fmt.Errorf("insert into %s: %w", table, err)
	}
	return rec, nil
}

// Update sets fields of a record: PATCH /api/now/table/{table}/{sys_id}. It
// returns the updated record: a write counts as done only when the answer
// is the record as JSON (a caller that knows the version it read compares
// the record's sys_mod_count). A 2xx without a body is ErrBadResponse: the
// write may or may not be stored, and the caller reads the record to know.
// An update that sets a journal field (work_notes, comments) is an append
// and is not retried after a failure that may have applied it; use
// WriteJournal to add an entry once.
func (c *Client) Update(ctx context.Context, table, sysID string, fields map[string]string) (Record, error) {
	return c.UpdateFields(ctx, table, sysID, fields)
}

func (c *Client) write(ctx context.Context, method, table, u string, fields map[string]string) (response, error) {
	body, err := json.Marshal(fields)
	if err != nil {
		return response{}, fmt.Errorf("encode fields: %w", err)
	}
	access := "write"
	if method == http.MethodPost {
		access = "create"
	}
	return c.do(ctx, request{
		method:      method,
		url:         u,
		body:        body,
		contentType: "application/json",
		authorize:   true,
		// Setting fields to the same values twice is harmless; creating a
		// record twice is not, and neither is appending to a journal field
		// twice (WriteJournal).
		idempotent: method != http.MethodPost && !hasJournalField(fields),
		table:      table,
		access:     access,
	}, nil)
}

func (c *Client) recordURL(table, sysID string, fields []string) (string, error) {
	if !ValidTable(table) {
		return "", errors.New("invalid table name")
	}
	if !ValidSysID(sysID) {
		return "", errors.New("invalid sys_id")
	}
	return c.base.String() + "/api/now/table/" + table + "/" + sysID + "?" + readParams(fields).Encode(), nil
}

// readParams are the parameters that make every value a raw string.
func readParams(fields []string) url.Values {
	v := url.Values{
		"sysparm_display_value":          {"false"},
		"sysparm_exclude_reference_link": {"true"},
	}
	if len(fields) > 0 {
		v.Set("sysparm_fields", strings.Join(fields, ","))
	}
	return v
}

// follow resolves a next-page link against the current page's URL. The
// credentials go only to the configured instance: a link to another host
// (the instance's canonical name, when it is reached through a proxy or an
// alias) is followed on the configured one.
func (c *Client) follow(current, link string) (string, error) {
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("%w: page URL: %w", ErrBadResponse, err)
	}
	l, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("%w: next page link: %w", ErrBadResponse, err)
	}
	u := cur.ResolveReference(l)
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		u.Scheme, u.Host = c.base.Scheme, c.base.Host
	}
	u.User, u.Fragment = nil, ""
	return u.String(), nil
}

// pageKey identifies a page by its path and parameters, in a canonical
// order, with the implicit sysparm_offset=0 spelled out.
func pageKey(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	if q.Get("sysparm_offset") == "" {
		q.Set("sysparm_offset", "0")
	}
	return p.Path + "?" + q.Encode()
}

// nextLink finds the rel="next" target of the Link headers, as ServiceNow
// writes them: <url>;rel="first",<url>;rel="next",<url>;rel="last". A URL
// may hold commas (in sysparm_fields), so the header is split at the angle
// brackets, not at commas.
func nextLink(h http.Header) (string, bool) {
	for _, v := range h.Values("Link") {
		for {
			start := strings.IndexByte(v, '<')
			if start < 0 {
				break
			}
			end := strings.IndexByte(v[start:], '>')
			if end < 0 {
				break
			}
			target := v[start+1 : start+end]
			v = v[start+end+1:]
			params := v
			if i := strings.IndexByte(v, '<'); i >= 0 {
				params = v[:i]
			}
			if relIsNext(params) {
				return target, true
			}
		}
	}
	return "", false
}

// relIsNext reports whether link parameters (`; rel="next",`) include
// rel=next; rel may list several space-separated types.
func relIsNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(p), ",")), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
			continue
		}
		for t := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(val), `"`)) {
			if strings.EqualFold(t, "next") {
				return true
			}
		}
	}
	return false
}

func decodeRecord(body []byte) (Record, error) {
	if r, ok := fastRecord(body); ok {
		return r, nil
	}
	var doc struct {
		Result Record `json:"result"`
	}
	if err := unmarshal(body, &doc); err != nil {
		var loose struct {
			Result map[string]any `json:"result"`
		}
		if !isTypeError(err) || json.Unmarshal(body, &loose) != nil {
			return nil, err
		}
		doc.Result = loosen(loose.Result)
	}
	if doc.Result == nil {
		return nil, fmt.Errorf("%w: no result object", ErrBadResponse)
	}
	return doc.Result, nil
}

func decodeRecords(body []byte) ([]Record, error) {
	if recs, ok := fastRecords(body); ok {
		return recs, nil
	}
	var doc struct {
		Result []Record `json:"result"`
	}
	if err := unmarshal(body, &doc); err != nil {
		var loose struct {
			Result []map[string]any `json:"result"`
		}
		if !isTypeError(err) || json.Unmarshal(body, &loose) != nil {
			return nil, err
		}
		doc.Result = make([]Record, len(loose.Result))
		for i, m := range loose.Result {
			doc.Result[i] = loosen(m)
		}
	}
	if doc.Result == nil {
		return nil, fmt.Errorf("%w: no result array", ErrBadResponse)
	}
	return doc.Result, nil
}

func unmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: empty body", ErrBadResponse)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return nil
}

func isTypeError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// loosen turns a record with non-string values into a Record: the fast
// path decodes straight into strings, and only an instance that ignores
// sysparm_exclude_reference_link (a reference as {"link","value"}) or a
// proxy that rewrites values ends up here.
func loosen(m map[string]any) Record {
	if m == nil {
		return nil
	}
	r := make(Record, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			r[k] = v
		case nil:
			r[k] = ""
		case bool:
			r[k] = strconv.FormatBool(v)
		case float64:
			r[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case map[string]any:
			if s, ok := v["value"].(string); ok {
				r[k] = s
			}
		}
	}
	return r
}
