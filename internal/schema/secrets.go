package schema

import (
	"fmt"
	"strings"
)

// Secret names. Every secret snowgate creates lives under its stack's
// prefix, by kind, so that IAM can give each function the one kind it
// reads and no stack reads another's:
//
//	<prefix>gateways/<gateway id>             a gateway's ServiceNow credentials
//	                                          (processor, reconciler, writer)
//	<prefix>webhooks/<webhook id>[/<suffix>]  a webhook's HMAC signing keys (ingest);
//	                                          a rotation's keys get a suffix
//
// The prefix is SecretPrefix(stack), "snowgate/<stack>/", unless the
// deployment sets another. Ids are fresh for every gateway and webhook, so a
// name is never used twice: a secret pending deletion (deleted with a
// recovery window) keeps its name until Secrets Manager removes it.
const (
	SecretKindGateways = "gateways/"
	SecretKindWebhooks = "webhooks/"
)

// SecretPrefix is the default secret name prefix of a stack:
// DefaultSecretPrefix + stack + "/".
func SecretPrefix(stack string) string { return DefaultSecretPrefix + stack + "/" }

// GatewaySecretName is the name of a gateway's credentials secret.
func GatewaySecretName(prefix, gatewayID string) string {
	return prefix + SecretKindGateways + gatewayID
}

// WebhookKeyName is the name of a webhook's first HMAC key secret; keys made
// by a rotation get a suffix (WebhookKeyName + "/" + suffix), since keys in
// grace keep theirs.
func WebhookKeyName(prefix, webhookID string) string {
	return prefix + SecretKindWebhooks + webhookID
}

// CheckSecretPrefix checks a secret name prefix: one or more path segments
// of the characters Secrets Manager allows in a name, ending with "/".
func CheckSecretPrefix(p string) error {
	if !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("secret prefix %q: want segments ending with \"/\", such as %q", p, SecretPrefix(DefaultStackName))
	}
	for _, r := range p {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+=.@-", r)
		if !ok {
			return fmt.Errorf("secret prefix %q: %q is not allowed in a secret name", p, r)
		}
	}
	return nil
}
