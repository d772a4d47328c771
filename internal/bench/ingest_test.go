package bench

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// The benchmark's webhook is registered as the CLI registers one: ingest
// finds an active route that accepts the returned secret.
func TestRegisterWebhook(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	table := awstest.Resources(t).RegistryTable
	path, secret, err := registerWebhook(ctx, cfg, table, "http://127.0.0.1:1")
	if err != nil {
		t.Fatalf("registerWebhook: %v", err)
	}
	reg := registry.New(dynamodb.NewFromConfig(cfg), table)
	r, err := reg.Route(ctx, path)
	if err != nil {
		t.Fatalf("Route(%s): %v", path, err)
	}
	if !r.Active || len(r.SecretHashes) != 1 || r.SecretHashes[0].SHA256 != webhook.HashSecret(secret) {
		t.Errorf("route = %+v, want active and accepting the returned secret", r)
	}
	// Leave no credentials secret behind in the shared emulator.
	ops := registration.New(reg, secrets.New(secretsmanager.NewFromConfig(cfg)))
	if _, err := ops.DeleteGateway(ctx, r.GatewayID, true); err != nil {
		t.Errorf("DeleteGateway: %v", err)
	}
}
