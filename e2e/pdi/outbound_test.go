package pdi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runHeader names the run in the calls the instance sends to the receiver,
// so that the receiver ignores anything else that reaches it.
const runHeader = "X-Snowgate-Pdi-Run"

// delivery is one call the instance made to the receiver.
type delivery struct {
	At     time.Time   `json:"at"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
	// SysID is the record the call is about; Sent is the instance's clock
	// when the rule ran (ms since the epoch). Both are from the body.
	SysID string `json:"sys_id"`
	Sent  int64  `json:"sent_ms"`
}

// receiver listens where the public receiver URL forwards to and keeps the
// calls of this run.
type receiver struct {
	mu  sync.Mutex
	got []delivery
	run string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if r.Header.Get(runHeader) != rc.run {
		http.Error(w, "not this run", http.StatusNotFound)
		return
	}
	d := delivery{At: time.Now().UTC(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(b)}
	var p struct {
		SysID string `json:"sys_id"`
		Sent  int64  `json:"sent_ms"`
	}
	_ = json.Unmarshal(b, &p)
	d.SysID, d.Sent = p.SysID, p.Sent
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"received":true}`)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// checkExecuteAsync: how late, in which order and how often does
// RESTMessageV2.executeAsync() deliver? An after-insert Business Rule on
// incident posts each new tagged record to SNOWGATE_PDI_RECEIVER_URL, a
// public URL that forwards to SNOWGATE_PDI_RECEIVER_ADDR on this machine,
// where the check listens. Five records are inserted one after the other;
// the check waits for their calls (SNOWGATE_PDI_ASYNC_WAIT, 3m by default)
// and a little longer for calls sent twice.
func checkExecuteAsync(t *testing.T, in *instance, sum *findings) {
	target := os.Getenv(envReceiverURL)
	if target == "" {
		t.Skipf("%s is not set: executeAsync delivery needs a public URL the instance can reach, forwarding to %s (default 127.0.0.1:8787) where this check listens; see docs/testing.md", envReceiverURL, envReceiverAddr)
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		t.Fatalf("%s is not an http(s) URL", envReceiverURL)
	}
	addr := os.Getenv(envReceiverAddr)
	if addr == "" {
		addr = "127.0.0.1:8787"
	}
	wait := 3 * time.Minute
	if s := os.Getenv(envAsyncWait); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", envAsyncWait, err)
		}
		wait = d
	}
	rc := &receiver{run: in.run}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s for the receiver: %v", addr, err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("receiver: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })

	var exs []Exchange
	out := map[string]any{"receiver_url": "REDACTED-RECEIVER", "wait": wait.String()}
	in.red.Add(target)
	defer func() {
		ds := rc.deliveries()
		for i := range ds {
			ds[i].Header = in.red.Header(ds[i].Header)
			ds[i].Body = in.red.Text(ds[i].Body)
		}
		out["deliveries"] = ds
		in.save(t, Fixture{Name: "execute_async", Check: "RESTMessageV2.executeAsync() delivery: delay, order, repeats", Findings: out, Exchanges: exs})
		delete(out, "deliveries")
		sum.set("execute_async", out)
	}()

	script := "(function executeRule(current, previous) {\n" +
		"\tvar r = new sn_ws.RESTMessageV2();\n" +
		"\tr.setEndpoint(" + strconv.Quote(target) + ");\n" +
		"\tr.setHttpMethod('post');\n" +
		"\tr.setRequestHeader('Content-Type', 'application/json');\n" +
		"\tr.setRequestHeader(" + strconv.Quote(runHeader) + ", " + strconv.Quote(in.run) + ");\n" +
		"\tr.setRequestBody(JSON.stringify({sys_id: current.getUniqueValue(), sent_ms: new GlideDateTime().getNumericValue()}));\n" +
		"\tr.executeAsync();\n" +
		"})(current, previous);"
	tag := in.tag + " async"
	e := in.call(t, http.MethodPost, tablePath("sys_script"), raw("sys_id", "name", "sys_scope"),
		businessRule(tag, "incident", "after", "short_descriptionSTARTSWITH"+tag+"^EQ", script))
	exs = append(exs, e)
	rule, _, _ := result(e)
	if id := str(rule, "sys_id"); id != "" {
		in.cleanup(t, "sys_script", id)
	}
	if e.Response.Status/100 != 2 {
		out["needs"] = needRule
		t.Skipf("create the Business Rule: status %d: the check needs %s", e.Response.Status, needRule)
	}

	const n = 5
	inserted := map[string]time.Time{}
	var order []string
	for i := range n {
		ie, inc := in.insert(t, "incident", map[string]string{"short_description": fmt.Sprintf("%s %d", tag, i)}, needIncident)
		exs = append(exs, ie)
		id := str(inc, "sys_id")
		inserted[id] = ie.At
		order = append(order, id)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && len(distinct(rc.deliveries())) < n {
		time.Sleep(time.Second)
	}
	// Calls sent twice come later still.
	time.Sleep(min(30*time.Second, wait/4))

	ds := rc.deliveries()
	var delays, instanceDelays []string
	var arrival []string
	for _, d := range ds {
		if at, ok := inserted[d.SysID]; ok {
			delays = append(delays, d.At.Sub(at).Round(time.Millisecond).String())
			arrival = append(arrival, d.SysID)
		}
		if d.Sent > 0 {
			instanceDelays = append(instanceDelays, d.At.Sub(time.UnixMilli(d.Sent)).Round(time.Millisecond).String())
		}
	}
	got := distinct(ds)
	out["inserted"] = n
	out["delivered_records"] = len(got)
	out["deliveries_total"] = len(ds)
	out["delay_after_insert_answer"] = delays
	out["delay_after_rule_ran"] = instanceDelays
	out["in_insert_order"] = slices.Equal(dedupe(arrival), order)
	t.Logf("executeAsync: %d of %d records delivered, %d calls; delay after the insert's answer %v (after the rule ran, instance clock: %v); in order: %v",
		len(got), n, len(ds), delays, instanceDelays, out["in_insert_order"])
	if len(got) < n {
		t.Errorf("%d of %d records delivered within %s: is %s reachable from the instance and forwarded to %s? (the instance's outbound HTTP log, sys_outbound_http_log, says what it sent)", len(got), n, wait, envReceiverURL, addr)
	}
}

func distinct(ds []delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		if d.SysID != "" {
			m[d.SysID]++
		}
	}
	return m
}

func dedupe(ids []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// checkRateLimit: which headers does a 5-per-hour rate limit rule send, on
// the answers it counts and on the one it refuses? Only with
// SNOWGATE_PDI_RATE_LIMIT_RULE=1, since it creates a rule on
// sys_rate_limit_rules (admin or rate_limit_admin) and throttles the user
// on the API it covers. The rule covers the Aggregate API
// (/api/now/stats), not the Table API, so that the suite's own calls, and
// deleting the rule, are never throttled. Field names and choice values are
// looked up in sys_dictionary and sys_choice by their labels, which the
// documentation gives.
func checkRateLimit(t *testing.T, in *instance, sum *findings) {
	if os.Getenv(envRateLimit) != "1" {
		t.Skipf("%s is not 1: this check creates a 5-per-hour rate limit rule for the integration user on the Aggregate API (needs admin or rate_limit_admin) and deletes it after", envRateLimit)
	}
	const table = "sys_rate_limit_rules"
	var exs []Exchange
	out := map[string]any{}
	defer func() {
		in.save(t, Fixture{Name: "rate_limit", Check: "headers of a 5-per-hour rate limit rule", Findings: out, Exchanges: exs})
		sum.set("rate_limit", out)
	}()
	de, dict := in.list(t, "sys_dictionary", with(raw("element", "column_label", "internal_type", "reference"), "sysparm_query", "name="+table+"^elementISNOTEMPTY"))
	exs = append(exs, de)
	if de.Response.Status != http.StatusOK || len(dict) == 0 {
		t.Skipf("no fields of %s in sys_dictionary (status %d, %d rows): the table is missing, or the user may not read sys_dictionary (the check needs admin)", table, de.Response.Status, len(dict))
	}
	field := func(labels ...string) (element, reference string) {
		for _, d := range dict {
			for _, l := range labels {
				if strings.EqualFold(str(d, "column_label"), l) {
					return str(d, "element"), str(d, "reference")
				}
			}
		}
		return "", ""
	}
	fName, _ := field("Name")
	fActive, _ := field("Active")
	fRate, _ := field("Request limit per hour", "Requests per hour", "Rate")
	fApply, _ := field("Apply to", "Type")
	fUser, _ := field("User")
	fAPI, apiTable := field("REST API")
	out["fields"] = map[string]string{"name": fName, "active": fActive, "rate": fRate, "apply_to": fApply, "user": fUser, "rest_api": fAPI, "rest_api_table": apiTable}
	if fName == "" || fRate == "" || fApply == "" || fUser == "" || fAPI == "" || apiTable == "" {
		t.Fatalf("%s lacks a field the check looks for by label (%v): see sys_dictionary in the rate_limit fixture", table, out["fields"])
	}
	ce, choices := in.list(t, "sys_choice", with(raw("value", "label"), "sysparm_query", "name="+table+"^element="+fApply))
	exs = append(exs, ce)
	single := ""
	for _, c := range choices {
		if strings.Contains(strings.ToLower(str(c, "label")), "single user") || strings.EqualFold(str(c, "label"), "user") {
			single = str(c, "value")
		}
	}
	if single == "" {
		t.Fatalf("no \"Single user\" choice for %s.%s: see sys_choice in the rate_limit fixture", table, fApply)
	}
	ae, apis := in.list(t, apiTable, with(raw("sys_id", "name", "base_uri"), "sysparm_query", "base_uri=/api/now/stats^ORname=Aggregate API"))
	exs = append(exs, ae)
	// Not apis[0]: an encoded query term on a field the table lacks is
	// ignored, which would answer every API.
	api := ""
	for _, a := range apis {
		if str(a, "base_uri") == "/api/now/stats" || str(a, "name") == "Aggregate API" {
			api = str(a, "sys_id")
			break
		}
	}
	if api == "" {
		t.Fatalf("the Aggregate API is not in %s (status %d, %d rows): see the rate_limit fixture", apiTable, ae.Response.Status, len(apis))
	}
	_, me := in.me(t)
	re := in.call(t, http.MethodPost, tablePath(table), raw(), map[string]string{
		fName: in.tag + " rate limit", fActive: "true", fRate: "5", fApply: single, fUser: str(me, "sys_id"), fAPI: api,
	})
	exs = append(exs, re)
	rule, _, _ := result(re)
	ruleID := str(rule, "sys_id")
	if ruleID != "" {
		in.cleanup(t, table, ruleID)
	}
	if re.Response.Status/100 != 2 || ruleID == "" {
		out["needs"] = "create and delete on sys_rate_limit_rules (admin or rate_limit_admin)"
		t.Skipf("create the rate limit rule: status %d: the check needs %s", re.Response.Status, out["needs"])
	}
	// Counts are committed every 30 seconds: a new rule may take that long.
	time.Sleep(35 * time.Second)
	var calls []map[string]any
	refused := 0
	for i := 0; i < 15 && refused < 2; i++ {
		e, err := in.exchange(t.Context(), http.MethodGet, "/api/now/stats/incident", url.Values{"sysparm_count": {"true"}}, "", nil, true)
		if err != nil {
			t.Fatal(in.red.Text(err.Error()))
		}
		exs = append(exs, e)
		h := e.Response.Header
		calls = append(calls, map[string]any{
			"status": e.Response.Status, "x_ratelimit_limit": h.Get("X-RateLimit-Limit"), "x_ratelimit_reset": h.Get("X-RateLimit-Reset"),
			"x_ratelimit_rule": h.Get("X-RateLimit-Rule"), "retry_after": h.Get("Retry-After"), "at_unix": e.At.Unix(),
		})
		if e.Response.Status == http.StatusTooManyRequests {
			refused++
		}
		time.Sleep(2 * time.Second)
	}
	out["calls"] = calls
	out["rule_sys_id"] = ruleID
	t.Logf("rate limit rule %s: %v", ruleID, calls)
	if refused == 0 {
		t.Errorf("no 429 in %d calls under a 5-per-hour rule: see the rate_limit fixture (the rule as stored, the headers)", len(calls))
	}
}
