package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

// TestForbiddenPausesTheGateway: a table the integration user may not
// read answers 403 with the REST error envelope and "Insufficient rights
// to query records" (Table API reference, "Table API security": ACLs apply
// to Table API calls; KB1479016 "REST API HTTP response codes": 403 is an
// operation the user is not permitted). That is the gateway's
// misconfiguration, not the record's: the gateway's budget pauses it until
// a probe finds the right granted, the message waits for that instead of
// spending requests, and the ticket says retrying, naming the missing
// right. Nothing is failed for good.
func TestForbiddenPausesTheGateway(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	var calls atomic.Int32
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"message":"Insufficient rights to query records","detail":"No read access to the table for this user"},"status":"failure"}`)
	}))
	t.Cleanup(forbidden.Close)
	e.setGateway(registry.Gateway{Name: "ops", Active: true, WriteBack: true, InstanceURL: forbidden.URL})
	const sysID = "0123456789abcdef0123456789abcdef"

	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 1 {
		t.Errorf("batch failures %v, want the message, to wait for the gateway", failed)
	}
	tk := e.ticket("incident", sysID)
	for _, want := range []string{"gateway misconfigured", "may not read table incident", "Insufficient rights to query records", "grant it a role with read access"} {
		if !strings.Contains(tk.Reason, want) {
			t.Errorf("ticket reason %q, want it to contain %q", tk.Reason, want)
		}
	}
	if tk.Status != state.StatusRetrying {
		t.Errorf("ticket status %q, want %q", tk.Status, state.StatusRetrying)
	}
	if st := e.budget(); !st.Paused || st.PauseCause != budget.CauseAuth || !st.ProbeRequired {
		t.Errorf("budget %+v, want paused for auth until a probe", st)
	}

	// Another message for the gateway waits without a request.
	if failed := e.invoke(context.Background(), message(e.gw, "incident", "fedcba9876543210fedcba9876543210")); len(failed) != 1 {
		t.Errorf("batch failures %v, want the message back", failed)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("instance received %d requests, want 1", got)
	}
	if !strings.Contains(e.logs.String(), `"status":"waiting"`) {
		t.Errorf("logs do not show a message waiting:\n%s", e.logs)
	}
	if jobs := e.jobs(); len(jobs) != 0 {
		t.Errorf("dispatched %d jobs, want none", len(jobs))
	}
}

// TestAcknowledgementNoteIsWrittenOnce: the acknowledgement's PATCH is
// stored by the instance but its answer is lost (a 502 from a proxy in
// front of the node). The note is looked up in sys_journal_field before a
// second PATCH (journal entries: "Journal field type"; the Table API
// PATCH) and, found there, counts as done: one work note, not two.
func TestAcknowledgementNoteIsWrittenOnce(t *testing.T) {
	e := newEnv(t, pipeline.Config{})
	sysID := e.insert("incident", incident("Router down"))
	simURL, err := url.Parse(e.sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(simURL)
	var patches, lookups atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch:
			patches.Add(1)
			// Stored by the instance, answer lost on the way back.
			proxy.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusBadGateway)
		case r.URL.Path == "/api/now/table/sys_journal_field":
			// The journal as the instance keeps it (this simulator has no
			// sys_journal_field table yet).
			lookups.Add(1)
			var entries []map[string]string
			for i, note := range e.sim.Sim.WorkNotes("incident", sysID) {
				entries = append(entries, map[string]string{
					"sys_id": strings.Repeat("e", 31) + string(rune('0'+i)), "element_id": sysID,
					"element": "work_notes", "value": note, "sys_created_on": snTime(0),
				})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"result": entries})
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	e.setGateway(registry.Gateway{Name: "ops", Active: true, WriteBack: true, InstanceURL: front.URL})

	if failed := e.invoke(context.Background(), message(e.gw, "incident", sysID)); len(failed) != 0 {
		t.Fatalf("batch failures %v; logs:\n%s", failed, e.logs.String())
	}
	tk := e.ticket("incident", sysID)
	if tk.Status != state.StatusAccepted || tk.WriteBack != "done" {
		t.Errorf("ticket status %q write_back %q, want accepted, done", tk.Status, tk.WriteBack)
	}
	if notes := e.sim.Sim.WorkNotes("incident", sysID); len(notes) != 1 {
		t.Errorf("work notes %q, want exactly one", notes)
	}
	if p, l := patches.Load(), lookups.Load(); p != 1 || l != 1 {
		t.Errorf("%d PATCH and %d journal lookups, want 1 and 1", p, l)
	}
}
