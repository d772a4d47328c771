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

// SecretName is the name of the secret a Secrets Manager ARN names
// (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6
// random characters>): <name>, without the suffix. A string without a colon
// is taken for a name, as Secrets Manager takes it; anything else that is
// not such an ARN names nothing, "".
func SecretName(arn string) string {
	if !strings.Contains(arn, ":") {
		return arn
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return ""
	}
	name := parts[6]
	if i := strings.LastIndex(name, "-"); i >= 0 && len(name)-i == 7 {
		name = name[:i]
	}
	return name
}

// IsGatewaySecret reports whether arn is gateway id's credentials secret:
// its name is GatewaySecretName(prefix, id) for some prefix, the stack's or
// the one the secret was made under (which prefixes a function may read is
// for IAM to say). A gateway item naming any other secret, another
// gateway's included, is not to be trusted with it.
func IsGatewaySecret(arn, gatewayID string) bool {
	if gatewayID == "" {
		return false
	}
	name, own := SecretName(arn), GatewaySecretName("", gatewayID)
	return name == own || strings.HasSuffix(name, "/"+own)
}
