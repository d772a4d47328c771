package snowsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
}

func postToken(t *testing.T, base string, form url.Values) (int, tokenResponse) {
	t.Helper()
	resp, err := http.PostForm(base+"/oauth_token.do", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("decode token response: %v", err)
	}
	return resp.StatusCode, tr
}

func TestAuth(t *testing.T) {
	clk := newClock()
	_, srv := start(t, snowsim.WithClock(clk.Now), snowsim.WithUser("svc", "pw"),
		snowsim.WithOAuthClientCredentials("cid", "csecret", "svc"), snowsim.WithTokenTTL(30*time.Minute))
	list := srv.URL + "/api/now/table/incident?sysparm_limit=1"

	if r := call(t, "GET", list, nil, "svc", "pw"); r.Status != 200 {
		t.Errorf("basic auth: status %d, want 200", r.Status)
	}

	grants := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"client credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}}, 200},
		{"password", url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "username": {"svc"}, "password": {"pw"}}, 200},
		{"password, wrong user password", url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "username": {"svc"}, "password": {"x"}}, 401},
		{"wrong client secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"x"}}, 401},
		{"unsupported grant", url.Values{"grant_type": {"implicit"}, "client_id": {"cid"}, "client_secret": {"csecret"}}, 400},
	}
	for _, g := range grants {
		t.Run(g.name, func(t *testing.T) {
			status, tok := postToken(t, srv.URL, g.form)
			if status != g.status {
				t.Fatalf("token: status %d, want %d", status, g.status)
			}
			if status != 200 {
				return
			}
			if tok.TokenType != "Bearer" || tok.Scope != "useraccount" || tok.ExpiresIn != 1799 || tok.RefreshToken == "" {
				t.Errorf("token response = %+v, want Bearer/useraccount/1799 with a refresh token", tok)
			}
			if r := call(t, "GET", list, nil, tok.AccessToken); r.Status != 200 {
				t.Errorf("with bearer: status %d, want 200", r.Status)
			}
		})
	}

	t.Run("expiry and refresh", func(t *testing.T) {
		_, tok := postToken(t, srv.URL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}})
		clk.Advance(31 * time.Minute)
		if r := call(t, "GET", list, nil, tok.AccessToken); r.Status != 401 {
			t.Errorf("expired token: status %d, want 401", r.Status)
		}
		status, fresh := postToken(t, srv.URL, url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "refresh_token": {tok.RefreshToken}})
		if status != 200 {
			t.Fatalf("refresh: status %d, want 200", status)
		}
		if r := call(t, "GET", list, nil, fresh.AccessToken); r.Status != 200 {
			t.Errorf("refreshed token: status %d, want 200", r.Status)
		}
	})
}

func TestExpireTokens(t *testing.T) {
	sim, srv := start(t, snowsim.WithOAuthClientCredentials("cid", "csecret", "svc"))
	_, tok := postToken(t, srv.URL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}})
	list := srv.URL + "/api/now/table/incident"
	sim.ExpireTokens()
	if r := call(t, "GET", list, nil, tok.AccessToken); r.Status != 401 {
		t.Errorf("after ExpireTokens: status %d, want 401", r.Status)
	}
	status, fresh := postToken(t, srv.URL, url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "refresh_token": {tok.RefreshToken}})
	if status != 200 {
		t.Fatalf("refresh after ExpireTokens: status %d, want 200", status)
	}
	sim.RevokeTokens()
	if r := call(t, "GET", list, nil, fresh.AccessToken); r.Status != 401 {
		t.Errorf("after RevokeTokens: status %d, want 401", r.Status)
	}
	if status, _ := postToken(t, srv.URL, url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "refresh_token": {fresh.RefreshToken}}); status != 401 {
		t.Errorf("refresh after RevokeTokens: status %d, want 401", status)
	}
}

// TestClientCredentialsOff follows ServiceNow's "Client Credentials" and
// "Create the Client Credentials system property" (Platform security,
// OAuth inbound): the grant is controlled by
// glide.oauth.inbound.client.credential.grant_type.enabled, false by
// default, and needs an OAuth Application User on the client. Without
// them the token endpoint refuses with an opaque 401 that does not say
// which is missing.
func TestClientCredentialsOff(t *testing.T) {
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}}
	pw := url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "username": {"svc"}, "password": {"pw"}}
	tests := []struct {
		name       string
		opts       []snowsim.Option
		ccStatus   int
		passStatus int
	}{
		{"out of the box", []snowsim.Option{snowsim.WithOAuthClient("cid", "csecret")}, 401, 200},
		{"property off", []snowsim.Option{snowsim.WithOAuthClientCredentials("cid", "csecret", "svc"),
			snowsim.WithProperty(snowsim.PropOAuthClientCredentials, "false")}, 401, 200},
		{"property on, no application user", []snowsim.Option{snowsim.WithOAuthClient("cid", "csecret"),
			snowsim.WithProperty(snowsim.PropOAuthClientCredentials, "true")}, 401, 200},
		{"enabled", []snowsim.Option{snowsim.WithOAuthClientCredentials("cid", "csecret", "svc")}, 200, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := start(t, append([]snowsim.Option{snowsim.WithUser("svc", "pw")}, tc.opts...)...)
			resp, err := http.PostForm(srv.URL+"/oauth_token.do", cc)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.ccStatus {
				t.Errorf("client credentials: status %d, want %d", resp.StatusCode, tc.ccStatus)
			}
			if tc.ccStatus == 401 {
				want := map[string]any{"error": "server_error", "error_description": "access_denied"}
				if fmt.Sprint(body) != fmt.Sprint(want) {
					t.Errorf("client credentials refused with %v, want the opaque %v", body, want)
				}
			}
			if status, _ := postToken(t, srv.URL, pw); status != tc.passStatus {
				t.Errorf("password grant: status %d, want %d", status, tc.passStatus)
			}
		})
	}
}

// TestBasicAuthRestricted follows ServiceNow's "Basic authentication
// restriction" and "Non-interactive sessions" (Platform security, User
// administration): once the restriction is enforced, basic auth is left to
// the accounts allowed to keep it, web service access only (non-interactive)
// integration users; an interactive account is refused.
func TestBasicAuthRestricted(t *testing.T) {
	_, srv := start(t, snowsim.WithBasicAuthRestricted(),
		snowsim.WithUser("jane", "pw"), snowsim.WithWebServiceUser("svc", "pw"))
	list := srv.URL + "/api/now/table/incident?sysparm_limit=1"
	if r := call(t, "GET", list, nil, "svc", "pw"); r.Status != 200 {
		t.Errorf("web service user: status %d, want 200", r.Status)
	}
	r := call(t, "GET", list, nil, "jane", "pw")
	if r.Status != 401 {
		t.Errorf("interactive user: status %d, want 401", r.Status)
	}
	if r := call(t, "GET", list, nil, "svc", "wrong"); r.Status != 401 {
		t.Errorf("web service user, wrong password: status %d, want 401", r.Status)
	}

	// Without the restriction both kinds of account may use basic auth.
	_, open := start(t, snowsim.WithUser("jane", "pw"))
	if r := call(t, "GET", open.URL+"/api/now/table/incident?sysparm_limit=1", nil, "jane", "pw"); r.Status != 200 {
		t.Errorf("unrestricted, interactive user: status %d, want 200", r.Status)
	}
}
