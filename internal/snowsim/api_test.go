package snowsim_test

import (
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestCRUD(t *testing.T) {
	clk := newClock()
	sim, srv := start(t, snowsim.WithClock(clk.Now))
	base := srv.URL + "/api/now/table/incident"

	// The group is given by name, which a write resolves only with
	// sysparm_input_display_value=true (see TestReferenceWrites).
	created := call(t, "POST", base+"?sysparm_exclude_reference_link=true&sysparm_input_display_value=true", map[string]any{
		"short_description": "Disk full on app-01", "priority": 2, "assignment_group": "Network",
		"sys_mod_count": "42", // system fields are the instance's
	})
	if created.Status != 201 {
		t.Fatalf("POST: status %d, body %v", created.Status, created.Body)
	}
	rec := created.result(t)
	id, _ := rec["sys_id"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("sys_id = %q, want 32 hex digits", id)
	}
	if got, want := created.Header.Get("Location"), base+"/"+id; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	want := map[string]any{
		"number": "INC0010005", "short_description": "Disk full on app-01", "priority": "2",
		"assignment_group": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "active": "true", "state": "1",
		"sys_mod_count": "0", "sys_created_on": "2026-03-10 12:00:00", "sys_updated_on": "2026-03-10 12:00:00",
		"work_notes": "",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("created %s = %v, want %v", k, rec[k], v)
		}
	}

	clk.Advance(time.Minute)
	upd := call(t, "PATCH", base+"/"+id, map[string]any{"state": "2", "work_notes": "Looking into it"})
	if upd.Status != 200 {
		t.Fatalf("PATCH: status %d, body %v", upd.Status, upd.Body)
	}
	got := upd.result(t)
	for k, v := range map[string]any{"state": "2", "sys_mod_count": "1", "sys_updated_on": "2026-03-10 12:01:00", "work_notes": ""} {
		if got[k] != v {
			t.Errorf("updated %s = %v, want %v", k, got[k], v)
		}
	}

	// A work note alone is an update; an unchanged value is not written.
	clk.Advance(time.Minute)
	call(t, "PUT", base+"/"+id, map[string]any{"work_notes": "Accepted by gateway"})
	same := call(t, "PATCH", base+"/"+id, map[string]any{"state": "2"}).result(t)
	if same["sys_mod_count"] != "2" || same["sys_updated_on"] != "2026-03-10 12:02:00" {
		t.Errorf("after note and no-op: sys_mod_count=%v sys_updated_on=%v, want 2 and 2026-03-10 12:02:00",
			same["sys_mod_count"], same["sys_updated_on"])
	}
	if diff := cmp.Diff([]string{"Looking into it", "Accepted by gateway"}, sim.WorkNotes("incident", id)); diff != "" {
		t.Errorf("WorkNotes (-want +got):\n%s", diff)
	}

	// Closing clears active, as the instance does.
	closed := call(t, "PATCH", base+"/"+id, map[string]any{"state": 7}).result(t)
	if closed["active"] != "false" {
		t.Errorf("after state=7: active = %v, want false", closed["active"])
	}

	one := call(t, "GET", base+"/"+id+"?sysparm_fields=number,state,assignment_group.name", nil)
	if diff := cmp.Diff(map[string]any{"number": "INC0010005", "state": "7", "assignment_group.name": "Network"}, one.result(t)); diff != "" {
		t.Errorf("GET with fields (-want +got):\n%s", diff)
	}

	if r := call(t, "DELETE", base+"/"+id, nil); r.Status != 204 {
		t.Errorf("DELETE: status %d, want 204", r.Status)
	}
	if r := call(t, "GET", base+"/"+id, nil); r.Status != 404 {
		t.Errorf("GET after DELETE: status %d, want 404", r.Status)
	}
	if n := len(sim.Records("incident")); n != 4 {
		t.Errorf("Records: %d incidents, want 4", n)
	}
}

func TestReferenceRendering(t *testing.T) {
	_, srv := start(t)
	u := srv.URL + "/api/now/table/incident/00000000000000000000000000000004?sysparm_fields=assignment_group"
	tests := []struct {
		name  string
		query string
		want  any
	}{
		{"link by default", "", map[string]any{
			"link":  srv.URL + "/api/now/table/sys_user_group/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
			"value": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
		}},
		{"plain with exclude_reference_link", "&sysparm_exclude_reference_link=true&sysparm_display_value=false", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"},
		{"name with display_value", "&sysparm_display_value=true", "Network"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := call(t, "GET", u+tc.query, nil).result(t)["assignment_group"]
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("assignment_group (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorShapes(t *testing.T) {
	_, srv := start(t, snowsim.WithUser("admin", "secret"))
	tests := []struct {
		name   string
		method string
		path   string
		auth   []string
		status int
		want   map[string]any
	}{
		{"unknown table", "GET", "/api/now/table/incidents", []string{"admin", "secret"}, 400, map[string]any{
			"error": map[string]any{"message": "Invalid table incidents", "detail": nil}, "status": "failure"}},
		{"unknown record", "GET", "/api/now/table/incident/0123456789abcdef0123456789abcdef", []string{"admin", "secret"}, 404, map[string]any{
			"error":  map[string]any{"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"},
			"status": "failure"}},
		{"patch unknown record", "PATCH", "/api/now/table/incident/0123456789abcdef0123456789abcdef", []string{"admin", "secret"}, 404, map[string]any{
			"error":  map[string]any{"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"},
			"status": "failure"}},
		{"no auth", "GET", "/api/now/table/incident", nil, 401, map[string]any{
			"error": map[string]any{"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}},
		{"wrong password", "GET", "/api/now/table/incident", []string{"admin", "nope"}, 401, map[string]any{
			"error": map[string]any{"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.method == "PATCH" {
				body = map[string]any{"state": "2"}
			}
			r := call(t, tc.method, srv.URL+tc.path, body, tc.auth...)
			if r.Status != tc.status {
				t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, r.Status, tc.status)
			}
			if diff := cmp.Diff(tc.want, r.Body); diff != "" {
				t.Errorf("%s %s body (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	sim, srv := start(t, snowsim.WithPageLimit(3))
	for i := range 6 {
		if _, err := sim.Insert("incident", map[string]string{"short_description": "bulk " + strconv.Itoa(i), "u_environment": "bulk"}); err != nil {
			t.Fatal(err)
		}
	}
	list := srv.URL + "/api/now/table/incident?sysparm_query=" + url.QueryEscape("u_environment=bulk^ORDERBYnumber") + "&sysparm_fields=number"

	t.Run("links and total", func(t *testing.T) {
		r := call(t, "GET", list+"&sysparm_limit=2&sysparm_offset=2", nil)
		if got := r.Header.Get("X-Total-Count"); got != "6" {
			t.Errorf("X-Total-Count = %q, want 6", got)
		}
		rels := map[string]string{}
		for _, m := range regexp.MustCompile(`<([^>]*)>;rel="(\w+)"`).FindAllStringSubmatch(r.Header.Get("Link"), -1) {
			u, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			rels[m[2]] = u.Query().Get("sysparm_offset") + "/" + u.Query().Get("sysparm_limit")
		}
		if diff := cmp.Diff(map[string]string{"first": "0/2", "prev": "0/2", "next": "4/2", "last": "4/2"}, rels); diff != "" {
			t.Errorf("Link rels offset/limit (-want +got):\n%s\nheader: %s", diff, r.Header.Get("Link"))
		}
	})

	t.Run("follow next, limit capped", func(t *testing.T) {
		var got []string
		u := list + "&sysparm_limit=1000&sysparm_no_count=true"
		for pages := 0; u != ""; pages++ {
			if pages > 5 {
				t.Fatal("more pages than records")
			}
			r := call(t, "GET", u, nil)
			if c := r.Header.Get("X-Total-Count"); c != "" {
				t.Errorf("X-Total-Count = %q with sysparm_no_count=true, want none", c)
			}
			got = append(got, r.column(t, "number")...)
			u = nextLink(r.Header)
		}
		want := []string{"INC0010005", "INC0010006", "INC0010007", "INC0010008", "INC0010009", "INC0010010"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paged numbers (-want +got):\n%s", diff)
		}
	})

	t.Run("ACL trim after limit", func(t *testing.T) {
		recs := sim.Records("incident")
		hidden := map[string]bool{}
		for _, r := range recs {
			if r["number"] == "INC0010006" || r["number"] == "INC0010007" {
				hidden["incident/"+r["sys_id"]] = true
			}
		}
		sim.SetFaults(snowsim.Faults{Hidden: hidden})
		defer sim.SetFaults(snowsim.Faults{})

		first := call(t, "GET", list+"&sysparm_limit=3", nil)
		if diff := cmp.Diff([]string{"INC0010005"}, first.column(t, "number")); diff != "" {
			t.Errorf("first page (-want +got):\n%s", diff)
		}
		next := nextLink(first.Header)
		if next == "" {
			t.Fatal("short page has no next link; want one (the ACL trimmed the page, more records follow)")
		}
		second := call(t, "GET", next, nil)
		if diff := cmp.Diff([]string{"INC0010008", "INC0010009", "INC0010010"}, second.column(t, "number")); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
		for id := range hidden {
			if r := call(t, "GET", srv.URL+"/api/now/table/"+id, nil); r.Status != 404 {
				t.Errorf("GET hidden %s: status %d, want 404", id, r.Status)
			}
		}
	})
}

func TestSeedDemoFixture(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	sim := snowsim.New(snowsim.WithClock(func() time.Time { return now }))
	if err := sim.Seed(bytesReader(snowsim.DemoFixtureAt(now))); err != nil {
		t.Fatalf("Seed(DemoFixture): %v", err)
	}
	var groups []string
	for _, g := range sim.Records("sys_user_group") {
		groups = append(groups, g["name"])
	}
	if diff := cmp.Diff([]string{"Network", "Database", "Service Desk"}, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	scheduled := 0
	for _, c := range sim.Records("change_request") {
		if c["approval"] == "approved" && (c["state"] == "-2" || c["state"] == "-1") && c["start_date"] != "" {
			scheduled++
		}
	}
	if scheduled < 2 {
		t.Errorf("approved scheduled changes = %d, want at least 2", scheduled)
	}
	if n := len(sim.Records("incident")); n < 5 {
		t.Errorf("incidents = %d, want at least 5", n)
	}
}

func TestSeedErrors(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
	}{
		{"not JSON", `{`},
		{"unknown table", `{"problem":[{"short_description":"x"}]}`},
		{"duplicate sys_id", `{"incident":[{"sys_id":"00000000000000000000000000000001"},{"sys_id":"00000000000000000000000000000001"}]}`},
		{"nested value", `{"incident":[{"short_description":{"x":1}}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := snowsim.New().Seed(bytesReader([]byte(tc.fixture))); err == nil {
				t.Errorf("Seed(%s) = nil, want an error", tc.fixture)
			}
		})
	}
}
