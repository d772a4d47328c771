package pdi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// The settings of the suite. Only the first three are required.
const (
	envURL          = "SNOWGATE_PDI_URL"
	envUser         = "SNOWGATE_PDI_USER"
	envPassword     = "SNOWGATE_PDI_PASSWORD"
	envClientID     = "SNOWGATE_PDI_CLIENT_ID"
	envClientSecret = "SNOWGATE_PDI_CLIENT_SECRET"
	envFixtures     = "SNOWGATE_PDI_FIXTURES"
	envUTCZone      = "SNOWGATE_PDI_UTC_ZONE"
	envReceiverURL  = "SNOWGATE_PDI_RECEIVER_URL"
	envReceiverAddr = "SNOWGATE_PDI_RECEIVER_ADDR"
	envAsyncWait    = "SNOWGATE_PDI_ASYNC_WAIT"
	envRateLimit    = "SNOWGATE_PDI_RATE_LIMIT_RULE"
)

// tagPrefix starts the short_description (or name) of every record the
// suite creates, followed by the run id.
const tagPrefix = "snowgate-pdi-"

// instance is a real ServiceNow instance as the suite uses it: raw HTTP
// calls whose exchanges are kept for the fixtures, and the project's client
// for what snowgate itself does.
type instance struct {
	base     *url.URL
	user     string
	password string
	// bearer is set when OAuth settings were given: raw calls then use a
	// token from the password grant, as the client does.
	bearer string
	hc     *http.Client
	client *servicenow.Client
	red    *Redactor
	dir    string
	run    string // run id
	tag    string // tagPrefix + run id
}

// connect returns the instance named by the environment, or skips t.
func connect(t *testing.T) *instance {
	t.Helper()
	raw, user, password := os.Getenv(envURL), os.Getenv(envUser), os.Getenv(envPassword)
	var missing []string
	for _, kv := range [][2]string{{envURL, raw}, {envUser, user}, {envPassword, password}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		t.Skipf("no real ServiceNow instance: set %s (see docs/testing.md, Against a real instance)", strings.Join(missing, ", "))
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		t.Fatalf("%s is not an instance URL such as https://dev12345.service-now.com", envURL)
	}
	id, secret := os.Getenv(envClientID), os.Getenv(envClientSecret)
	if (id == "") != (secret == "") {
		t.Fatalf("set both %s and %s, or neither", envClientID, envClientSecret)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	run := time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b)
	in := &instance{
		base: u, user: user, password: password,
		// No cookie jar: each call is a session of its own, as the
		// client's are, so a changed user setting is read afresh.
		hc:  &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		red: NewRedactor(u.Host, password, secret),
		dir: fixtureDir(t),
		run: run,
		tag: tagPrefix + run,
	}
	auth := servicenow.BasicAuth(user, password)
	if id != "" {
		auth = servicenow.OAuthPassword(id, secret, user, password)
		in.token(t, id, secret)
	}
	var opts []servicenow.Option
	if u.Scheme == "http" {
		opts = append(opts, servicenow.WithInsecureHTTP())
	}
	in.client, err = servicenow.New(u.String(), auth, append(opts, servicenow.WithUserAgent("snowgate-pdi"))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run %s against %s as %s (auth %s); fixtures in %s", run, u.Host, user, in.client.AuthMode(), in.dir)
	in.preflight(t)
	return in
}

// preflight makes one read and stops the run with the reason when the
// instance does not answer the API: wrong credentials, or a developer
// instance that is asleep (it answers a page, not JSON).
func (in *instance) preflight(t *testing.T) {
	t.Helper()
	e := in.call(t, http.MethodGet, tablePath("sys_user"), with(raw("sys_id"), "sysparm_query", "user_name="+in.user, "sysparm_limit", "1"), nil)
	ct := e.Response.Header.Get("Content-Type")
	switch {
	case e.Response.Status == http.StatusUnauthorized:
		in.save(t, Fixture{Name: "preflight_unauthorized", Check: "preflight", Exchanges: []Exchange{e}})
		t.Fatalf("the instance refused the credentials (401): check %s and %s (and, with OAuth, the client settings)", envUser, envPassword)
	case !strings.Contains(ct, "json"):
		in.save(t, Fixture{Name: "preflight_not_json", Check: "preflight", Note: "the API answered something other than JSON", Exchanges: []Exchange{e}})
		t.Fatalf("the instance answered status %d with %q, not JSON: a developer instance that is asleep answers a page; wake it from the developer portal and run again", e.Response.Status, ct)
	}
}

// fixtureDir is where fixtures go: SNOWGATE_PDI_FIXTURES, or the client
// package's testdata/pdi.
func fixtureDir(t *testing.T) string {
	if d := os.Getenv(envFixtures); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the suite's source directory")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "internal", "servicenow", "testdata", "pdi")
}

// token gets a bearer token with the password grant for the raw calls. The
// token request is a fixture of its own (oauth_token), redacted.
func (in *instance) token(t *testing.T, id, secret string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {id}, "client_secret": {secret}, "username": {in.user}, "password": {in.password}}
	e, err := in.exchange(context.Background(), http.MethodPost, "/oauth_token.do", nil, "application/x-www-form-urlencoded", []byte(form.Encode()), false)
	if err != nil {
		t.Fatalf("oauth token: %v", err)
	}
	var tok struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	_ = json.Unmarshal([]byte(e.Response.Body), &tok)
	in.red.Add(tok.Access, tok.Refresh)
	in.save(t, Fixture{Name: "oauth_token", Check: "oauth", Note: "password grant at /oauth_token.do", Exchanges: []Exchange{e}})
	if e.Response.Status != http.StatusOK || tok.Access == "" {
		t.Fatalf("oauth token: status %d, no access token (is the OAuth application set up? see the oauth_token fixture)", e.Response.Status)
	}
	in.bearer = tok.Access
}

// exchange sends one request and returns it with its answer, body read in
// full. path is relative to the instance ("/api/now/table/incident").
func (in *instance) exchange(ctx context.Context, method, path string, q url.Values, contentType string, body []byte, authorize bool) (Exchange, error) {
	u := in.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return Exchange{}, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "snowgate-pdi")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorize {
		if in.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+in.bearer)
		} else {
			req.SetBasicAuth(in.user, in.password)
		}
	}
	e := Exchange{Request: ExchangeRequest{Method: method, URL: u, Header: req.Header.Clone(), Body: string(body)}}
	resp, err := in.hc.Do(req)
	if err != nil {
		return e, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	e.At = time.Now().UTC()
	e.Response = ExchangeResponse{Status: resp.StatusCode, Header: resp.Header.Clone(), Body: string(b)}
	if err != nil {
		return e, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return e, nil
}

// call is exchange for the Table API with a JSON body (nil for none): it
// fails t on a transport error, never on a status, which is the caller's.
func (in *instance) call(t *testing.T, method, path string, q url.Values, body any) Exchange {
	t.Helper()
	var b []byte
	ct := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		ct = "application/json"
	}
	e, err := in.exchange(t.Context(), method, path, q, ct, b, true)
	if err != nil {
		t.Fatal(in.red.Text(err.Error()))
	}
	return e
}

// save writes a fixture and logs where.
func (in *instance) save(t *testing.T, f Fixture) {
	t.Helper()
	path, err := writeFixture(in.dir, in.red, f)
	if err != nil {
		t.Error(err)
		return
	}
	t.Logf("fixture %s", path)
}

// tablePath is /api/now/table/{table}[/{sys_id}].
func tablePath(table string, sysID ...string) string {
	p := "/api/now/table/" + table
	if len(sysID) > 0 {
		p += "/" + sysID[0]
	}
	return p
}

// raw are the parameters of a read whose values are all raw strings.
func raw(fields ...string) url.Values {
	v := url.Values{"sysparm_display_value": {"false"}, "sysparm_exclude_reference_link": {"true"}}
	if len(fields) > 0 {
		v.Set("sysparm_fields", strings.Join(fields, ","))
	}
	return v
}

// with returns v with more parameters set.
func with(v url.Values, kv ...string) url.Values {
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// result decodes the "result" of a Table API answer: one record or a list.
func result(e Exchange) (one map[string]any, list []map[string]any, err error) {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal([]byte(e.Response.Body), &env); err != nil {
		return nil, nil, fmt.Errorf("status %d, not a JSON answer: %w", e.Response.Status, err)
	}
	if len(env.Result) == 0 {
		return nil, nil, fmt.Errorf("status %d, no result: %.300s", e.Response.Status, e.Response.Body)
	}
	if env.Result[0] == '[' {
		err = json.Unmarshal(env.Result, &list)
	} else {
		err = json.Unmarshal(env.Result, &one)
	}
	return one, list, err
}

// str reads a field of a decoded record as a string; a display_value=all
// field ({"value","display_value"}) reads as its value.
func str(rec map[string]any, field string) string {
	switch v := rec[field].(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v["value"].(string)
		return s
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// display reads the display_value of a display_value=all field.
func display(rec map[string]any, field string) string {
	if m, ok := rec[field].(map[string]any); ok {
		s, _ := m["display_value"].(string)
		return s
	}
	return str(rec, field)
}

// insert creates a record with a raw POST and deletes it when t ends, even
// when t fails. It returns the exchange and the stored record; a refusal
// skips t with what the user would need, since the checks only observe.
func (in *instance) insert(t *testing.T, table string, fields map[string]string, need string) (Exchange, map[string]any) {
	t.Helper()
	e := in.call(t, http.MethodPost, tablePath(table), raw(), fields)
	rec, _, err := result(e)
	id := str(rec, "sys_id")
	if err == nil && id != "" {
		in.cleanup(t, table, id)
	}
	switch {
	case e.Response.Status == http.StatusUnauthorized:
		t.Fatalf("insert into %s: 401: check %s and %s", table, envUser, envPassword)
	case e.Response.Status == http.StatusForbidden:
		t.Skipf("insert into %s refused (403): the user needs %s", table, need)
	case e.Response.Status/100 != 2 || err != nil || id == "":
		t.Fatalf("insert into %s: status %d: %v: %.500s", table, e.Response.Status, err, in.red.Text(e.Response.Body))
	}
	return e, rec
}

// cleanup deletes table/sysID when t ends. A record already gone is fine.
func (in *instance) cleanup(t *testing.T, table, sysID string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e, err := in.exchange(ctx, http.MethodDelete, tablePath(table, sysID), nil, "", nil, true)
		if err != nil {
			t.Errorf("clean up %s %s: %v; delete it by hand (its short_description or name starts with %s)", table, sysID, in.red.Text(err.Error()), in.tag)
			return
		}
		if s := e.Response.Status; s/100 != 2 && s != http.StatusNotFound {
			t.Errorf("clean up %s %s: status %d; delete it by hand (its short_description or name starts with %s)", table, sysID, s, in.tag)
		}
	})
}

// patch updates fields of a record and returns the exchange and the record
// the answer holds (nil when it holds none).
func (in *instance) patch(t *testing.T, table, sysID string, q url.Values, fields map[string]string) (Exchange, map[string]any) {
	t.Helper()
	e := in.call(t, http.MethodPatch, tablePath(table, sysID), q, fields)
	rec, _, _ := result(e)
	return e, rec
}

// list runs an encoded query and returns the exchange and the records.
func (in *instance) list(t *testing.T, table string, q url.Values) (Exchange, []map[string]any) {
	t.Helper()
	e := in.call(t, http.MethodGet, tablePath(table), q, nil)
	_, recs, err := result(e)
	if err != nil && e.Response.Status/100 == 2 {
		t.Fatalf("query %s: %v", table, err)
	}
	return e, recs
}

// me reads the integration user's own sys_user record.
func (in *instance) me(t *testing.T, fields ...string) (Exchange, map[string]any) {
	t.Helper()
	e, recs := in.list(t, "sys_user", with(raw(append([]string{"sys_id", "user_name"}, fields...)...), "sysparm_query", "user_name="+in.user, "sysparm_limit", "1"))
	if e.Response.Status == http.StatusForbidden || len(recs) == 0 {
		t.Skipf("cannot read the integration user's sys_user record (status %d, %d rows): the user needs read on sys_user", e.Response.Status, len(recs))
	}
	return e, recs[0]
}

// findings collects what the checks settled, for the summary fixture.
type findings struct {
	mu sync.Mutex
	m  map[string]any
}

func (f *findings) set(check string, v map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]any{}
	}
	f.m[check] = v
}
