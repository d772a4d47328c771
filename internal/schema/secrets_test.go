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

func TestIsGatewaySecret(t *testing.T) {
	const (
		id    = "gtw_0b7c8f9e-1d2a-4b3c-8e4f-5a6b7c8d9e0f"
		other = "gtw_11111111-2222-4333-8444-555555555555"
		arn   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
	)
	for _, tc := range []struct {
		arn  string
		want bool
	}{
		{arn + "snowgate/prod/gateways/" + id + "-AbC123", true},
		{arn + "snowgate/gateways/" + id + "-AbC123", true}, // made under an older prefix
		{arn + "snowgate/prod/gateways/" + id, true},        // a partial ARN
		{"snowgate/prod/gateways/" + id, true},              // a name
		{"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:snowgate/prod/gateways/" + id + "-AbC123", true},
		// Another gateway's secret, or one not named for a gateway.
		{arn + "snowgate/prod/gateways/" + other + "-AbC123", false},
		{arn + "snowgate/prod/webhooks/" + id + "-AbC123", false},
		{arn + "snowgate/prod/gateways/" + id + "/x-AbC123", false},
		{arn + "snowgate/prod/evilgateways/" + id + "-AbC123", false},
		{arn + "snowgate/prod/gateways/" + other + ":secret:snowgate/prod/gateways/" + id, false},
		{"arn:aws:ssm:eu-west-1:123456789012:secret:snowgate/prod/gateways/" + id, false},
		{"", false},
	} {
		if got := schema.IsGatewaySecret(tc.arn, id); got != tc.want {
			t.Errorf("IsGatewaySecret(%q, %s) = %v, want %v", tc.arn, id, got, tc.want)
		}
	}
	if schema.IsGatewaySecret(arn+"snowgate/prod/gateways/-AbC123", "") {
		t.Error("IsGatewaySecret with no gateway id = true")
	}
}
