package servicenow_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// journalInstance is a fake instance with one incident and its journal:
// GET and PATCH of the record answer in turn from the canned replies, the
// sys_journal_field query answers from journal (or journalReply). It keeps
// the requests it got.
type journalInstance struct {
	*httptest.Server
	mu       sync.Mutex
	patches  []reply
	get      reply
	journal  []map[string]string
	jreply   *reply // replaces the journal's answer
	requests []seen
	queries  []url.Values
}

func newJournalInstance(t *testing.T, get reply, patches ...reply) *journalInstance {
	t.Helper()
	j := &journalInstance{get: get, patches: patches}
	j.Server = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(j.Close)
	return j
}

func (j *journalInstance) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	j.mu.Lock()
	j.requests = append(j.requests, seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body)})
	var rep reply
	switch {
	case r.URL.Path == "/api/now/table/sys_journal_field":
		j.queries = append(j.queries, r.URL.Query())
		if j.jreply != nil {
			rep = *j.jreply
		} else {
			rep = reply{status: 200, body: resultArray(j.journal)}
		}
	case r.Method == http.MethodPatch:
		n := j.count(http.MethodPatch)
		rep = j.patches[min(n, len(j.patches))-1]
	default:
		rep = j.get
	}
	j.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if rep.body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// count is the number of requests with method, the current one included;
// j.mu is held.
func (j *journalInstance) count(method string) int {
	n := 0
	for _, r := range j.requests {
		if r.Method == method && r.Path != "/api/now/table/sys_journal_field" {
			n++
		}
	}
	return n
}

func (j *journalInstance) calls() (gets, patches, journal int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range j.requests {
		switch {
		case r.Path == "/api/now/table/sys_journal_field":
			journal++
		case r.Method == http.MethodPatch:
			patches++
		default:
			gets++
		}
	}
	return gets, patches, journal
}

func resultArray(recs []map[string]string) string {
	var b strings.Builder
	b.WriteString(`{"result":[`)
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		first := true
		for k, v := range r {
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(`"` + k + `":"` + v + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.String()
}

func modCountRecord(n string) reply {
	return reply{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","sys_mod_count":"` + n + `"}}`}
}

const (
	noteText  = "snowgate: gateway prod accepted INC0010001, job job_1."
	entryID   = "99999999999999999999999999999999"
	otherText = "a note somebody else wrote"
)

func entry(text string) map[string]string {
	return map[string]string{
		"sys_id": entryID, "element_id": sysID1, "element": "work_notes",
		"value": text, "sys_created_on": "2026-03-14 15:09:30",
	}
}

// TestWriteJournal: a work note or comment is an append to
// sys_journal_field, not an idempotent field update, so a write whose
// outcome is unknown is settled by reading the journal before it is sent
// again. It follows the Table API reference (PATCH
// /api/now/table/{tableName}/{sys_id} answers the updated record, 200) and
// the journal field documents ("Journal field type"; journal entries are
// stored in the Journal Entries [sys_journal_field] table with element_id,
// element, value, sys_created_on), and every write of a record bumps its
// sys_mod_count ("Table API": the answer carries the record's system
// fields). A transaction cancelled after it ran (KB1297438) may have
// stored the entry: it is looked for, not written again.
func TestWriteJournal(t *testing.T) {
	tests := []struct {
		name    string
		known   int // negative: read the record first
		patches []reply
		journal []map[string]string
		jreply  *reply
		// noThrottleRetry builds the client WithoutThrottleRetries.
		noThrottleRetry bool
		// want is the outcome: nil, or an error to match.
		wantErr      error
		wantStatus   int // the *Error's status
		wantModCount int
		wantEntry    string
		wantGets     int
		wantPatches  int
		wantJournal  int
	}{
		{
			name: "answer shows the bump", known: -1,
			patches:      []reply{modCountRecord("4")},
			wantModCount: 4, wantGets: 1, wantPatches: 1,
		},
		{
			name: "the caller's version saves the read", known: 3,
			patches:      []reply{modCountRecord("4")},
			wantModCount: 4, wantPatches: 1,
		},
		{
			// The case the old AddWorkNote took for success without a look.
			name: "202 without a body, entry in the journal", known: 3,
			patches:   []reply{{status: 202}},
			journal:   []map[string]string{entry(noteText)},
			wantEntry: entryID, wantPatches: 1, wantJournal: 1,
		},
		{
			name: "502 after the write was stored is not written again", known: 3,
			patches:   []reply{{status: 502}, modCountRecord("5")},
			journal:   []map[string]string{entry(noteText + `\r\n`)},
			wantEntry: entryID, wantPatches: 1, wantJournal: 1,
		},
		{
			name: "502 before the write was stored is written again", known: 3,
			patches:      []reply{{status: 502}, modCountRecord("4")},
			journal:      []map[string]string{entry(otherText)},
			wantModCount: 4, wantPatches: 2, wantJournal: 1,
		},
		{
			name: "cancelled transaction: the journal decides", known: 3,
			patches:   []reply{{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `",` + `"error":{"message":"Transaction cancelled: limit","detail":""},"status":"failure"}`}},
			journal:   []map[string]string{entry(noteText)},
			wantEntry: entryID, wantPatches: 1, wantJournal: 1,
		},
		{
			name: "hibernating instance answers HTML: the journal decides", known: 3,
			patches:     []reply{{status: 200, header: htmlHeader, body: "<html><body>asleep</body></html>"}},
			jreply:      &reply{status: 200, header: htmlHeader, body: "<html><body>asleep</body></html>"},
			wantErr:     servicenow.ErrJournalUnconfirmed,
			wantPatches: 1, wantJournal: 1,
		},
		{
			name: "unchanged record and no entry: the field was ignored", known: 3,
			patches:     []reply{modCountRecord("3")},
			wantErr:     servicenow.ErrJournalNotStored,
			wantPatches: 1, wantJournal: 1,
		},
		{
			name: "journal unreadable: not written again", known: 3,
			patches:     []reply{{status: 500}, modCountRecord("4")},
			jreply:      &reply{status: 403, body: fixture(t, "forbidden.json")},
			wantErr:     servicenow.ErrJournalUnconfirmed,
			wantPatches: 1, wantJournal: 1,
		},
		{
			name: "403 on the write is final, no look", known: 3,
			patches:     []reply{{status: 403, body: errorBody("Operation Failed", "Update refused by an access rule")}},
			wantErr:     servicenow.ErrForbidden,
			wantPatches: 1,
		},
		{
			name: "429 was not run: retried without a look", known: 3,
			patches:      []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, modCountRecord("4")},
			wantModCount: 4, wantPatches: 2,
		},
		{
			name: "429 without throttle retries: handed back, no look", known: 3, noThrottleRetry: true,
			patches:     []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, modCountRecord("4")},
			wantErr:     servicenow.ErrRateLimited,
			wantPatches: 1,
		},
		{
			name: "never stored: attempts run out", known: 3,
			patches:    []reply{{status: 502}},
			wantStatus: 502, wantPatches: servicenow.DefaultMaxAttempts, wantJournal: servicenow.DefaultMaxAttempts,
		},
		{
			// 503 says the request was not run; the client's own retries
			// of it are the only ones.
			name: "503 until the attempts run out: no look", known: 3,
			patches:    []reply{{status: 503}},
			wantStatus: 503, wantPatches: servicenow.DefaultMaxAttempts,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJournalInstance(t, modCountRecord("3"), tc.patches...)
			j.journal, j.jreply = tc.journal, tc.jreply
			opts := []servicenow.Option{servicenow.WithSleep((&waits{}).sleep), servicenow.WithClock(func() time.Time { return now })}
			if tc.noThrottleRetry {
				opts = append(opts, servicenow.WithoutThrottleRetries())
			}
			c := newClient(t, j.URL, servicenow.BasicAuth(testUser, testPassword), opts...)

			got, err := c.WriteJournal(context.Background(), "incident", sysID1, servicenow.FieldWorkNotes, noteText, tc.known)

			switch {
			case tc.wantStatus != 0:
				var se *servicenow.Error
				if !errors.As(err, &se) || se.Status != tc.wantStatus {
					t.Errorf("WriteJournal() error = %v, want the %d", err, tc.wantStatus)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("WriteJournal() error = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("WriteJournal() error = %v, want success", err)
			}
			if err == nil && (got.ModCount != tc.wantModCount || got.Entry != tc.wantEntry) {
				t.Errorf("WriteJournal() = %+v, want mod count %d, entry %q", got, tc.wantModCount, tc.wantEntry)
			}
			gets, patches, journal := j.calls()
			if gets != tc.wantGets || patches != tc.wantPatches || journal != tc.wantJournal {
				t.Errorf("requests: %d GET, %d PATCH, %d journal; want %d, %d, %d", gets, patches, journal, tc.wantGets, tc.wantPatches, tc.wantJournal)
			}
			// Retries of a 429 or 503 happen within one attempt.
			if wantAttempts := tc.wantPatches; got.Attempts != wantAttempts && tc.patches[0].status != 429 && tc.patches[0].status != 503 {
				t.Errorf("Attempts = %d, want %d", got.Attempts, wantAttempts)
			}
		})
	}
}

// TestWriteJournalRequests checks what is sent: the PATCH body and
// fields, and the journal query (element_id, element, created since
// shortly before the first attempt), in the encoded query syntax of the
// Table API reference (sysparm_query, ORDERBYDESC).
func TestWriteJournalRequests(t *testing.T) {
	j := newJournalInstance(t, modCountRecord("3"), reply{status: 504}, modCountRecord("4"))
	c := newClient(t, j.URL, servicenow.BasicAuth(testUser, testPassword),
		servicenow.WithSleep((&waits{}).sleep), servicenow.WithClock(func() time.Time { return now }))
	if _, err := c.WriteJournal(context.Background(), "incident", sysID1, servicenow.FieldComments, "Fixed: \"^\" in text", 3); err != nil {
		t.Fatalf("WriteJournal: %v", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	patch := j.requests[0]
	if patch.Method != http.MethodPatch || patch.Path != "/api/now/table/incident/"+sysID1 || patch.Body != `{"comments":"Fixed: \"^\" in text"}` {
		t.Errorf("first request = %+v, want the PATCH of comments", patch)
	}
	if q, _ := url.ParseQuery(patch.Query); q.Get("sysparm_fields") != "sys_id,sys_mod_count" {
		t.Errorf("PATCH sysparm_fields = %q, want sys_id,sys_mod_count", q.Get("sysparm_fields"))
	}
	if len(j.queries) != 1 {
		t.Fatalf("journal queries = %d, want 1", len(j.queries))
	}
	since := now.Add(-servicenow.JournalClockSkew).Format("2006-01-02 15:04:05")
	want := "element_id=" + sysID1 + "^element=comments^sys_created_on>=" + since + "^ORDERBYDESCsys_created_on"
	if got := j.queries[0].Get("sysparm_query"); got != want {
		t.Errorf("journal sysparm_query = %q, want %q", got, want)
	}
}

// TestWriteJournalRefusesOtherFields: only journal fields go this way.
func TestWriteJournalRefusesOtherFields(t *testing.T) {
	c := newClient(t, "https://example.service-now.com", servicenow.BasicAuth(testUser, testPassword))
	for _, tc := range []struct{ field, text string }{{"state", "6"}, {"work_notes", "  "}} {
		if _, err := c.WriteJournal(context.Background(), "incident", sysID1, tc.field, tc.text, 1); err == nil {
			t.Errorf("WriteJournal(%q, %q) = nil error, want a refusal", tc.field, tc.text)
		}
	}
}

// TestUpdateOfAJournalFieldIsNotRetried: Update with work_notes is an
// append too; after a 500 it is not sent again (WriteJournal is the way to
// write one safely).
func TestUpdateOfAJournalFieldIsNotRetried(t *testing.T) {
	f := newFake(t, reply{status: 500}, modCountRecord("4"))
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep((&waits{}).sleep))
	if _, err := c.Update(context.Background(), "incident", sysID1, map[string]string{"state": "2", "work_notes": "x"}); err == nil {
		t.Fatal("Update() = nil error, want the 500")
	}
	if got := len(f.requests()); got != 1 {
		t.Errorf("instance received %d requests, want 1", got)
	}
}
