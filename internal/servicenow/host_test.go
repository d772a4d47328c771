package servicenow_test

import (
	"testing"

	"github.com/snowgate/snowgate/internal/servicenow"
)

func TestCustomHost(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://acme.service-now.com", false},
		{"https://ACME.Service-Now.com:443", false},
		{"https://agency.servicenowservices.com", false},
		{"http://127.0.0.1:8080", false},
		{"http://[::1]:8080", false},
		{"http://localhost:8080", false},
		// Whoever answers there gets the credentials.
		{"https://itsm.acme.com", true},
		{"https://acme.service-now.com.evil.example", true},
		{"https://a.b.service-now.com", true},
		{"https://service-now.com", true},
		{"http://host.docker.internal:8080", true},
		{"https://10.0.0.7", true},
		{"not a url\x7f", true},
		{"", true},
	} {
		if got := servicenow.CustomHost(tc.url); got != tc.want {
			t.Errorf("CustomHost(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}
