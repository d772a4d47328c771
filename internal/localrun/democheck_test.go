package localrun

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/instancecheck"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// make dev's demo gateway passes every instance check: its Business Rules
// are in the simulator's sys_script, active and in Global, and its user
// reads what it needs, in UTC.
func TestDemoGatewayPassesTheInstanceChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := awstest.Config(t)
	res := awstest.Resources(t)
	reg := registry.New(dynamodb.NewFromConfig(cfg), res.RegistryTable)
	sec := secrets.New(secretsmanager.NewFromConfig(cfg))

	// The simulator as make dev makes it.
	user, pass := "admin", randomHex(8)
	sim, err := demoSim(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	demo, err := createDemo(ctx, reg, sec, DevConfig{Prefix: "snowgate-dev-"}.secretPrefix(), sim, srv.URL, user, pass, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	// Named as a stack's secrets are: the kind after the prefix.
	if want := ":secret:snowgate/snowgate-dev/gateways/" + demo.gateway.ID; !strings.Contains(demo.gateway.CredentialsSecretARN, want) {
		t.Errorf("demo gateway credentials secret %s, want a name ending in %s", demo.gateway.CredentialsSecretARN, want[len(":secret:"):])
	}
	// Failed jobs escalate: the group resolved to its sys_id, as the
	// writer assigns it.
	if demo.gateway.EscalationGroupID != snowsim.DemoGroupServiceDesk {
		t.Errorf("demo gateway escalation group = %q (%q), want %s (Service Desk)",
			demo.gateway.EscalationGroup, demo.gateway.EscalationGroupID, snowsim.DemoGroupServiceDesk)
	}
	hooks, err := reg.Webhooks(ctx, demo.gateway.ID)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, opts ...servicenow.Option) (instancecheck.Instance, error) {
		return connect.New(connect.Config{Secrets: sec, Options: opts}).Client(ctx, demo.gateway)
	}
	rep := instancecheck.Run(ctx, instancecheck.Target{Gateway: demo.gateway, Webhooks: hooks}, dial)
	for _, c := range rep.Checks {
		if c.Status != instancecheck.OK {
			t.Errorf("demo gateway: check %s = %s: %s (fix: %s)", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
	if c, _ := rep.Check(instancecheck.CheckBusinessRules); len(hooks) != len(registry.EventTypes) || c.Status != instancecheck.OK {
		t.Errorf("demo gateway has %d webhooks, business rules check %s", len(hooks), c.Status)
	}
}
