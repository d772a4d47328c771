package snowsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/webhook"
)

// webhookScript has the shape of the Business Rule users are given: a
// static secret header, Standard Webhooks HMAC headers, executeAsync.
const webhookScript = `(function executeRule(current, previous /*null when async*/) {
	try {
		var body = JSON.stringify({
			sys_id: current.getUniqueValue(),
			table: current.getTableName(),
			operation: current.operation(),
			sys_mod_count: current.getValue('sys_mod_count'),
			sys_updated_on: current.getValue('sys_updated_on')
		});
		var id = 'msg_' + gs.generateGUID();
		var ts = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
		var sig = new GlideCertificateEncryption().generateMac(gs.getProperty('x_snowgate.key', ''), 'HmacSHA256', id + '.' + ts + '.' + body);
		var r = new sn_ws.RESTMessageV2();
		r.setEndpoint(gs.getProperty('x_snowgate.endpoint'));
		r.setHttpMethod('post');
		r.setRequestHeader('Content-Type', 'application/json');
		r.setRequestHeader('X-Webhook-Secret', gs.getProperty('x_snowgate.secret'));
		r.setRequestHeader('webhook-id', id);
		r.setRequestHeader('webhook-timestamp', ts);
		r.setRequestHeader('webhook-signature', 'v1,' + sig);
		r.setRequestBody(body);
		r.setHttpTimeout(5000);
		r.executeAsync();
	} catch (ex) {
		gs.error('snowgate webhook: ' + ex);
	}
})(current, previous);`

// received is a request that reached a receiver.
type received struct {
	Header http.Header
	Body   string
}

// receiver is an httptest server standing in for the ingest endpoint.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	gate chan struct{} // when non-nil, requests wait for it to close
}

func newReceiver(t *testing.T, gate chan struct{}) *receiver {
	t.Helper()
	rc := &receiver{gate: gate}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if rc.gate != nil {
			<-rc.gate
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{Header: r.Header.Clone(), Body: string(b)})
		rc.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// logs records what scripts log.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (l *logs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

const testSigningKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func webhookSim(t *testing.T, rc *receiver, opts ...snowsim.Option) (*snowsim.Sim, *httptest.Server) {
	t.Helper()
	key, err := webhook.SigningKeyBase64(testSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]snowsim.Option{
		snowsim.WithProperty("x_snowgate.endpoint", rc.URL+"/api/webhooks/ingest/0123456789abcdef01234567"),
		snowsim.WithProperty("x_snowgate.secret", "s3cret"),
		snowsim.WithProperty("x_snowgate.key", key),
	}, opts...)
	sim, srv := start(t, opts...)
	err = sim.AddBusinessRule(snowsim.Rule{
		Name: "snowgate webhook", Table: "incident", Insert: true, Update: true,
		Condition: "active=true^assignment_group.nameINNetwork", Script: webhookScript,
	})
	if err != nil {
		t.Fatalf("AddBusinessRule: %v", err)
	}
	return sim, srv
}

func waitOutbound(t *testing.T, sim *snowsim.Sim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sim.WaitOutbound(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkWebhook verifies one delivered webhook: headers, signature, body.
func checkWebhook(t *testing.T, got received, want map[string]string) {
	t.Helper()
	if h := got.Header.Get("X-Webhook-Secret"); h != "s3cret" {
		t.Errorf("X-Webhook-Secret = %q, want s3cret", h)
	}
	if h := got.Header.Get("Content-Type"); h != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", h)
	}
	key, _ := webhook.DecodeSigningKey(testSigningKey)
	id, ts := got.Header.Get("webhook-id"), got.Header.Get("webhook-timestamp")
	if sig := webhook.Sign(key, id, ts, []byte(got.Body)); got.Header.Get("webhook-signature") != sig {
		t.Errorf("webhook-signature = %q, want %q", got.Header.Get("webhook-signature"), sig)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
		t.Fatalf("body %q: %v", got.Body, err)
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("webhook body (-want +got):\n%s", diff)
	}
}

func TestBusinessRuleWebhook(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc, snowsim.WithClock(clk.Now))
	base := srv.URL + "/api/now/table/incident"

	created := call(t, "POST", base, map[string]any{"short_description": "Link down", "assignment_group": groupNetwork}).result(t)
	id := created["sys_id"].(string)
	waitOutbound(t, sim)
	clk.Advance(time.Minute)
	call(t, "PATCH", base+"/"+id, map[string]any{"priority": "2"})
	waitOutbound(t, sim)

	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d webhooks, want 2 (insert, update)", len(got))
	}
	checkWebhook(t, got[0], map[string]string{"sys_id": id, "table": "incident", "operation": "insert", "sys_mod_count": "0", "sys_updated_on": "2026-03-10 12:00:00"})
	checkWebhook(t, got[1], map[string]string{"sys_id": id, "table": "incident", "operation": "update", "sys_mod_count": "1", "sys_updated_on": "2026-03-10 12:01:00"})
	if ts := got[1].Header.Get("webhook-timestamp"); ts != "1773144060" {
		t.Errorf("webhook-timestamp = %s, want the sim clock 1773144060", ts)
	}

	// Not matching the condition: another group, or the record going inactive.
	call(t, "POST", base, map[string]any{"short_description": "Slow query", "assignment_group": groupDatabase})
	call(t, "PATCH", base+"/"+id, map[string]any{"state": "7"})
	// A PATCH that changes nothing is not an update.
	call(t, "PATCH", base+"/00000000000000000000000000000004", map[string]any{"priority": "1"})
	waitOutbound(t, sim)
	if n := len(rc.requests()); n != 2 {
		t.Errorf("receiver got %d webhooks after non-matching writes, want still 2", n)
	}
	st := sim.Stats()
	if st.RulesFired != 2 || st.OutboundAttempted != 2 || st.OutboundStatus[202] != 2 || st.OutboundFailed != 0 {
		t.Errorf("Stats = rules %d, attempted %d, 202s %d, failed %d; want 2, 2, 2, 0",
			st.RulesFired, st.OutboundAttempted, st.OutboundStatus[202], st.OutboundFailed)
	}
}

func TestBusinessRuleOutboundOff(t *testing.T) {
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc)
	sim.SetOutbound(false)
	r := call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": "Lost", "assignment_group": groupNetwork})
	if r.Status != 201 {
		t.Fatalf("POST with outbound off: status %d, want 201", r.Status)
	}
	waitOutbound(t, sim)
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver got %d webhooks with outbound off, want 0", n)
	}
	if st := sim.Stats(); st.RulesFired != 1 || st.OutboundAttempted != 1 || st.OutboundFailed != 1 {
		t.Errorf("Stats = rules %d, attempted %d, failed %d; want 1, 1, 1", st.RulesFired, st.OutboundAttempted, st.OutboundFailed)
	}

	sim.SetOutbound(true)
	call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": "Delivered", "assignment_group": groupNetwork})
	waitOutbound(t, sim)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d webhooks with outbound back on, want 1", n)
	}
}

// TestExecuteAsyncDoesNotBlock: the receiver holds every webhook until the
// PATCH has returned; were executeAsync blocking, the PATCH would hang.
func TestExecuteAsyncDoesNotBlock(t *testing.T) {
	gate := make(chan struct{})
	rc := newReceiver(t, gate)
	sim, srv := webhookSim(t, rc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body := strings.NewReader(`{"priority":"2"}`)
	req, _ := http.NewRequestWithContext(ctx, "PATCH", srv.URL+"/api/now/table/incident/00000000000000000000000000000004", body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(gate)
		t.Fatalf("PATCH while the receiver is held: %v", err)
	}
	resp.Body.Close()
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver finished %d webhooks before release, want 0", n)
	}
	close(gate)
	waitOutbound(t, sim)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d webhooks after release, want 1", n)
	}
}

func TestDuplicateFault(t *testing.T) {
	rc := newReceiver(t, nil)
	sim, srv := webhookSim(t, rc)
	sim.SetFaults(snowsim.Faults{DuplicateRate: 1})
	call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": "Twice", "assignment_group": groupNetwork})
	waitOutbound(t, sim)
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d webhooks with DuplicateRate 1, want 2", len(got))
	}
	if got[0].Body != got[1].Body || got[0].Header.Get("webhook-id") == got[1].Header.Get("webhook-id") {
		t.Errorf("duplicates: want the same body under two message ids, got %q/%q and %q/%q",
			got[0].Header.Get("webhook-id"), got[0].Body, got[1].Header.Get("webhook-id"), got[1].Body)
	}
}

func TestScriptErrorsDoNotBreakAPI(t *testing.T) {
	l := &logs{}
	sim, srv := start(t, snowsim.WithLogger(slog.New(l)), snowsim.WithScriptTimeout(100*time.Millisecond))
	scripts := []string{`throw new Error("boom")`, `undefinedFunction()`, `null.x`, `while (true) {}`}
	for _, script := range scripts {
		if err := sim.AddBusinessRule(snowsim.Rule{Name: script, Table: "incident", Insert: true, Update: true, Script: script}); err != nil {
			t.Fatalf("AddBusinessRule(%q): %v", script, err)
		}
	}
	r := call(t, "POST", srv.URL+"/api/now/table/incident", map[string]any{"short_description": "still works"})
	if r.Status != 201 {
		t.Fatalf("POST with failing rules: status %d, want 201", r.Status)
	}
	if st := sim.Stats(); st.RulesFired != len(scripts) || st.RuleErrors != len(scripts) {
		t.Errorf("Stats = fired %d, errors %d; want %d, %d", st.RulesFired, st.RuleErrors, len(scripts), len(scripts))
	}
	if n := len(l.all()); n != len(scripts) {
		t.Errorf("logged %d lines, want %d (one per failing rule): %q", n, len(scripts), l.all())
	}
}

func TestAddBusinessRuleErrors(t *testing.T) {
	tests := []struct {
		name string
		rule snowsim.Rule
	}{
		{"invalid JavaScript", snowsim.Rule{Name: "bad", Table: "incident", Insert: true, Script: "function ( {"}},
		{"unknown table", snowsim.Rule{Name: "bad", Table: "problem", Insert: true, Script: "1"}},
		{"bad condition", snowsim.Rule{Name: "bad", Table: "incident", Insert: true, Condition: "=x", Script: "1"}},
		{"never fires", snowsim.Rule{Name: "bad", Table: "incident", Script: "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := snowsim.New().AddBusinessRule(tc.rule); !errors.Is(err, snowsim.ErrBadRule) {
				t.Errorf("AddBusinessRule(%+v) = %v, want ErrBadRule", tc.rule, err)
			}
		})
	}
}

// TestShims checks each Glide shim's result, logged by gs.info from a rule.
func TestShims(t *testing.T) {
	teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("X-Echo", r.Header.Get("X-In")+" "+r.URL.Query().Get("q"))
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	}))
	defer teapot.Close()
	tests := []struct {
		name string
		expr string
		want string
	}{
		{"base64Encode", `GlideStringUtil.base64Encode("héllo")`, base64.StdEncoding.EncodeToString([]byte("héllo"))},
		{"base64Decode", `GlideStringUtil.base64Decode("aGk=")`, "hi"},
		{"GlideDateTime value", `new GlideDateTime().getValue()`, "2026-03-10 12:00:00"},
		{"GlideDateTime toString", `"" + new GlideDateTime()`, "2026-03-10 12:00:00"},
		{"GlideDateTime numeric", `new GlideDateTime().getNumericValue()`, "1773144000000"},
		{"GlideDateTime parse", `new GlideDateTime("2026-01-02 03:04:05").getNumericValue()`, "1767323045000"},
		{"generateMac", `new GlideCertificateEncryption().generateMac(GlideStringUtil.base64Encode("key"), "HmacSHA256", "data")`,
			"UDH+PZicbRU3oBP6bnOdojRj/a7DtwE32Cjjas4iG9A="},
		{"getProperty set", `gs.getProperty("p.set", "dflt")`, "value"},
		{"getProperty default", `gs.getProperty("p.unset", "dflt")`, "dflt"},
		{"generateGUID", `/^[0-9a-f]{32}$/.test(gs.generateGUID())`, "true"},
		{"getUniqueValue", `current.getUniqueValue()`, "00000000000000000000000000000004"},
		{"getValue", `current.getValue("short_description")`, "Router down in DC1"},
		{"getValue empty is null", `current.getValue("description")`, "null"},
		{"getValue dot-walk", `current.getValue("assignment_group.name")`, "Network"},
		{"field property", `current.number + ""`, "INC0010001"},
		{"getTableName", `current.getTableName()`, "incident"},
		{"operation", `current.operation()`, "update"},
		{"previous", `previous.getValue("priority") + "->" + current.getValue("priority")`, "1->2"},
		{"getDisplayValue reference", `current.getDisplayValue("assignment_group")`, "Network"},
		{"gs.getUserName", `gs.getUserName()`, "admin"},
		{"execute", `(function () {
			var r = new sn_ws.RESTMessageV2();
			r.setEndpoint(gs.getProperty("teapot"));
			r.setHttpMethod("get");
			r.setRequestHeader("X-In", "hi");
			r.setQueryParameter("q", "a b");
			var resp = r.execute();
			return [resp.getStatusCode(), resp.getBody(), resp.haveError(), resp.getHeader("X-Echo")].join("|");
		})()`, "418|short and stout|true|hi a b"},
		{"executeAsync waitForResponse", `(function () {
			var r = new sn_ws.RESTMessageV2();
			r.setEndpoint(gs.getProperty("teapot"));
			var resp = r.executeAsync();
			resp.waitForResponse(10);
			return resp.getStatusCode();
		})()`, "418"},
		{"timeout", `(function () {
			var r = new sn_ws.RESTMessageV2();
			r.setEndpoint(gs.getProperty("teapot") + "?slow=1");
			r.setHttpTimeout(50);
			var resp = r.execute();
			return resp.getStatusCode() + "|" + resp.haveError() + "|" + (resp.getErrorMessage() != "");
		})()`, "0|true|true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &logs{}
			sim, _ := start(t, snowsim.WithLogger(slog.New(l)), snowsim.WithClock(newClock().Now),
				snowsim.WithProperty("p.set", "value"), snowsim.WithProperty("teapot", teapot.URL))
			if err := sim.AddBusinessRule(snowsim.Rule{Name: "probe", Table: "incident", Update: true, Script: "gs.info(String(" + tc.expr + "))"}); err != nil {
				t.Fatalf("AddBusinessRule: %v", err)
			}
			if _, err := sim.Update("incident", "00000000000000000000000000000004", map[string]string{"priority": "2"}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range l.all() {
				if m, ok := strings.CutPrefix(m, "INFO "); ok {
					got = append(got, m)
				}
			}
			if diff := cmp.Diff([]string{tc.want}, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s\nall logs: %q", tc.expr, diff, l.all())
			}
		})
	}
}

// TestChangeOperators checks the condition operators that compare the
// record after a change with the record before it, as ServiceNow lists
// them for conditions evaluated on a change ("Operators available for
// filters and queries"): changes (VALCHANGES), changes from (CHANGESFROM),
// changes to (CHANGESTO). On an insert the record before is empty.
func TestChangeOperators(t *testing.T) {
	tests := []struct {
		name      string
		condition string
		insert    map[string]any
		update    map[string]any
		// whether the rule fires on the insert and on the update
		onInsert, onUpdate bool
	}{
		{"changes: the field changes", "priorityVALCHANGES", map[string]any{"priority": "3"}, map[string]any{"priority": "1"}, true, true},
		{"changes: another field changes", "priorityVALCHANGES", map[string]any{"priority": "3"}, map[string]any{"urgency": "1"}, true, false},
		{"changes: empty on insert", "descriptionVALCHANGES", map[string]any{}, map[string]any{"description": "x"}, false, true},
		{"changes from: the value it had", "stateCHANGESFROM1", map[string]any{"state": "1"}, map[string]any{"state": "2"}, false, true},
		{"changes from: another value", "stateCHANGESFROM2", map[string]any{"state": "1"}, map[string]any{"state": "3"}, false, false},
		{"changes to: the value it gets", "stateCHANGESTO7", map[string]any{"state": "1"}, map[string]any{"state": "7"}, false, true},
		{"changes to: set on insert", "stateCHANGESTO2", map[string]any{"state": "2"}, map[string]any{"priority": "1"}, true, false},
		{"changes to: derived field", "activeCHANGESTOfalse", map[string]any{"state": "1"}, map[string]any{"state": "8"}, false, true},
		{"changes to: compared case-sensitively", "u_environmentCHANGESTOProd", map[string]any{"u_environment": "test"}, map[string]any{"u_environment": "prod"}, false, false},
		{"changes from on a reference, by sys_id", "assignment_groupCHANGESFROM" + groupNetwork,
			map[string]any{"assignment_group": groupNetwork}, map[string]any{"assignment_group": groupDatabase}, false, true},
		{"ANDed with a plain term", "stateCHANGESTO6^priority=1", map[string]any{"priority": "2"}, map[string]any{"state": "6"}, false, false},
		{"ORed with a plain term", "stateCHANGESTO6^ORpriority=2", map[string]any{"priority": "2"}, map[string]any{"state": "6", "priority": "3"}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, srv := start(t)
			if err := sim.AddBusinessRule(snowsim.Rule{Name: "r", Table: "incident", Insert: true, Update: true,
				Condition: tc.condition, Script: "(function executeRule(current, previous) {})(current, previous);"}); err != nil {
				t.Fatalf("AddBusinessRule: %v", err)
			}
			base := srv.URL + "/api/now/table/incident"
			body := map[string]any{"short_description": "op"}
			maps.Copy(body, tc.insert)
			id := call(t, "POST", base, body).result(t)["sys_id"].(string)
			if fired := sim.Stats().RulesFired == 1; fired != tc.onInsert {
				t.Errorf("condition %q on insert %v: fired = %v, want %v", tc.condition, tc.insert, fired, tc.onInsert)
			}
			before := sim.Stats().RulesFired
			call(t, "PATCH", base+"/"+id, tc.update)
			if fired := sim.Stats().RulesFired > before; fired != tc.onUpdate {
				t.Errorf("condition %q on update %v: fired = %v, want %v", tc.condition, tc.update, fired, tc.onUpdate)
			}
		})
	}
}
