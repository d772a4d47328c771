package snowsim_test

import (
	"encoding/json"
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
		snowsim.WithOAuthClient("cid", "csecret"), snowsim.WithTokenTTL(30*time.Minute))
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
	sim, srv := start(t, snowsim.WithOAuthClient("cid", "csecret"))
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
