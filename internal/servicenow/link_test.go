package servicenow

import (
	"net/http"
	"testing"
)

func TestNextLink(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   string
		wantOK bool
	}{
		{
			name:   "ServiceNow's header",
			header: []string{`<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=0>;rel="first",<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=2>;rel="next",<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=8>;rel="last"`},
			want:   "https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=2",
			wantOK: true,
		},
		{
			name:   "commas inside the URL",
			header: []string{`<https://x/t?sysparm_fields=sys_id,number&sysparm_offset=0>;rel="first", <https://x/t?sysparm_fields=sys_id,number&sysparm_offset=5>; rel="next"`},
			want:   "https://x/t?sysparm_fields=sys_id,number&sysparm_offset=5",
			wantOK: true,
		},
		{
			name:   "unquoted rel in a second header line",
			header: []string{`</a>; rel=first`, `</b>; rel=next`},
			want:   "/b",
			wantOK: true,
		},
		{
			name:   "several relation types",
			header: []string{`</b>; rel="next last"`},
			want:   "/b",
			wantOK: true,
		},
		{
			name:   "last page",
			header: []string{`</a>;rel="first",</z>;rel="prev",</z>;rel="last"`},
		},
		{
			name:   "next-archive is not next",
			header: []string{`</a>;rel="next-archive"`},
		},
		{name: "no header"},
		{name: "garbage", header: []string{`<unterminated;rel="next"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("Link", v)
			}
			got, ok := nextLink(h)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("nextLink(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
