package servicenow_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/servicenow"
)

func TestQuery(t *testing.T) {
	errStop := errors.New("stop")
	all := generateIncidents(23)
	tests := []struct {
		name      string
		setup     func(p *pager)
		stopAt    int // page that returns errStop (1-based); 0 never
		wantIDs   func() []string
		wantStats servicenow.QueryStats
		wantErr   error
	}{
		{
			name: "pages by Link across a trimmed page and an empty page",
			setup: func(p *pager) {
				// Page 3 (10-14) loses three records to an ACL, page 4
				// (15-19) loses all five: neither is the last page.
				p.hidden = func(i int) bool { return (i >= 11 && i <= 13) || (i >= 15 && i <= 19) }
			},
			wantIDs:   func() []string { return idsExcept(all, 11, 12, 13, 15, 16, 17, 18, 19) },
			wantStats: servicenow.QueryStats{Pages: 5, Calls: 5, Records: 15},
		},
		{
			name:      "link naming another host is followed on the instance",
			setup:     func(p *pager) { p.linkBase = "https://canonical.service-now.com" },
			wantIDs:   func() []string { return idsExcept(all) },
			wantStats: servicenow.QueryStats{Pages: 5, Calls: 5, Records: 23},
		},
		{
			name:      "a page answered 503 is retried",
			setup:     func(p *pager) { p.fail[10] = true },
			wantIDs:   func() []string { return idsExcept(all) },
			wantStats: servicenow.QueryStats{Pages: 5, Calls: 6, Records: 23},
		},
		{
			name:      "a page error stops paging",
			stopAt:    2,
			wantIDs:   func() []string { return idsExcept(all[:10]) },
			wantStats: servicenow.QueryStats{Pages: 2, Calls: 2, Records: 10},
			wantErr:   errStop,
		},
		{
			name:      "a next link to the same page is refused",
			setup:     func(p *pager) { p.stuck = true },
			wantIDs:   func() []string { return idsExcept(all[:5]) },
			wantStats: servicenow.QueryStats{Pages: 1, Calls: 1, Records: 5},
			wantErr:   servicenow.ErrBadResponse,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPager(t, all)
			if tc.setup != nil {
				tc.setup(p)
			}
			w := &waits{}
			c := newClient(t, p.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))
			var got []string
			stats, err := c.Query(context.Background(), "incident", servicenow.Query{
				Encoded:  "active=true^ORDERBYsys_updated_on^ORDERBYsys_id",
				Fields:   []string{"sys_id", "number"},
				PageSize: 5,
			}, func(page []servicenow.Record) error {
				for _, r := range page {
					got = append(got, r.SysID())
				}
				if tc.stopAt > 0 && len(p.requests()) >= tc.stopAt {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Query() error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantIDs(), got); diff != "" {
				t.Errorf("records mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantStats, stats); diff != "" {
				t.Errorf("stats mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryParameters(t *testing.T) {
	p := newPager(t, generateIncidents(3))
	c := newClient(t, p.URL, servicenow.BasicAuth(testUser, testPassword))
	_, err := c.Query(context.Background(), "change_request", servicenow.Query{
		Encoded: "active=true^sys_updated_on>=2026-03-14 10:00:00^ORDERBYsys_updated_on",
		Fields:  servicenow.ChangeRequestFields,
	}, func([]servicenow.Record) error { return nil })
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	want := url.Values{
		"sysparm_query":                  {"active=true^sys_updated_on>=2026-03-14 10:00:00^ORDERBYsys_updated_on"},
		"sysparm_fields":                 {strings.Join(servicenow.ChangeRequestFields, ",")},
		"sysparm_limit":                  {"1000"},
		"sysparm_display_value":          {"false"},
		"sysparm_exclude_reference_link": {"true"},
		"sysparm_no_count":               {"true"},
	}
	if diff := cmp.Diff(want, p.requests()[0]); diff != "" {
		t.Errorf("query parameters mismatch (-want +got):\n%s", diff)
	}
}

func idsExcept(recs []map[string]string, skip ...int) []string {
	var out []string
	for i, r := range recs {
		skipped := false
		for _, s := range skip {
			skipped = skipped || s == i
		}
		if !skipped {
			out = append(out, r["sys_id"])
		}
	}
	return out
}
