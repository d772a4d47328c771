package snowsim_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// BenchmarkBusinessRule is one update firing the webhook script (fresh
// goja runtime, shims, JSON, HMAC) with outbound off, so the figure is the
// simulator's own cost per rule, not the network's.
func BenchmarkBusinessRule(b *testing.B) {
	sim := snowsim.New(snowsim.WithProperty("x_snowgate.endpoint", "http://127.0.0.1:9/x"),
		snowsim.WithProperty("x_snowgate.key", "a2V5"), snowsim.WithProperty("x_snowgate.secret", "s"))
	sim.SetOutbound(false)
	rec, err := sim.Insert("incident", map[string]string{"short_description": "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.AddBusinessRule(snowsim.Rule{Name: "wh", Table: "incident", Update: true, Script: webhookScript}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := sim.Update("incident", rec["sys_id"], map[string]string{"priority": strconv.Itoa(i%5 + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	if st := sim.Stats(); st.RuleErrors != 0 {
		b.Fatalf("%d rule errors", st.RuleErrors)
	}
}

// BenchmarkQueryPage is a reconciler-style page over 10,000 incidents:
// scope filter with a dot-walk, date range, two sort keys, 100 rows.
func BenchmarkQueryPage(b *testing.B) {
	sim := snowsim.New()
	groups := []string{"Network", "Database", "Service Desk"}
	for _, g := range groups {
		if _, err := sim.Insert("sys_user_group", map[string]string{"name": g}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 10000 {
		if _, err := sim.Insert("incident", map[string]string{
			"short_description": "bench " + strconv.Itoa(i), "assignment_group": groups[i%3],
			"u_environment": "production", "priority": strconv.Itoa(i%5 + 1),
		}); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	q := "active=true^assignment_group.nameINNetwork,Database^sys_updated_on>=2000-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"
	u := srv.URL + "/api/now/table/incident?sysparm_limit=100&sysparm_exclude_reference_link=true&sysparm_fields=sys_id,number,sys_updated_on&sysparm_query=" + url.QueryEscape(q)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
