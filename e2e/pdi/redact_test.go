package pdi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedaction runs always: no credential, cookie or token of a run may
// reach a fixture file.
func TestRedaction(t *testing.T) {
	const (
		password = "pdi-Passw0rd!"
		secret   = "client-secret-4711"
		access   = "tok_access_abcdef0123456789"
		refresh  = "tok_refresh_9876543210"
		session  = "JSESSIONID=0A1B2C3D4E5F"
		usertok  = "usertoken-112233"
		host     = "dev123456.service-now.com"
		quoted   = `pa"ss\\word<&>`
	)
	r := NewRedactor(host, password, secret, quoted)
	r.Add(access) // learned from the token answer
	e := Exchange{
		Request: ExchangeRequest{
			Method: http.MethodPost,
			URL:    "https://admin:" + password + "@" + host + "/oauth_token.do?client_secret=" + secret + "&sysparm_limit=1",
			Header: http.Header{
				"Authorization": {"Basic YWRtaW46cGRpLVBhc3N3MHJkIQ=="},
				"Cookie":        {session},
				"Content-Type":  {"application/x-www-form-urlencoded"},
			},
			Body: "grant_type=password&client_id=abc&client_secret=" + secret + "&username=admin&password=" + password,
		},
		Response: ExchangeResponse{
			Status: 200,
			Header: http.Header{
				"Set-Cookie":        {session + "; Path=/; Secure", "glide_user_route=glide.abc; Path=/"},
				"X-Usertoken":       {usertok},
				"X-Ratelimit-Limit": {"5"},
				"Content-Type":      {"application/json"},
			},
			Body: `{"access_token":"` + access + `","refresh_token":"` + refresh + `","scope":"useraccount","token_type":"Bearer","expires_in":1799,` +
				`"link":"https://` + host + `/api/now/table/sys_user/1","note":"Bearer ` + access + `"}`,
		},
	}
	dir := t.TempDir()
	path, err := writeFixture(dir, r, Fixture{Name: "redaction", Check: "test", Exchanges: []Exchange{e}, Findings: map[string]any{"echo": password, "quoted": "x" + quoted}})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir {
		t.Errorf("writeFixture wrote %s, want it in %s", path, dir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if strings.Contains(out, `pa\"ss`) {
		t.Errorf("fixture holds the JSON-escaped secret:\n%s", out)
	}
	for _, leak := range []string{password, secret, access, refresh, "0A1B2C3D4E5F", usertok, "YWRtaW46", host, "glide.abc"} {
		if strings.Contains(out, leak) {
			t.Errorf("fixture holds %q:\n%s", leak, out)
		}
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("fixture is not JSON: %v", err)
	}
	got := f.Exchanges[0]
	for _, c := range []struct{ name, got, want string }{
		{"kept header", got.Response.Header.Get("X-Ratelimit-Limit"), "5"},
		{"Authorization", got.Request.Header.Get("Authorization"), redacted},
		{"Set-Cookie", got.Response.Header.Values("Set-Cookie")[1], redacted},
		{"host", got.Request.URL, "https://" + fixtureHost + "/oauth_token.do?client_secret=" + redacted + "&sysparm_limit=1"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(got.Response.Body, `"token_type":"Bearer"`) || !strings.Contains(got.Response.Body, `"access_token":"`+redacted+`"`) {
		t.Errorf("response body = %s, want the token redacted and the rest kept", got.Response.Body)
	}
	if !strings.Contains(got.Request.Body, "grant_type=password") || !strings.Contains(got.Request.Body, "password="+redacted) {
		t.Errorf("request body = %s, want the form's secrets redacted and the rest kept", got.Request.Body)
	}
}

// TestRedactionKeepsQueryOrder: a URL without secrets is written as sent.
func TestRedactionKeepsQueryOrder(t *testing.T) {
	r := NewRedactor("dev1.service-now.com")
	in := "https://dev1.service-now.com/api/now/table/incident?sysparm_query=a%3Db&sysparm_limit=1&sysparm_no_count=true"
	want := "https://" + fixtureHost + "/api/now/table/incident?sysparm_query=a%3Db&sysparm_limit=1&sysparm_no_count=true"
	if got := r.Exchange(Exchange{Request: ExchangeRequest{URL: in}}).Request.URL; got != want {
		t.Errorf("redacted URL = %q, want %q", got, want)
	}
}
