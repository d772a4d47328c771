package snowsim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dop251/goja"
)

const (
	// DefaultScriptTimeout interrupts a Business Rule stuck in JavaScript (a
	// loop); blocking HTTP calls are bounded by their own timeout instead.
	DefaultScriptTimeout = 30 * time.Second
	// defaultHTTPTimeout applies when a script sets no setHttpTimeout.
	defaultHTTPTimeout = 60 * time.Second
	maxResponseBody    = 1 << 20
)

// errOutboundOff is what RESTMessageV2 calls get while outbound HTTP is
// switched off.
var errOutboundOff = errors.New("connection refused: outbound HTTP is switched off")

// scriptEnv is one script run: a fresh goja runtime (not goroutine-safe, so
// never shared) with the Glide shims bound to it.
type scriptEnv struct {
	sim  *Sim
	vm   *goja.Runtime
	rule string
	user string
	// global is whether the rule runs in the Global scope, the only one
	// with GlideCertificateEncryption.
	global bool
}

func (s *Sim) runScript(r *compiledRule, c change, user string) (err error) {
	if r.notES5 != "" {
		return fmt.Errorf("run script: SyntaxError: %s is not ES5, and a Global-scope rule runs in ES5 Standards mode", r.notES5)
	}
	vm := goja.New()
	e := &scriptEnv{sim: s, vm: vm, rule: r.Name, user: user, global: r.Scope == "" || r.Scope == GlobalScope}
	if err := e.install(c); err != nil {
		return fmt.Errorf("install shims: %w", err)
	}
	timer := time.AfterFunc(s.scriptTimeout, func() { vm.Interrupt("script timed out") })
	defer timer.Stop()
	if _, err := vm.RunProgram(r.prog); err != nil {
		return fmt.Errorf("run script: %w", err)
	}
	return nil
}

func (e *scriptEnv) install(c change) error {
	vm := e.vm
	var previous any // JS null on insert
	if c.before != nil {
		previous = e.record(c.table, c.before, c.op, nil)
	}
	sn := vm.NewObject()
	if err := sn.Set("RESTMessageV2", e.restMessage); err != nil {
		return err
	}
	strUtil := vm.NewObject()
	for name, fn := range map[string]any{
		"base64Encode": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64Decode": func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				panic(vm.NewTypeError("base64Decode: %v", err))
			}
			return string(b)
		},
	} {
		if err := strUtil.Set(name, fn); err != nil {
			return err
		}
	}
	globals := map[string]any{
		"current":               e.record(c.table, c.after, c.op, c.before),
		"previous":              previous,
		"gs":                    e.gs(),
		"sn_ws":                 sn,
		"GlideDateTime":         e.glideDateTime,
		"CertificateEncryption": e.certEncryption,
		"GlideStringUtil":       strUtil,
	}
	if e.global {
		globals["GlideCertificateEncryption"] = e.certEncryption
	}
	for name, v := range globals {
		if err := vm.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// record is a GlideRecord-like view of a record: fields as string
// properties plus the methods webhook scripts call.
func (e *scriptEnv) record(table string, fields map[string]string, op string, before map[string]string) *goja.Object {
	vm := e.vm
	o := vm.NewObject()
	for k, v := range fields {
		if !journalFields[k] {
			_ = o.Set(k, v) // Set on a plain object cannot fail
		}
	}
	value := func(f string) string {
		e.sim.mu.RLock()
		defer e.sim.mu.RUnlock()
		return e.sim.getterLocked(fields)(f)
	}
	methods := map[string]any{
		"getUniqueValue": func() string { return fields["sys_id"] },
		"getTableName":   func() string { return table },
		"operation":      func() string { return op },
		"isNewRecord":    func() bool { return op == "insert" },
		"getValue": func(f string) any {
			if v := value(f); v != "" {
				return v
			}
			return nil // GlideRecord.getValue gives null for an empty field
		},
		"getDisplayValue": func(call goja.FunctionCall) goja.Value {
			f := call.Argument(0)
			if goja.IsUndefined(f) {
				return vm.ToValue(fields["number"])
			}
			if _, ok := references[f.String()]; ok {
				return vm.ToValue(value(f.String() + ".name"))
			}
			return vm.ToValue(value(f.String()))
		},
		"changes": func() bool {
			if before == nil {
				return true
			}
			for k, v := range fields {
				if before[k] != v && k != "sys_mod_count" && k != "sys_updated_on" && k != "sys_updated_by" {
					return true
				}
			}
			return false
		},
	}
	for name, fn := range methods {
		_ = o.Set(name, fn)
	}
	return o
}

func (e *scriptEnv) gs() *goja.Object {
	vm := e.vm
	o := vm.NewObject()
	logAt := func(level slog.Level) func(goja.FunctionCall) goja.Value {
		return func(call goja.FunctionCall) goja.Value {
			msg := call.Argument(0).String()
			// gs.info("x {0} {1}", a, b) substitutes its arguments.
			for i, a := range call.Arguments[min(1, len(call.Arguments)):] {
				msg = strings.ReplaceAll(msg, "{"+strconv.Itoa(i)+"}", a.String())
			}
			e.sim.logger.Log(context.Background(), level, msg, slog.String("rule", e.rule))
			return goja.Undefined()
		}
	}
	methods := map[string]any{
		"info":            logAt(slog.LevelInfo),
		"log":             logAt(slog.LevelInfo),
		"debug":           logAt(slog.LevelDebug),
		"warn":            logAt(slog.LevelWarn),
		"error":           logAt(slog.LevelError),
		"addInfoMessage":  logAt(slog.LevelInfo),
		"addErrorMessage": logAt(slog.LevelError),
		"generateGUID":    NewSysID,
		"nowDateTime":     func() string { return formatTime(e.sim.clock()) },
		"getUserName":     func() string { return e.user },
		"getProperty": func(call goja.FunctionCall) goja.Value {
			if v, ok := e.sim.property(call.Argument(0).String()); ok {
				return vm.ToValue(v)
			}
			return call.Argument(1)
		},
	}
	for name, fn := range methods {
		_ = o.Set(name, fn)
	}
	return o
}

// glideDateTime is `new GlideDateTime([value])`: now from the sim clock, or
// the UTC date-time given as "YYYY-MM-DD HH:MM:SS".
func (e *scriptEnv) glideDateTime(call goja.ConstructorCall) *goja.Object {
	t := e.sim.clock().UTC()
	if a := call.Argument(0); !goja.IsUndefined(a) && !goja.IsNull(a) {
		if p, ok := parseDate(a.String()); ok {
			t = p
		}
	}
	o := call.This
	for name, fn := range map[string]any{
		"getNumericValue": func() int64 { return t.UnixMilli() },
		"getValue":        func() string { return formatTime(t) },
		"toString":        func() string { return formatTime(t) },
		"getDisplayValue": func() string { return formatTime(t) },
		"addSeconds":      func(n int64) { t = t.Add(time.Duration(n) * time.Second) },
		"setValue": func(v string) {
			if p, ok := parseDate(v); ok {
				t = p
			}
		},
	} {
		_ = o.Set(name, fn)
	}
	return nil
}

// certEncryption is `new GlideCertificateEncryption()` (Global scope only)
// and `new CertificateEncryption()` (any scope); generateMac takes the key
// base64-encoded and returns the MAC base64-encoded.
func (e *scriptEnv) certEncryption(call goja.ConstructorCall) *goja.Object {
	vm := e.vm
	_ = call.This.Set("generateMac", func(key, alg, data string) string {
		k, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			panic(vm.NewTypeError("generateMac: key is not base64"))
		}
		var h func() hash.Hash
		switch strings.ToLower(alg) {
		case "hmacsha256":
			h = sha256.New
		case "hmacsha1":
			h = sha1.New
		case "hmacsha512":
			h = sha512.New
		default:
			panic(vm.NewTypeError("generateMac: unsupported algorithm %s", alg))
		}
		m := hmac.New(h, k)
		m.Write([]byte(data))
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	})
	return nil
}

// outboundRequest is what a RESTMessageV2 sends.
type outboundRequest struct {
	endpoint string
	method   string
	headers  http.Header
	query    url.Values
	body     string
	timeout  time.Duration
	user     string
	pass     string
	basic    bool
}

// outboundResult is filled when the call ends; done is closed then.
type outboundResult struct {
	done    chan struct{}
	status  int
	body    string
	headers http.Header
	err     error
}

// restMessage is `new sn_ws.RESTMessageV2()`. Named REST messages are not
// simulated: the script sets endpoint and method itself.
func (e *scriptEnv) restMessage(call goja.ConstructorCall) *goja.Object {
	m := &outboundRequest{method: http.MethodGet, headers: http.Header{}, query: url.Values{}, timeout: defaultHTTPTimeout}
	if a := call.Argument(1); !goja.IsUndefined(a) {
		m.method = strings.ToUpper(a.String())
	}
	o := call.This
	for name, fn := range map[string]any{
		"setEndpoint":       func(u string) { m.endpoint = u },
		"getEndpoint":       func() string { return m.endpoint },
		"setHttpMethod":     func(v string) { m.method = strings.ToUpper(v) },
		"getHttpMethod":     func() string { return m.method },
		"setRequestHeader":  func(k, v string) { m.headers.Set(k, v) },
		"getRequestHeader":  func(k string) string { return m.headers.Get(k) },
		"setRequestBody":    func(b string) { m.body = b },
		"getRequestBody":    func() string { return m.body },
		"setQueryParameter": func(k, v string) { m.query.Set(k, v) },
		"setBasicAuth":      func(u, p string) { m.user, m.pass, m.basic = u, p, true },
		"setHttpTimeout": func(ms int64) {
			if ms > 0 {
				m.timeout = time.Duration(ms) * time.Millisecond
			}
		},
		// ECC/MID settings only matter on a real instance.
		"setEccParameter": func(string, string) {},
		"setMIDServer":    func(string) {},
		"execute": func() *goja.Object {
			res := e.sim.send(*m)
			return e.response(res)
		},
		"executeAsync": func() *goja.Object {
			req := *m
			req.headers = m.headers.Clone()
			res := &outboundResult{done: make(chan struct{})}
			delay, resend := e.sim.eccPlan()
			e.sim.startAsync()
			go func() {
				defer e.sim.endAsync()
				time.Sleep(delay) // waiting in the ECC queue
				r := e.sim.send(req)
				res.status, res.body, res.headers, res.err = r.status, r.body, r.headers, r.err
				close(res.done)
				if resend > 0 {
					time.Sleep(resend)
					e.sim.count(func(st *Stats) { st.OutboundResent++ })
					e.sim.send(req)
				}
			}()
			return e.response(res)
		},
	} {
		_ = o.Set(name, fn)
	}
	return nil
}

// response is a RESTResponseV2. Its getters wait for an async call to end
// (bounded by the call's timeout); waitForResponse waits at most n seconds.
func (e *scriptEnv) response(res *outboundResult) *goja.Object {
	o := e.vm.NewObject()
	wait := func() { <-res.done }
	for name, fn := range map[string]any{
		"waitForResponse": func(secs float64) {
			t := time.NewTimer(time.Duration(secs * float64(time.Second)))
			defer t.Stop()
			select {
			case <-res.done:
			case <-t.C:
			}
		},
		"getStatusCode": func() int { wait(); return res.status },
		"getBody":       func() string { wait(); return res.body },
		"getHeader":     func(k string) string { wait(); return res.headers.Get(k) },
		"haveError":     func() bool { wait(); return res.err != nil || res.status >= 400 },
		"getErrorCode": func() int {
			wait()
			switch {
			case res.err != nil:
				return 1
			case res.status >= 400:
				return res.status
			}
			return 0
		},
		"getErrorMessage": func() string {
			wait()
			switch {
			case res.err != nil:
				return res.err.Error()
			case res.status >= 400:
				return http.StatusText(res.status)
			}
			return ""
		},
	} {
		_ = o.Set(name, fn)
	}
	return o
}

// send makes one outbound call and counts it.
func (s *Sim) send(m outboundRequest) *outboundResult {
	res := &outboundResult{done: make(chan struct{}), headers: http.Header{}}
	defer close(res.done)
	s.count(func(st *Stats) { st.OutboundAttempted++ })
	res.err = s.doSend(m, res)
	if res.err != nil {
		res.status = 0
		s.count(func(st *Stats) { st.OutboundFailed++ })
		s.logger.Warn("outbound call failed", slog.String("method", m.method), slog.String("error", res.err.Error()))
		return res
	}
	s.count(func(st *Stats) { st.OutboundStatus[res.status]++ })
	return res
}

func (s *Sim) doSend(m outboundRequest, res *outboundResult) error {
	u, err := url.Parse(m.endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("request not sent: invalid endpoint")
	}
	if !s.outboundEnabled() {
		return fmt.Errorf("request not sent to %s: %w", u.Host, errOutboundOff)
	}
	if s.dropOutbound() {
		return fmt.Errorf("request to %s failed: %w", u.Host, errOutboundDropped)
	}
	if len(m.query) > 0 {
		q := u.Query()
		for k, vs := range m.query {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var body io.Reader
	if m.body != "" {
		body = strings.NewReader(m.body)
	}
	req, err := http.NewRequestWithContext(ctx, m.method, u.String(), body)
	if err != nil {
		return fmt.Errorf("request not sent: %w", err)
	}
	req.Header = m.headers.Clone()
	if m.basic {
		req.SetBasicAuth(m.user, m.pass)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("request to %s failed: %w", u.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return fmt.Errorf("read response from %s: %w", u.Host, err)
	}
	res.status, res.body, res.headers = resp.StatusCode, string(b), resp.Header
	return nil
}
