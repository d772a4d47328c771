package servicenow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// newSim serves a simulated instance with one user and one OAuth client,
// seeded with records.
func newSim(tb testing.TB, records map[string][]map[string]string, opts ...snowsim.Option) (*snowsim.Sim, string) {
	tb.Helper()
	opts = append([]snowsim.Option{snowsim.WithUser(testUser, testPassword), snowsim.WithOAuthClientCredentials(testClientID, testClientSecret, testUser)}, opts...)
	sim := snowsim.New(opts...)
	if len(records) > 0 {
		b, err := json.Marshal(records)
		if err != nil {
			tb.Fatal(err)
		}
		if err := sim.Seed(bytes.NewReader(b)); err != nil {
			tb.Fatalf("Seed: %v", err)
		}
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestSimulator(t *testing.T) {
	auths := []struct {
		name string
		auth servicenow.Auth
	}{
		{"basic", servicenow.BasicAuth(testUser, testPassword)},
		{"oauth client credentials", servicenow.OAuthClientCredentials(testClientID, testClientSecret)},
		{"oauth password", servicenow.OAuthPassword(testClientID, testClientSecret, testUser, testPassword)},
	}
	for _, a := range auths {
		t.Run(a.name, func(t *testing.T) {
			ctx := context.Background()
			sim, url := newSim(t, nil)
			c := newClient(t, url, a.auth)

			ins, err := c.Insert(ctx, "incident", map[string]string{
				"short_description": "Disk full on web-01", "priority": "2", "u_environment": "production",
			})
			if err != nil {
				t.Fatalf("Insert: %v", err)
			}
			sysID := ins.SysID()

			if err := c.AddWorkNote(ctx, "incident", sysID, "Accepted by gateway prod"); err != nil {
				t.Fatalf("AddWorkNote: %v", err)
			}
			if diff := cmp.Diff([]string{"Accepted by gateway prod"}, sim.WorkNotes("incident", sysID)); diff != "" {
				t.Errorf("work notes mismatch (-want +got):\n%s", diff)
			}
			if _, err := c.Update(ctx, "incident", sysID, map[string]string{"state": "2"}); err != nil {
				t.Fatalf("Update: %v", err)
			}

			rec, err := c.Get(ctx, "incident", sysID, servicenow.IncidentFields...)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			inc, err := servicenow.IncidentFrom(rec)
			if err != nil {
				t.Fatalf("IncidentFrom: %v", err)
			}
			if inc.SysID != sysID || inc.State != "2" || inc.ShortDescription != "Disk full on web-01" ||
				inc.Environment != "production" || !inc.Active || inc.SysModCount != 2 || inc.SysUpdatedOn.IsZero() {
				t.Errorf("IncidentFrom(Get()) = %+v", inc)
			}

			// With OAuth, the client recovers from expired tokens by
			// fetching a new one.
			sim.ExpireTokens()
			if _, err := c.Get(ctx, "incident", sysID); err != nil {
				t.Errorf("Get after the tokens expired: %v", err)
			}

			_, err = c.Get(ctx, "incident", snowsim.NewSysID())
			if !errors.Is(err, servicenow.ErrNotFound) {
				t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestSimulatorQuery(t *testing.T) {
	const n = 10000
	hidden := map[string]bool{}
	recs := generateIncidents(n)
	// An ACL hides 300 records of the fourth page and all of the seventh.
	for i := 3000; i < 3300; i++ {
		hidden["incident/"+recs[i]["sys_id"]] = true
	}
	for i := 6000; i < 7000; i++ {
		hidden["incident/"+recs[i]["sys_id"]] = true
	}
	sim, url := newSim(t, map[string][]map[string]string{"incident": recs})
	sim.SetFaults(snowsim.Faults{Hidden: hidden})
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))

	var numbers []string
	stats, err := c.Query(context.Background(), "incident", servicenow.Query{
		Encoded:  "active=true^u_environment=production^ORDERBYnumber",
		Fields:   servicenow.IncidentFields,
		PageSize: 1000,
	}, func(page []servicenow.Record) error {
		for _, r := range page {
			if _, err := servicenow.IncidentFrom(r); err != nil {
				return err
			}
			numbers = append(numbers, r["number"])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if diff := cmp.Diff(servicenow.QueryStats{Pages: 10, Calls: 10, Records: n - 1300}, stats); diff != "" {
		t.Errorf("stats mismatch (-want +got):\n%s", diff)
	}
	if len(numbers) != n-1300 || numbers[0] != "INC0000001" || numbers[len(numbers)-1] != "INC0010000" {
		t.Errorf("got %d records from %v to %v", len(numbers), first(numbers), last(numbers))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// BenchmarkQuery reads 10 000 matching incidents in pages of 1 000, the
// reconciler's worst case, reporting records/s and allocations per record.
// "simulator" runs the whole exchange (the simulator matches, sorts and
// renders every page in the same process, so its allocations count too);
// "static pages" serves pre-encoded pages, leaving mostly the client's own
// cost.
func BenchmarkQuery(b *testing.B) {
	const n = 10000
	recs := generateIncidents(n)
	b.Run("simulator", func(b *testing.B) {
		_, url := newSim(b, map[string][]map[string]string{"incident": recs})
		benchmarkQuery(b, url, n)
	})
	b.Run("static pages", func(b *testing.B) {
		benchmarkQuery(b, newPager(b, recs).URL, n)
	})
}

func benchmarkQuery(b *testing.B, url string, n int) {
	c, err := servicenow.New(url, servicenow.BasicAuth(testUser, testPassword))
	if err != nil {
		b.Fatal(err)
	}
	q := servicenow.Query{Encoded: "active=true^ORDERBYnumber", Fields: servicenow.IncidentFields, PageSize: 1000}
	ctx := context.Background()
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		stats, err := c.Query(ctx, "incident", q, func([]servicenow.Record) error { return nil })
		if err != nil || stats.Records != n {
			b.Fatalf("Query() = %+v, %v; want %d records", stats, err, n)
		}
	}
	runtime.ReadMemStats(&after)
	records := float64(b.N * n)
	b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/records, "B/record")
}
