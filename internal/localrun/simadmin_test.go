package localrun

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// TestSimAdminSettings drives the admin endpoints that change the
// simulator's instance settings.
func TestSimAdminSettings(t *testing.T) {
	sim := snowsim.New()
	srv := httptest.NewServer(simHandler(sim, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func() (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/now/table/incident?sysparm_query=u_no_such_field=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if _, err := sim.Insert("incident", map[string]string{"short_description": "x"}); err != nil {
		t.Fatal(err)
	}

	if code := post("/sim/properties?name="+snowsim.PropInvalidQueryNoRows+"&value=true", ""); code != 200 {
		t.Fatalf("POST /sim/properties = %d, want 200", code)
	}
	if _, _, body := get(); !strings.Contains(body, `"result":[]`) {
		t.Errorf("invalid query with returns_no_rows set: %s, want no rows", body)
	}

	if code := post("/sim/rate_limits", `[{"name":"test","limit":5,"window_seconds":60}]`); code != 200 {
		t.Fatalf("POST /sim/rate_limits = %d, want 200", code)
	}
	if _, h, _ := get(); h.Get("X-RateLimit-Limit") != "5" {
		t.Errorf("X-RateLimit-Limit = %q after setting a rule of 5, want 5", h.Get("X-RateLimit-Limit"))
	}

	if code := post("/sim/hibernate?enabled=true", ""); code != 200 {
		t.Fatalf("POST /sim/hibernate = %d, want 200", code)
	}
	if code, h, _ := get(); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("hibernating: %d %s, want 200 text/html", code, h.Get("Content-Type"))
	}
	if code := post("/sim/hibernate?enabled=maybe", ""); code != 400 {
		t.Errorf("POST /sim/hibernate?enabled=maybe = %d, want 400", code)
	}
}
