package snowsim

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
)

type token struct {
	user    string
	client  string
	expires time.Time
}

type authState struct {
	users   map[string]string
	clients map[string]string
	// appUser is each OAuth client's OAuth Application User, the user a
	// client credentials token acts as.
	appUser map[string]string
	// wsOnly are the users flagged web service access only (non-interactive);
	// basicRestricted lets only them use basic auth.
	wsOnly          map[string]bool
	basicRestricted bool
	ttl             time.Duration

	mu      sync.Mutex
	access  map[string]token
	refresh map[string]token
}

func newAuthState() authState {
	return authState{
		users: map[string]string{}, clients: map[string]string{}, appUser: map[string]string{},
		wsOnly: map[string]bool{}, ttl: DefaultTokenTTL,
		access: map[string]token{}, refresh: map[string]token{},
	}
}

// PropOAuthClientCredentials is the system property that enables the OAuth
// client credentials grant for inbound integrations; it is false (absent)
// on an instance out of the box.
const PropOAuthClientCredentials = "glide.oauth.inbound.client.credential.grant_type.enabled"

// WithOAuthClientCredentials sets up what the client credentials grant
// needs, as an administrator does: an OAuth client whose OAuth Application
// User is appUser, and PropOAuthClientCredentials set to true (a later
// WithProperty can set it back to false).
func WithOAuthClientCredentials(id, secret, appUser string) Option {
	return func(s *Sim) {
		s.auth.clients[id] = secret
		s.auth.appUser[id] = appUser
		s.properties[PropOAuthClientCredentials] = "true"
	}
}

// WithWebServiceUser adds a user accepted by basic auth and the OAuth
// password grant, flagged web service access only (a non-interactive
// integration account, the only kind WithBasicAuthRestricted lets use
// basic auth).
func WithWebServiceUser(user, pass string) Option {
	return func(s *Sim) {
		s.auth.users[user] = pass
		s.auth.wsOnly[user] = true
	}
}

// WithBasicAuthRestricted enforces the basic authentication restriction:
// basic auth is accepted only for web service access only users
// (WithWebServiceUser); any other user gets the same 401 as for a wrong
// password. Off by default, as on instances before enforcement.
func WithBasicAuthRestricted() Option { return func(s *Sim) { s.auth.basicRestricted = true } }

// refreshTTL is ServiceNow's default refresh token lifetime (100 days).
const refreshTTL = 100 * 24 * time.Hour

// authenticate returns the user a request acts as. A Sim configured with
// no user and no OAuth client lets everyone in as admin.
func (s *Sim) authenticate(r *http.Request) (string, bool) {
	a := &s.auth
	if len(a.users) == 0 && len(a.clients) == 0 {
		return "admin", true
	}
	if user, pass, ok := r.BasicAuth(); ok {
		want, known := a.users[user]
		if a.basicRestricted && !a.wsOnly[user] {
			// Refused like a wrong password: the instance does not say why.
			return user, false
		}
		return user, known && want == pass
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.access[bearer]
	if !ok || !s.clock().Before(t.expires) {
		return "", false
	}
	return t.user, true
}

// ExpireTokens invalidates every access token issued so far; refresh tokens
// stay valid, so a client can recover by refreshing (tests of refresh-on-401).
func (s *Sim) ExpireTokens() {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	clear(s.auth.access)
}

// RevokeTokens invalidates every access and refresh token.
func (s *Sim) RevokeTokens() {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	clear(s.auth.access)
	clear(s.auth.refresh)
}

func newToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// handleToken is POST /oauth_token.do: password and refresh_token grants,
// and client_credentials where enabled (PropOAuthClientCredentials).
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "malformed form"})
		return
	}
	a := &s.auth
	denied := func() {
		// What an instance answers for any bad credential in a token request.
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error_description": "access_denied", "error": "server_error"})
	}
	clientID := r.PostForm.Get("client_id")
	if secret, ok := a.clients[clientID]; !ok || secret != r.PostForm.Get("client_secret") {
		denied()
		return
	}
	var user string
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		// Off unless the system property is true and the client has an OAuth
		// Application User; refused with the same opaque 401 as a bad secret.
		user = a.appUser[clientID]
		if !s.propertyTrue(PropOAuthClientCredentials) || user == "" {
			denied()
			return
		}
	case "password":
		user = r.PostForm.Get("username")
		if pass, ok := a.users[user]; !ok || pass != r.PostForm.Get("password") {
			denied()
			return
		}
	case "refresh_token":
		a.mu.Lock()
		t, ok := a.refresh[r.PostForm.Get("refresh_token")]
		a.mu.Unlock()
		if !ok || t.client != clientID || !s.clock().Before(t.expires) {
			denied()
			return
		}
		user = t.user
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "grant type not supported"})
		return
	}
	now := s.clock()
	access, refresh := newToken(), newToken()
	a.mu.Lock()
	a.access[access] = token{user: user, client: clientID, expires: now.Add(a.ttl)}
	a.refresh[refresh] = token{user: user, client: clientID, expires: now.Add(refreshTTL)}
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"scope":         "useraccount",
		"token_type":    "Bearer",
		"expires_in":    int(a.ttl/time.Second) - 1,
	})
}
