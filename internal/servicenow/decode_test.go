package servicenow

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFastDecode(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantFast bool
	}{
		{"page", `{"result":[{"sys_id":"a","number":"INC1"},{"sys_id":"b","number":"INC2"}]}`, true},
		{"whitespace", " {\n \"result\" : [ { \"a\" : \"1\" } , {} ] \n} \n", true},
		{"empty page", `{"result":[]}`, true},
		{"escapes", `{"result":[{"d":"line\nnext \"quoted\" \\ \/ \u00e9 \ud83d\ude00 \ud800"}]}`, true},
		{"non-ASCII and invalid UTF-8", "{\"result\":[{\"d\":\"caf\xc3\xa9 \xff\"}]}", true},
		{"duplicate field, last wins", `{"result":[{"a":"1","a":"2"}]}`, true},
		{"number value", `{"result":[{"a":1}]}`, false},
		{"reference object", `{"result":[{"a":{"value":"x"}}]}`, false},
		{"null result", `{"result":null}`, false},
		{"other member", `{"result":[],"x":1}`, false},
		{"escaped result key", `{"res\u0075lt":[]}`, false},
		{"trailing data", `{"result":[]}x`, false},
		{"truncated", `{"result":[{"a":"1"`, false},
		{"control character", "{\"result\":[{\"a\":\"x\ty\"}]}", false},
		{"trailing comma", `{"result":[{"a":"1"},]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := fastRecords([]byte(tc.body))
			if ok != tc.wantFast {
				t.Fatalf("fastRecords(%q) ok = %v, want %v", tc.body, ok, tc.wantFast)
			}
			if !ok {
				return
			}
			var want struct{ Result []Record }
			if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
				t.Fatalf("encoding/json rejects %q: %v", tc.body, err)
			}
			if diff := cmp.Diff(want.Result, got); diff != "" {
				t.Errorf("fastRecords(%q) mismatch (-encoding/json +fast):\n%s", tc.body, diff)
			}
		})
	}
}

// FuzzFastDecode checks that whatever the fast path accepts, encoding/json
// accepts too and decodes to the same records.
func FuzzFastDecode(f *testing.F) {
	for _, s := range []string{
		`{"result":[{"sys_id":"a","number":"INC1"}]}`,
		`{"result":{"a":"x\n\u00e9"}}`,
		"{\"result\":[{\"d\":\"caf\xc3\xa9 \xff\\ud800\"}]}",
		` { "result" : [ ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := fastRecords(body); ok {
			var want struct {
				Result []Record `json:"result"`
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatalf("fast path accepted %q, encoding/json says %v", body, err)
			}
			if diff := cmp.Diff(want.Result, got); diff != "" {
				t.Fatalf("fastRecords(%q) mismatch (-encoding/json +fast):\n%s", body, diff)
			}
		}
		if got, ok := fastRecord(body); ok {
			var want struct {
				Result Record `json:"result"`
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatalf("fast path accepted %q, encoding/json says %v", body, err)
			}
			if diff := cmp.Diff(want.Result, got); diff != "" {
				t.Fatalf("fastRecord(%q) mismatch (-encoding/json +fast):\n%s", body, diff)
			}
		}
	})
}

// BenchmarkDecodePage decodes one page of 1 000 incidents with the fields
// the processor mirrors, by the fast path and by encoding/json.
func BenchmarkDecodePage(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"result":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"sys_id":"%032x","number":"INC%07d","state":"2","priority":"3","short_description":"Disk usage above 90%% on web-%03d","description":"Monitoring reported the volume /var at 93%%.\nSee the runbook.","assignment_group":"287ebd7da9fe198100f92cc8d1d2154e","assignment_group.name":"Network","u_environment":"production","cmdb_ci":"b0c4030ac0a800090166a5e7a2fa2ee4","active":"true","sys_mod_count":"4","sys_updated_on":"2026-03-14 10:%02d:%02d"}`, i, i, i%500, i/60%60, i%60)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := fastRecords(body); !ok {
				b.Fatal("fast path refused the page")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var doc struct{ Result []Record }
			if err := json.Unmarshal(body, &doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
