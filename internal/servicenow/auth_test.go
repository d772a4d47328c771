package servicenow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// oauthInstance issues bearer tokens on /oauth_token.do and accepts the
// ones it has issued and not revoked on the Table API.
type oauthInstance struct {
	*httptest.Server
	wantForm  map[string]string
	expiresIn int

	mu        sync.Mutex
	issued    []string
	revoked   map[string]bool
	rejectAll bool
}

func newOAuthInstance(t *testing.T, wantForm map[string]string) *oauthInstance {
	t.Helper()
	o := &oauthInstance{wantForm: wantForm, expiresIn: 1800, revoked: map[string]bool{}}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

func (o *oauthInstance) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.URL.Path == "/oauth_token.do" {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for k, v := range o.wantForm {
			if r.PostForm.Get(k) != v {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error_description":"access_denied","error":"server_error"}`)
				return
			}
		}
		tok := fmt.Sprintf("tok-%d", len(o.issued)+1)
		o.issued = append(o.issued, tok)
		fmt.Fprintf(w, `{"access_token":%q,"refresh_token":"r","scope":"useraccount","token_type":"Bearer","expires_in":%d}`, tok, o.expiresIn)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || o.rejectAll || o.revoked[tok] || !contains(o.issued, tok) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, errorBody("User Not Authenticated", "Required to provide Auth information"))
		return
	}
	fmt.Fprint(w, okIncident)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (o *oauthInstance) tokens() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.issued...)
}

func (o *oauthInstance) revoke(tok string) {
	o.mu.Lock()
	o.revoked[tok] = true
	o.mu.Unlock()
}

var clientCredentialsForm = map[string]string{
	"grant_type": "client_credentials", "client_id": testClientID, "client_secret": testClientSecret,
}

func TestOAuth(t *testing.T) {
	ctx := context.Background()
	t.Run("password grant sends the user's credentials", func(t *testing.T) {
		o := newOAuthInstance(t, map[string]string{
			"grant_type": "password", "client_id": testClientID, "client_secret": testClientSecret,
			"username": testUser, "password": testPassword,
		})
		c := newClient(t, o.URL, servicenow.OAuthPassword(testClientID, testClientSecret, testUser, testPassword))
		if _, err := c.Get(ctx, "incident", sysID1); err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff([]string{"tok-1"}, o.tokens()); diff != "" {
			t.Errorf("issued tokens mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("token is cached across calls and goroutines", func(t *testing.T) {
		o := newOAuthInstance(t, clientCredentialsForm)
		c := newClient(t, o.URL, servicenow.OAuthClientCredentials(testClientID, testClientSecret))
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for range 10 {
			wg.Go(func() {
				_, err := c.Get(ctx, "incident", sysID1)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
		}
		if diff := cmp.Diff([]string{"tok-1"}, o.tokens()); diff != "" {
			t.Errorf("issued tokens mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("token is replaced shortly before it expires", func(t *testing.T) {
		o := newOAuthInstance(t, clientCredentialsForm)
		clock := now
		var mu sync.Mutex
		c := newClient(t, o.URL, servicenow.OAuthClientCredentials(testClientID, testClientSecret),
			servicenow.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }))
		advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

		mustGet(t, c)
		advance(1700 * time.Second) // 100 s before expiry: still good
		mustGet(t, c)
		advance(50 * time.Second) // 50 s before expiry: within the margin
		mustGet(t, c)
		if diff := cmp.Diff([]string{"tok-1", "tok-2"}, o.tokens()); diff != "" {
			t.Errorf("issued tokens mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("401 refreshes the token exactly once", func(t *testing.T) {
		o := newOAuthInstance(t, clientCredentialsForm)
		c := newClient(t, o.URL, servicenow.OAuthClientCredentials(testClientID, testClientSecret))
		mustGet(t, c)
		o.revoke("tok-1")

		mustGet(t, c)

		if diff := cmp.Diff([]string{"tok-1", "tok-2"}, o.tokens()); diff != "" {
			t.Errorf("issued tokens mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("401 after the refresh is returned", func(t *testing.T) {
		o := newOAuthInstance(t, clientCredentialsForm)
		o.rejectAll = true
		w := &waits{}
		c := newClient(t, o.URL, servicenow.OAuthClientCredentials(testClientID, testClientSecret), servicenow.WithSleep(w.sleep))

		_, err := c.Get(ctx, "incident", sysID1)

		var se *servicenow.Error
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
			t.Fatalf("Get() error = %v, want a 401", err)
		}
		if servicenow.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true, want false", err)
		}
		if diff := cmp.Diff([]string{"tok-1", "tok-2"}, o.tokens()); diff != "" {
			t.Errorf("issued tokens mismatch (-want +got):\n%s", diff)
		}
		if got := w.all(); len(got) != 0 {
			t.Errorf("waits = %v, want none", got)
		}
	})
	t.Run("a rejected client secret is not retried", func(t *testing.T) {
		o := newOAuthInstance(t, clientCredentialsForm)
		w := &waits{}
		c := newClient(t, o.URL, servicenow.OAuthClientCredentials(testClientID, "wrong-"+testClientSecret), servicenow.WithSleep(w.sleep))

		_, err := c.Get(ctx, "incident", sysID1)

		var se *servicenow.Error
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Message != "server_error" || se.Detail != "access_denied" {
			t.Fatalf("Get() error = %v, want the token endpoint's 401", err)
		}
		if got := w.all(); len(got) != 0 {
			t.Errorf("waits = %v, want none", got)
		}
	})
}

func mustGet(t *testing.T, c *servicenow.Client) {
	t.Helper()
	if _, err := c.Get(context.Background(), "incident", sysID1); err != nil {
		t.Fatalf("Get: %v", err)
	}
}

// TestCredentialsNeverInErrors drives every failure a caller can see and
// checks that no formatting of the error shows a secret.
func TestCredentialsNeverInErrors(t *testing.T) {
	secretsShown := []string{testPassword, testClientSecret, basic(testUser, testPassword), "tok-"}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name string
		url  func(t *testing.T) string
		auth servicenow.Auth
	}{
		{"basic 401", fakeURL(reply{status: 401, body: errorBody("User Not Authenticated", "")}), servicenow.BasicAuth(testUser, testPassword)},
		{"basic 500 exhausted", fakeURL(reply{status: 500}), servicenow.BasicAuth(testUser, testPassword)},
		{"basic malformed JSON", fakeURL(reply{status: 200, body: "{"}), servicenow.BasicAuth(testUser, testPassword)},
		{"basic connection refused", func(*testing.T) string { return closedURL }, servicenow.BasicAuth(testUser, testPassword)},
		{"oauth token refused", func(t *testing.T) string { return newOAuthInstance(t, map[string]string{"client_id": "other"}).URL }, servicenow.OAuthPassword(testClientID, testClientSecret, testUser, testPassword)},
		{"oauth 401 after refresh", func(t *testing.T) string {
			o := newOAuthInstance(t, clientCredentialsForm)
			o.rejectAll = true
			return o.URL
		}, servicenow.OAuthClientCredentials(testClientID, testClientSecret)},
		{"oauth connection refused", func(*testing.T) string { return closedURL }, servicenow.OAuthClientCredentials(testClientID, testClientSecret)},
		{"oauth token malformed", fakeURL(reply{status: 200, body: `{"access_token":`}), servicenow.OAuthClientCredentials(testClientID, testClientSecret)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &waits{}
			c := newClient(t, tc.url(t), tc.auth, servicenow.WithSleep(w.sleep))
			_, err := c.Get(context.Background(), "incident", sysID1)
			if err == nil {
				t.Fatal("Get() = nil error, want one")
			}
			var se *servicenow.Error
			errors.As(err, &se)
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%#v", se), fmt.Sprint(tc.auth), fmt.Sprintf("%+v", tc.auth)} {
				for _, s := range secretsShown {
					if strings.Contains(text, s) {
						t.Errorf("error text %q shows %q", text, s)
					}
				}
			}
		})
	}
}

func fakeURL(replies ...reply) func(t *testing.T) string {
	return func(t *testing.T) string { return newFake(t, replies...).URL }
}

func TestAuthFromCredentials(t *testing.T) {
	tests := []struct {
		name     string
		creds    registry.Credentials
		wantMode string
		wantErr  bool
	}{
		{"basic", registry.Credentials{Auth: registry.AuthBasic, Username: "u", Password: "p"}, registry.AuthBasic, false},
		{"basic without password", registry.Credentials{Auth: registry.AuthBasic, Username: "u"}, "", true},
		{"client credentials", registry.Credentials{Auth: registry.AuthOAuthClientCredentials, ClientID: "c", ClientSecret: "s"}, registry.AuthOAuthClientCredentials, false},
		{"client credentials without secret", registry.Credentials{Auth: registry.AuthOAuthClientCredentials, ClientID: "c"}, "", true},
		{"password grant", registry.Credentials{Auth: registry.AuthOAuthPassword, ClientID: "c", ClientSecret: "s", Username: "u", Password: "p"}, registry.AuthOAuthPassword, false},
		{"password grant without user", registry.Credentials{Auth: registry.AuthOAuthPassword, ClientID: "c", ClientSecret: "s", Password: "p"}, "", true},
		{"unknown mode", registry.Credentials{Auth: "kerberos", Username: "u", Password: "p"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := servicenow.AuthFromCredentials(tc.creds)
			if tc.wantErr {
				if !errors.Is(err, servicenow.ErrInvalidCredentials) {
					t.Fatalf("AuthFromCredentials() error = %v, want ErrInvalidCredentials", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthFromCredentials: %v", err)
			}
			if a.Mode() != tc.wantMode {
				t.Errorf("Mode() = %q, want %q", a.Mode(), tc.wantMode)
			}
		})
	}
}

func credsJSON(t *testing.T, c registry.Credentials) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
