package servicenow_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// pager serves records of one table page by page the way an instance does:
// sysparm_limit/sysparm_offset, ACLs applied after the limit (so a page
// can come back short or empty), and first/prev/next/last Link headers
// whose URLs keep sysparm_fields' raw commas.
type pager struct {
	*httptest.Server
	records [][]byte // each record's JSON
	hidden  func(i int) bool
	// linkBase, when set, is the scheme and host the Link URLs name, as an
	// instance behind a proxy names its canonical host.
	linkBase string
	// fail answers 503 to the first request for these offsets.
	fail map[int]bool
	// stuck makes every next link point at offset 0.
	stuck bool

	mu  sync.Mutex
	got []url.Values
}

func newPager(tb testing.TB, records []map[string]string) *pager {
	tb.Helper()
	p := &pager{hidden: func(int) bool { return false }, fail: map[int]bool{}}
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		p.records = append(p.records, b)
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(p.Close)
	return p
}

func (p *pager) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("sysparm_limit"))
	offset, _ := strconv.Atoi(q.Get("sysparm_offset"))
	if limit <= 0 {
		limit = 10000
	}
	p.mu.Lock()
	p.got = append(p.got, q)
	failing := p.fail[offset]
	delete(p.fail, offset)
	p.mu.Unlock()
	if failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	end := min(offset+limit, len(p.records))
	var buf bytes.Buffer
	buf.WriteString(`{"result":[`)
	first := true
	for i := offset; i < end; i++ {
		if p.hidden(i) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(p.records[i])
	}
	buf.WriteString(`]}`)

	base := p.linkBase
	if base == "" {
		base = "http://" + r.Host
	}
	q = maps.Clone(q) // p.got keeps the original
	link := func(off int, rel string) string {
		q.Set("sysparm_offset", strconv.Itoa(off))
		return "<" + base + r.URL.Path + "?" + strings.ReplaceAll(q.Encode(), "%2C", ",") + `>;rel="` + rel + `"`
	}
	links := []string{link(0, "first")}
	if offset > 0 {
		links = append(links, link(max(0, offset-limit), "prev"))
	}
	if end < len(p.records) {
		next := end
		if p.stuck {
			next = 0
		}
		links = append(links, link(next, "next"))
	}
	links = append(links, link(max(0, (len(p.records)-1)/limit*limit), "last"))
	w.Header().Set("Link", strings.Join(links, ","))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func (p *pager) requests() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.got...)
}

// generateIncidents makes n incident records with the fields the
// processor mirrors.
func generateIncidents(n int) []map[string]string {
	out := make([]map[string]string, n)
	for i := range out {
		out[i] = map[string]string{
			"sys_id":                fmt.Sprintf("%032x", i+1),
			"number":                fmt.Sprintf("INC%07d", i+1),
			"state":                 "2",
			"priority":              strconv.Itoa(1 + i%5),
			"short_description":     fmt.Sprintf("Disk usage above 90%% on web-%03d", i%500),
			"description":           "Monitoring reported the volume /var at 93% for 15 minutes.",
			"assignment_group":      "287ebd7da9fe198100f92cc8d1d2154e",
			"assignment_group.name": "Network",
			"u_environment":         "production",
			"cmdb_ci":               "b0c4030ac0a800090166a5e7a2fa2ee4",
			"active":                "true",
			"sys_mod_count":         strconv.Itoa(i % 7),
			"sys_updated_on":        fmt.Sprintf("2026-03-14 %02d:%02d:%02d", (i/3600)%24, (i/60)%60, i%60),
		}
	}
	return out
}
