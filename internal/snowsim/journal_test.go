package snowsim_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestJournal follows ServiceNow's "Journal fields" (Table administration)
// and "Retrieve journal entries using direct web services" (API reference):
// comments and work notes are stored as sys_journal_field records keyed by
// element_id (the record's sys_id) and element (the field), not on the
// record, and every entry is an update of the record.
func TestJournal(t *testing.T) {
	clk := newClock()
	sim, srv := start(t, snowsim.WithClock(clk.Now), snowsim.WithUser("svc", "pw"), snowsim.WithUser("agent", "pw"))
	if err := sim.AddBusinessRule(snowsim.Rule{
		Name: "count updates", Table: "incident", Update: true, Script: `gs.info('updated')`,
	}); err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/api/now/table/incident"

	created := call(t, "POST", base, map[string]any{"short_description": "Queue stuck", "comments": "Seen by monitoring"}, "svc", "pw").result(t)
	id := created["sys_id"].(string)
	if created["comments"] != "" {
		t.Errorf("created comments = %v, want \"\" (a journal field reads empty)", created["comments"])
	}

	clk.Advance(time.Minute)
	upd := call(t, "PATCH", base+"/"+id, map[string]any{"work_notes": "Restarted the consumer"}, "agent", "pw")
	got := upd.result(t)
	if got["sys_mod_count"] != "1" || got["work_notes"] != "" || got["sys_updated_by"] != "agent" {
		t.Errorf("after a work note: sys_mod_count=%v work_notes=%q sys_updated_by=%v, want 1, \"\" and agent",
			got["sys_mod_count"], got["work_notes"], got["sys_updated_by"])
	}
	if n := sim.Stats().RulesFired; n != 1 {
		t.Errorf("update rules fired %d times for a journal-only update, want 1", n)
	}

	q := "element_id=" + id + "^elementINcomments,work_notes^ORDERBYsys_created_on"
	list := call(t, "GET", srv.URL+"/api/now/table/sys_journal_field?sysparm_query="+url.QueryEscape(q)+
		"&sysparm_fields=element_id,element,value,name,sys_created_on,sys_created_by", nil, "svc", "pw")
	want := []any{
		map[string]any{"element_id": id, "element": "comments", "value": "Seen by monitoring", "name": "incident",
			"sys_created_on": "2026-03-10 12:00:00", "sys_created_by": "svc"},
		map[string]any{"element_id": id, "element": "work_notes", "value": "Restarted the consumer", "name": "incident",
			"sys_created_on": "2026-03-10 12:01:00", "sys_created_by": "agent"},
	}
	if diff := cmp.Diff(want, list.Body["result"]); diff != "" {
		t.Errorf("sys_journal_field entries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Restarted the consumer"}, sim.WorkNotes("incident", id)); diff != "" {
		t.Errorf("WorkNotes (-want +got):\n%s", diff)
	}

	// An empty journal value appends nothing and changes nothing.
	same := call(t, "PATCH", base+"/"+id, map[string]any{"work_notes": ""}, "agent", "pw").result(t)
	if same["sys_mod_count"] != "1" {
		t.Errorf("after an empty work note: sys_mod_count = %v, want 1", same["sys_mod_count"])
	}
}
