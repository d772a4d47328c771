package schema_test

import (
	"testing"

	"github.com/snowgate/snowgate/internal/schema"
)

func TestSecretNames(t *testing.T) {
	p := schema.SecretPrefix("prod")
	for _, tc := range []struct{ got, want string }{
		{p, "snowgate/prod/"},
		{schema.GatewaySecretName(p, "gtw_1"), "snowgate/prod/gateways/gtw_1"},
		{schema.WebhookKeyName(p, "whk_1"), "snowgate/prod/webhooks/whk_1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	// Stacks whose names share a beginning do not share a prefix.
	if a, b := schema.SecretPrefix("snow"), schema.SecretPrefix("snowgate"); len(b) > len(a) && b[:len(a)] == a {
		t.Errorf("prefix %q begins with %q", b, a)
	}
}

func TestCheckSecretPrefix(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"snowgate/prod/", true},
		{"snowgate/", true},
		{"team.a/snowgate-dev/", true},
		{"snowgate/prod", false},
		{"/snowgate/", false},
		{"snowgate//", false},
		{"snow gate/", false},
		{"snowgate/*/", false},
		{"", false},
	} {
		if err := schema.CheckSecretPrefix(tc.in); (err == nil) != tc.ok {
			t.Errorf("CheckSecretPrefix(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
