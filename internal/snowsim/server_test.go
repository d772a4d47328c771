package snowsim_test

import (
	"net/http"
	"testing"

	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestStart(t *testing.T) {
	srv, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser("admin", "pw"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := srv.Sim.Seed(bytesReader(snowsim.DemoFixture())); err != nil {
		t.Fatalf("Seed(DemoFixture): %v", err)
	}
	r := call(t, "GET", srv.URL+"/api/now/table/sys_user_group?sysparm_query=name=Network&sysparm_fields=sys_id", nil, "admin", "pw")
	if got := r.column(t, "sys_id"); len(got) != 1 || got[0] != snowsim.DemoGroupNetwork {
		t.Errorf("Network group sys_id = %v, want [%s]", got, snowsim.DemoGroupNetwork)
	}
	srv.Close()
	if resp, err := http.Get(srv.URL + "/api/now/table/incident"); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Close: status %d, want a connection error", resp.StatusCode)
	}
}
