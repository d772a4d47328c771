package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
)

// ErrInvalidCredentials is returned for credentials that lack a field their
// auth mode needs, or name an unknown mode. The message names the field,
// never a value.
var ErrInvalidCredentials = errors.New("invalid servicenow credentials")

// Auth applies credentials to Table API requests. Build one with
// BasicAuth, OAuthClientCredentials, OAuthPassword or AuthFromCredentials.
// An Auth is a description of credentials: each Client that uses it keeps
// its own token cache, so one Auth may serve several clients.
type Auth interface {
	// Mode is the registry.Auth* name of the method; safe to log.
	Mode() string
	// session returns the per-client state that authorizes requests.
	session(c *Client) authSession
}

// authSession authorizes the requests of one Client.
type authSession interface {
	// authorize sets the credentials on req. It returns an identifier of
	// the credentials used, for invalidate.
	authorize(ctx context.Context, req *http.Request) (string, error)
	// invalidate is told that the credentials identified by used got a 401
	// and reports whether new credentials may cure it, in which case the
	// next authorize fetches them.
	invalidate(used string) bool
}

// BasicAuth authenticates every request with HTTP Basic authentication.
func BasicAuth(user, password string) Auth { return basicAuth{user: user, password: password} }

type basicAuth struct{ user, password string }

func (basicAuth) Mode() string                  { return registry.AuthBasic }
func (a basicAuth) session(*Client) authSession { return a }
func (basicAuth) invalidate(string) bool        { return false }

func (a basicAuth) authorize(_ context.Context, req *http.Request) (string, error) {
	req.SetBasicAuth(a.user, a.password)
	return "", nil
}

// String keeps the password out of fmt output.
func (a basicAuth) String() string { return "servicenow.BasicAuth(" + a.user + ")" }

// OAuthClientCredentials gets bearer tokens from the instance's
// /oauth_token.do with the client credentials grant.
func OAuthClientCredentials(clientID, clientSecret string) Auth {
	return oauthAuth{mode: registry.AuthOAuthClientCredentials, form: url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {clientSecret},
	}}
}

// OAuthPassword gets bearer tokens from the instance's /oauth_token.do with
// the resource owner password grant (the integration user's credentials).
func OAuthPassword(clientID, clientSecret, user, password string) Auth {
	return oauthAuth{mode: registry.AuthOAuthPassword, form: url.Values{
		"grant_type":    {"password"},
		"client_id":     {clientID},
		"client_secret": {clientSecret},
		"username":      {user},
		"password":      {password},
	}}
}

type oauthAuth struct {
	mode string
	form url.Values
}

func (a oauthAuth) Mode() string { return a.mode }

// String keeps the secrets out of fmt output.
func (a oauthAuth) String() string {
	return "servicenow.OAuth(" + a.mode + ", " + a.form.Get("client_id") + ")"
}

func (a oauthAuth) session(c *Client) authSession {
	return &oauthSession{c: c, body: a.form.Encode(), lock: make(chan struct{}, 1)}
}

const (
	// tokenRefreshMargin: a cached token is replaced this long before it
	// expires (at most a tenth of its lifetime), so a request never leaves
	// with a token that expires in flight.
	tokenRefreshMargin = time.Minute
	// defaultTokenLifetime applies when the token response has no
	// expires_in; ServiceNow's default is 30 minutes.
	defaultTokenLifetime = 10 * time.Minute
)

type oauthSession struct {
	c    *Client
	body string
	// lock serialises token fetches, so concurrent requests that find no
	// valid token wait for one fetch instead of each starting their own; a
	// channel rather than a mutex lets a waiter give up with its context.
	lock chan struct{}

	mu      sync.Mutex
	token   string
	expires time.Time
}

func (s *oauthSession) authorize(ctx context.Context, req *http.Request) (string, error) {
	tok, err := s.current(ctx)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return tok, nil
}

func (s *oauthSession) cached() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.c.now().Before(s.expires) {
		return s.token
	}
	return ""
}

func (s *oauthSession) current(ctx context.Context) (string, error) {
	if tok := s.cached(); tok != "" {
		return tok, nil
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("oauth token: %w", ctx.Err())
	}
	defer func() { <-s.lock }()
	// Another request may have fetched one while this one waited.
	if tok := s.cached(); tok != "" {
		return tok, nil
	}
	tok, lifetime, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	margin := min(tokenRefreshMargin, lifetime/10)
	s.mu.Lock()
	s.token, s.expires = tok, s.c.now().Add(lifetime-margin)
	s.mu.Unlock()
	return tok, nil
}

func (s *oauthSession) invalidate(used string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only the token that failed is dropped: if a concurrent request
	// already replaced it, the new one is kept.
	if s.token == used {
		s.token = ""
	}
	return true
}

// tokenResponse is the OAuth 2.0 token endpoint's success answer; errors
// are read by errorFrom.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

func (s *oauthSession) fetch(ctx context.Context) (string, time.Duration, error) {
	res, err := s.c.do(ctx, request{
		method:      http.MethodPost,
		url:         s.c.tokenURL,
		body:        []byte(s.body),
		contentType: "application/x-www-form-urlencoded",
		// A token request changes nothing on the instance: safe to repeat.
		idempotent: true,
	}, nil)
	if err != nil {
		return "", 0, fmt.Errorf("oauth token: %w", err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(res.body, &tr); err != nil {
		return "", 0, fmt.Errorf("oauth token: %w: %w", ErrBadResponse, err)
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("oauth token: %w: no access_token", ErrBadResponse)
	}
	lifetime := defaultTokenLifetime
	// ServiceNow sends expires_in as a number; some proxies turn it into a
	// string.
	if v := strings.Trim(string(tr.ExpiresIn), `"`); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
			lifetime = time.Duration(secs) * time.Second
		}
	}
	return tr.AccessToken, lifetime, nil
}

// AuthFromCredentials builds the Auth a gateway's stored credentials
// describe.
func AuthFromCredentials(c registry.Credentials) (Auth, error) {
	need := func(fields ...[2]string) error {
		for _, f := range fields {
			if f[1] == "" {
				return fmt.Errorf("%w: %s credentials without %s", ErrInvalidCredentials, c.Auth, f[0])
			}
		}
		return nil
	}
	user := [2]string{"username", c.Username}
	password := [2]string{"password", c.Password}
	clientID := [2]string{"client_id", c.ClientID}
	clientSecret := [2]string{"client_secret", c.ClientSecret}
	switch c.Auth {
	case registry.AuthBasic:
		if err := need(user, password); err != nil {
			return nil, err
		}
		return BasicAuth(c.Username, c.Password), nil
	case registry.AuthOAuthClientCredentials:
		if err := need(clientID, clientSecret); err != nil {
			return nil, err
		}
		return OAuthClientCredentials(c.ClientID, c.ClientSecret), nil
	case registry.AuthOAuthPassword:
		if err := need(clientID, clientSecret, user, password); err != nil {
			return nil, err
		}
		return OAuthPassword(c.ClientID, c.ClientSecret, c.Username, c.Password), nil
	default:
		return nil, fmt.Errorf("%w: unknown auth mode %q", ErrInvalidCredentials, c.Auth)
	}
}

// LoadCredentials reads a gateway's credentials, stored as JSON in the
// Secrets Manager secret arn, and checks that they are complete for their
// auth mode. Errors name the secret, never its content.
func LoadCredentials(ctx context.Context, store *secrets.Store, arn string) (registry.Credentials, error) {
	v, err := store.Get(ctx, arn)
	if err != nil {
		return registry.Credentials{}, fmt.Errorf("load servicenow credentials: %w", err)
	}
	var c registry.Credentials
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		// The decoder's message may quote the secret's text: drop it.
		return registry.Credentials{}, fmt.Errorf("load servicenow credentials %s: %w: not a JSON credentials document", arn, ErrInvalidCredentials)
	}
	if _, err := AuthFromCredentials(c); err != nil {
		return registry.Credentials{}, fmt.Errorf("load servicenow credentials %s: %w", arn, err)
	}
	return c, nil
}
