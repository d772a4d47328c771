package pdi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReceiver runs always: the executeAsync receiver keeps the calls of
// its run, with the record and the instance's send time, and ignores any
// other call that reaches the public URL.
func TestReceiver(t *testing.T) {
	rc := &receiver{run: "run-1"}
	for _, c := range []struct {
		name, run string
		want      int
	}{
		{"this run", "run-1", http.StatusOK},
		{"another run", "run-2", http.StatusNotFound},
		{"no run header", "", http.StatusNotFound},
	} {
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(`{"sys_id":"abc","sent_ms":1700000000000}`))
		if c.run != "" {
			req.Header.Set(runHeader, c.run)
		}
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		if w.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, w.Code, c.want)
		}
	}
	got := rc.deliveries()
	if len(got) != 1 || got[0].SysID != "abc" || got[0].Sent != 1700000000000 || got[0].Path != "/hook" {
		t.Errorf("deliveries = %+v, want the one call of run-1 with sys_id abc, sent_ms 1700000000000", got)
	}
}
