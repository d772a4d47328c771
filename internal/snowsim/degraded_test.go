package snowsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestQuotaCancelled follows ServiceNow KB1297438 (the response of a REST
// Table API call cancelled by a transaction quota rule): a transaction that
// ran on an API thread and was cancelled answers 200, its payload cut off,
// with the error and a failure status appended at the end of the body.
func TestQuotaCancelled(t *testing.T) {
	sim, srv := start(t)
	sim.SetFaults(snowsim.Faults{QuotaCancelRate: 1})
	resp, err := http.Get(srv.URL + "/api/now/table/incident")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	if !bytes.HasPrefix(body, []byte(`{"result":[`)) {
		t.Errorf("body %.40q…, want the start of a result list", body)
	}
	if !bytes.HasSuffix(body, []byte(`},"status":"failure"}`)) || !bytes.Contains(body, []byte(`"error":{"message":"Transaction cancelled`)) {
		t.Errorf("body ends %q, want an error object and a failure status appended", body[max(0, len(body)-160):])
	}
	if json.Valid(body) {
		t.Errorf("body is valid JSON, want the payload cut off")
	}
	if !strings.Contains(string(body), "INC0010001") || strings.Contains(string(body), "INC0010004") {
		t.Errorf("body holds %q, want the first records and not the last", body)
	}

	sim.SetFaults(snowsim.Faults{})
	if r := call(t, "GET", srv.URL+"/api/now/table/incident", nil); len(r.column(t, "number")) != 4 {
		t.Errorf("with the fault off: %d records, want 4", len(r.column(t, "number")))
	}
}

// TestHibernating follows the ServiceNow developer blog "Hibernation and
// developer instances": a hibernating instance answers HTTP with a page
// saying so and pointing to the developer portal, so an API client gets 200
// and HTML, for the Table API and the token endpoint alike.
func TestHibernating(t *testing.T) {
	sim, srv := start(t, snowsim.WithHibernating())
	for _, req := range []struct{ method, path string }{
		{"GET", "/api/now/table/incident"},
		{"PATCH", "/api/now/table/incident/00000000000000000000000000000004"},
		{"POST", "/oauth_token.do"},
	} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, strings.NewReader(`{"priority":"3"}`))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("<html")) {
			t.Errorf("%s %s: status %d Content-Type %q body %.30q, want 200 and an HTML page",
				req.method, req.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if rec, _ := sim.Record("incident", "00000000000000000000000000000004"); rec["priority"] != "1" || rec["sys_mod_count"] != "0" {
		t.Errorf("after a PATCH to a hibernating instance: priority %q sys_mod_count %q, want 1 and 0 (nothing served)",
			rec["priority"], rec["sys_mod_count"])
	}
	sim.SetHibernating(false)
	if r := call(t, "GET", srv.URL+"/api/now/table/incident", nil); r.Status != 200 || len(r.column(t, "number")) != 4 {
		t.Errorf("awake: status %d, want 200 and 4 records", r.Status)
	}
}
