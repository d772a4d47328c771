package pdi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// redacted replaces every credential, cookie and token in a fixture.
const redacted = "REDACTED"

// fixtureHost replaces the instance's host name in a fixture, so that a
// committed fixture does not name whose instance it came from.
const fixtureHost = "instance.example.service-now.com"

// Exchange is one HTTP request and its answer as the instance sent it. Body
// is the raw text, not re-encoded JSON, so a truncated or non-JSON body is
// kept as it came.
type Exchange struct {
	Request  ExchangeRequest  `json:"request"`
	Response ExchangeResponse `json:"response"`
	// At is when the answer arrived (this machine's clock, UTC).
	At time.Time `json:"at"`
}

// ExchangeRequest is the request half of an Exchange.
type ExchangeRequest struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Header http.Header `json:"header,omitempty"`
	Body   string      `json:"body,omitempty"`
}

// ExchangeResponse is the answer half of an Exchange.
type ExchangeResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// Fixture is what one check writes: the exchanges it made, in order, and
// what it concluded from them.
type Fixture struct {
	Name      string         `json:"name"`
	Check     string         `json:"check"`
	Note      string         `json:"note,omitempty"`
	Findings  map[string]any `json:"findings,omitempty"`
	Exchanges []Exchange     `json:"exchanges"`
}

// secretHeaders are dropped to "REDACTED" whatever their value.
var secretHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
	"X-Usertoken":         true,
	"X-Auth-Token":        true,
	"X-Api-Key":           true,
}

// secretKeys are JSON keys and form or query parameters whose values are
// redacted wherever they appear.
var secretKeys = []string{
	"access_token", "refresh_token", "id_token", "token",
	"password", "user_password", "client_secret", "secret",
}

var secretJSON = regexp.MustCompile(`("(?:` + strings.Join(secretKeys, "|") + `)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// Redactor removes credentials from exchanges before they are written.
// Besides the headers and keys above, it replaces every literal value it
// was given (the password, the OAuth client secret, tokens seen during the
// run) wherever it appears, and the instance's host name.
type Redactor struct {
	mu      sync.Mutex
	secrets []string
	host    string
}

// NewRedactor returns a Redactor for the instance at host, removing the
// given secrets (empty ones are ignored).
func NewRedactor(host string, secrets ...string) *Redactor {
	r := &Redactor{host: host}
	r.Add(secrets...)
	return r
}

// Add makes r remove more literal secrets, such as a token just received.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		// A secret of a few characters would blank out unrelated text.
		if len(s) >= 4 {
			// As written, in a URL, and inside a JSON string.
			r.secrets = append(r.secrets, s, url.QueryEscape(s), jsonString(s))
		}
	}
	// Longest first, so that a secret holding another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// Exchange returns a redacted copy of e.
func (r *Redactor) Exchange(e Exchange) Exchange {
	e.Request.URL = r.url(e.Request.URL)
	e.Request.Header = r.header(e.Request.Header)
	e.Request.Body = r.body(e.Request.Body)
	e.Response.Header = r.header(e.Response.Header)
	e.Response.Body = r.body(e.Response.Body)
	return e
}

// Text redacts free text: a delivery's body, a log line.
func (r *Redactor) Text(s string) string { return r.body(s) }

// Header redacts a header set.
func (r *Redactor) Header(h http.Header) http.Header { return r.header(h) }

func (r *Redactor) header(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		lk := strings.ToLower(ck)
		secret := secretHeaders[ck] || strings.Contains(lk, "token") || strings.Contains(lk, "secret") || strings.Contains(lk, "signature")
		for _, v := range vs {
			if secret {
				v = redacted
			} else {
				v = r.literal(v)
			}
			out[ck] = append(out[ck], v)
		}
	}
	return out
}

func (r *Redactor) url(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return r.literal(s)
	}
	u.User = nil
	q := u.Query()
	changed := false
	for _, k := range secretKeys {
		if q.Has(k) {
			q.Set(k, redacted)
			changed = true
		}
	}
	// Re-encoding reorders the parameters: only when it must.
	if changed {
		u.RawQuery = q.Encode()
	}
	return r.literal(u.String())
}

func (r *Redactor) body(s string) string {
	if s == "" {
		return s
	}
	s = secretJSON.ReplaceAllString(s, `${1}"`+redacted+`"`)
	// A form body (a token request) redacts by key too.
	if !strings.ContainsAny(s, "{}<> \n") && strings.Contains(s, "=") {
		if q, err := url.ParseQuery(s); err == nil {
			for _, k := range secretKeys {
				if q.Has(k) {
					q.Set(k, redacted)
				}
			}
			s = q.Encode()
		}
	}
	return r.literal(s)
}

func (r *Redactor) literal(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	if r.host != "" {
		s = strings.ReplaceAll(s, r.host, fixtureHost)
	}
	return s
}

// jsonString is s as it is written inside a JSON string of a fixture.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	q := strings.TrimSpace(b.String())
	return q[1 : len(q)-1]
}

// writeFixture writes f, redacted, as dir/<f.Name>.json.
func writeFixture(dir string, r *Redactor, f Fixture) (string, error) {
	for i, e := range f.Exchanges {
		f.Exchanges[i] = r.Exchange(e)
	}
	// Queries hold & < >: kept as they are, for a reader of the file.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return "", fmt.Errorf("encode fixture %s: %w", f.Name, err)
	}
	// A last pass over the whole file: a finding may quote a value.
	out := []byte(r.literal(b.String()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write fixture %s: %w", f.Name, err)
	}
	path := filepath.Join(dir, f.Name+".json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", fmt.Errorf("write fixture %s: %w", f.Name, err)
	}
	return path, nil
}
