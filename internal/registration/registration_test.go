package registration_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// errInjected is the failure a test injects into one step.
var errInjected = errors.New("injected failure")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// failingRegistry is the real registry store with one write made to fail,
// after it has read what it reads: a fault where the table write would be.
type failingRegistry struct {
	*registry.Store
	createGateway, updateGateway, createWebhook, updateWebhook error
	// beforeCreateWebhook runs before the real CreateWebhook (a concurrent
	// change between choosing the gateway and writing).
	beforeCreateWebhook func()
	// onCreateGateway sees the gateway about to be written.
	onCreateGateway func(registry.Gateway)
}

func (f *failingRegistry) CreateGateway(ctx context.Context, g registry.Gateway) (registry.Gateway, error) {
	if f.onCreateGateway != nil {
		f.onCreateGateway(g)
	}
	if f.createGateway != nil {
		return registry.Gateway{}, f.createGateway
	}
	return f.Store.CreateGateway(ctx, g)
}

func (f *failingRegistry) UpdateGateway(ctx context.Context, id string, change func(*registry.Gateway) error) (registry.Gateway, error) {
	if f.updateGateway != nil {
		return registry.Gateway{}, f.updateGateway
	}
	return f.Store.UpdateGateway(ctx, id, change)
}

func (f *failingRegistry) CreateWebhook(ctx context.Context, w registry.Webhook) (registry.Webhook, error) {
	if f.beforeCreateWebhook != nil {
		f.beforeCreateWebhook()
	}
	if f.createWebhook != nil {
		return registry.Webhook{}, f.createWebhook
	}
	return f.Store.CreateWebhook(ctx, w)
}

func (f *failingRegistry) UpdateWebhook(ctx context.Context, id string, change func(*registry.Webhook) error) (registry.Webhook, []registry.SigningKeyRef, error) {
	if f.updateWebhook != nil {
		return registry.Webhook{}, nil, f.updateWebhook
	}
	return f.Store.UpdateWebhook(ctx, id, change)
}

// failingSecrets is the real secrets store with deletes (both kinds), or
// puts from the nth on, made to fail.
type failingSecrets struct {
	*secrets.Store
	delete    error
	put       error
	putFrom   int // the first put (1-based) that fails; 0: every one
	mu        sync.Mutex
	putsSoFar int
}

func (f *failingSecrets) Delete(ctx context.Context, arn string) error {
	if f.delete != nil {
		return f.delete
	}
	return f.Store.Delete(ctx, arn)
}

func (f *failingSecrets) Discard(ctx context.Context, arn string) error {
	if f.delete != nil {
		return f.delete
	}
	return f.Store.Discard(ctx, arn)
}

func (f *failingSecrets) Put(ctx context.Context, arn, value string) error {
	f.mu.Lock()
	f.putsSoFar++
	n := f.putsSoFar
	f.mu.Unlock()
	if f.put != nil && n >= f.putFrom {
		return f.put
	}
	return f.Store.Put(ctx, arn, value)
}

type fixture struct {
	t      *testing.T
	reg    *failingRegistry
	sec    *failingSecrets
	svc    *registration.Service
	sm     *secretsmanager.Client
	db     *dynamodb.Client
	table  string
	prefix string
	clock  *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := awstest.Config(t)
	f := &fixture{
		t:      t,
		sm:     secretsmanager.NewFromConfig(cfg),
		db:     dynamodb.NewFromConfig(cfg),
		table:  awstest.Resources(t).RegistryTable,
		prefix: awstest.UniqueName("snowgate-test-") + "/",
		clock:  &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	f.reg = &failingRegistry{Store: registry.New(f.db, f.table, registry.WithClock(f.clock.Now))}
	f.sec = &failingSecrets{Store: secrets.New(f.sm)}
	f.svc = registration.New(f.reg, f.sec, registration.WithSecretPrefix(f.prefix), registration.WithClock(f.clock.Now))
	t.Cleanup(func() {
		for _, name := range f.listSecrets(true) {
			_, _ = f.sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)})
		}
	})
	return f
}

// secretNames lists this test's secrets, sorted, leaving out those
// scheduled for deletion.
func (f *fixture) secretNames() []string {
	f.t.Helper()
	return f.listSecrets(false)
}

func (f *fixture) listSecrets(pending bool) []string {
	f.t.Helper()
	var names []string
	p := secretsmanager.NewListSecretsPaginator(f.sm, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(pending)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			f.t.Fatalf("list secrets: %v", err)
		}
		for _, s := range page.SecretList {
			if name := aws.ToString(s.Name); strings.HasPrefix(name, f.prefix) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// secretState is what Secrets Manager holds of a secret: "live",
// "pending deletion" (deleted with a recovery window, restorable) or
// "gone".
func (f *fixture) secretState(arn string) string {
	f.t.Helper()
	out, err := f.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		return "gone"
	case err != nil:
		f.t.Fatalf("describe secret %s: %v", arn, err)
	case out.DeletedDate != nil:
		return "pending deletion"
	}
	return "live"
}

// secret reads a secret from Secrets Manager itself, past any cache.
func (f *fixture) secret(arn string) (string, bool) {
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", false
	}
	return aws.ToString(out.SecretString), true
}

func (f *fixture) credentials(arn string) registry.Credentials {
	f.t.Helper()
	doc, ok := f.secret(arn)
	if !ok {
		f.t.Fatalf("secret %s does not exist", arn)
	}
	var c registry.Credentials
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		f.t.Fatalf("secret %s is not a credentials document: %v", arn, err)
	}
	return c
}

// items returns the registry table's items as JSON text, one per item.
func (f *fixture) items() []string {
	f.t.Helper()
	out, err := f.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		f.t.Fatalf("scan: %v", err)
	}
	var items []string
	for _, it := range out.Items {
		b, _ := json.Marshal(it)
		items = append(items, string(b))
	}
	return items
}

// state is everything the operations write: registry items and secrets.
type state struct {
	Items   []string
	Secrets []string
}

func (f *fixture) state() state {
	f.t.Helper()
	items := f.items()
	slices.Sort(items)
	return state{Items: items, Secrets: f.secretNames()}
}

func basicInput(name string) registration.GatewayInput {
	return registration.GatewayInput{
		Name: name, InstanceURL: "https://acme.service-now.com/", Auth: registry.AuthBasic,
		Username: "svc", Password: "pa55word", DedupWindowMinutes: 30, WriteBack: true, Active: true,
	}
}

func (f *fixture) gateway(name string) registry.Gateway {
	f.t.Helper()
	g, err := f.svc.CreateGateway(context.Background(), basicInput(name))
	if err != nil {
		f.t.Fatalf("CreateGateway: %v", err)
	}
	return g
}

func (f *fixture) webhook(gatewayID, signing string) registration.IssuedSecret {
	f.t.Helper()
	w, err := f.svc.CreateWebhook(context.Background(), registration.WebhookInput{
		Name: "incidents", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident,
		GatewayID: gatewayID, Signing: signing,
	})
	if err != nil {
		f.t.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

func TestCreateGateway(t *testing.T) {
	f := newFixture(t)
	in := basicInput("prod")
	// Offline: the fixture has no instance (see resolve_test.go).
	in.Description, in.AssignmentGroupFilter, in.EscalationGroup = "main", "Network", "0123456789abcdef0123456789abcdef"
	in.SkipInstanceChecks = true
	g, err := f.svc.CreateGateway(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	if !registry.ValidGatewayID(g.ID) {
		t.Errorf("id %q is not gtw_<uuid>", g.ID)
	}
	stored, err := f.reg.Gateway(context.Background(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := registry.Gateway{
		ID: g.ID, Name: "prod", Type: registry.SourceServiceNow, Description: "main", Active: true,
		InstanceURL: "https://acme.service-now.com", Auth: registry.AuthBasic, Username: "svc",
		CredentialsSecretARN: g.CredentialsSecretARN, AssignmentGroupFilter: "Network", DedupWindowMinutes: 30,
		EscalationGroup: in.EscalationGroup, WriteBack: true, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now(),
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored gateway (-want +got):\n%s", diff)
	}
	// The secret names the instance its credentials are for.
	if diff := cmp.Diff(registry.Credentials{Auth: registry.AuthBasic, Username: "svc", Password: "pa55word", InstanceURL: "https://acme.service-now.com"},
		f.credentials(g.CredentialsSecretARN)); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{f.prefix + "gateways/" + g.ID}, f.secretNames()); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if items := strings.Join(f.items(), ""); strings.Contains(items, "pa55word") {
		t.Error("the password is in the registry table")
	}
}

func TestCreateGatewayTableWriteFails(t *testing.T) {
	f := newFixture(t)
	f.reg.createGateway = errInjected
	_, err := f.svc.CreateGateway(context.Background(), basicInput("prod"))
	if !errors.Is(err, errInjected) {
		t.Fatalf("CreateGateway = %v, want the table write's error", err)
	}
	if diff := cmp.Diff(state{}, f.state()); diff != "" {
		t.Errorf("after a failed table write (-want +got):\n%s", diff)
	}
}

// The secret of an aborted create is removed at once; the secrets of a
// deleted gateway and its webhooks stay restorable for the recovery window;
// and a gateway created again meanwhile (same name, same instance) gets a
// secret of its own, its name free of the one pending deletion.
func TestSecretDeletionAndRecreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var created []string
	f.reg.createGateway = errInjected
	f.reg.onCreateGateway = func(g registry.Gateway) { created = append(created, g.CredentialsSecretARN) }
	if _, err := f.svc.CreateGateway(ctx, basicInput("prod")); !errors.Is(err, errInjected) {
		t.Fatalf("CreateGateway = %v, want the table write's error", err)
	}
	f.reg.createGateway, f.reg.onCreateGateway = nil, nil
	if len(created) != 1 {
		t.Fatalf("saw %d attempted gateway writes, want 1", len(created))
	}
	if got := f.secretState(created[0]); got != "gone" {
		t.Errorf("secret of the aborted create is %s, want gone (no recovery window)", got)
	}

	g := f.gateway("prod")
	w := f.webhook(g.ID, registry.SigningHMAC)
	key := w.Webhook.SigningKeys[0].SecretARN
	if _, err := f.svc.DeleteGateway(ctx, g.ID, true); err != nil {
		t.Fatalf("DeleteGateway: %v", err)
	}
	for what, arn := range map[string]string{"credentials": g.CredentialsSecretARN, "signing key": key} {
		if got := f.secretState(arn); got != "pending deletion" {
			t.Errorf("%s secret of the deleted gateway is %s, want pending deletion", what, got)
		}
	}

	again, err := f.svc.CreateGateway(ctx, basicInput("prod"))
	if err != nil {
		t.Fatalf("CreateGateway again while the first one's secret is pending deletion: %v", err)
	}
	if again.CredentialsSecretARN == g.CredentialsSecretARN {
		t.Errorf("the new gateway reuses the deleted one's secret %s", g.CredentialsSecretARN)
	}
	if c := f.credentials(again.CredentialsSecretARN); c.Password != basicInput("prod").Password {
		t.Errorf("new gateway's credentials = %+v", c)
	}
	if diff := cmp.Diff([]string{f.prefix + "gateways/" + again.ID}, f.secretNames()); diff != "" {
		t.Errorf("live secrets (-want +got):\n%s", diff)
	}
	if got := f.secretState(g.CredentialsSecretARN); got != "pending deletion" {
		t.Errorf("the first gateway's secret is %s after the re-create, want still pending deletion", got)
	}

	// A deleted webhook's keys, and a key dropped by a rotation without
	// grace, are restorable too.
	w2 := f.webhook(again.ID, registry.SigningHMAC)
	first := w2.Webhook.SigningKeys[0].SecretARN
	rotated, err := f.svc.RotateSecret(ctx, w2.Webhook.ID, 0)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	if got := f.secretState(first); got != "pending deletion" {
		t.Errorf("key dropped by the rotation is %s, want pending deletion", got)
	}
	if _, err := f.svc.DeleteWebhook(ctx, w2.Webhook.ID); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if got := f.secretState(rotated.Webhook.SigningKeys[0].SecretARN); got != "pending deletion" {
		t.Errorf("key of the deleted webhook is %s, want pending deletion", got)
	}
}

// A gateway whose credentials secret is under another prefix (made before
// the stack's own) has it moved by any update: the same credentials, or the
// changed ones, in a new secret named for it under the current prefix; the
// old one pending deletion. A failed table write leaves everything as it
// was, the new secret discarded.
func TestUpdateGatewayMovesSecretToThePrefix(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		changes func() registration.GatewayChanges
		want    string // the password afterwards
	}{
		{"any update", func() registration.GatewayChanges { d := "moved"; return registration.GatewayChanges{Description: &d} }, "pa55word"},
		{"new password", func() registration.GatewayChanges { p := "n3w-pa55"; return registration.GatewayChanges{Password: &p} }, "n3w-pa55"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			legacy := registration.New(f.reg, f.sec, registration.WithSecretPrefix(f.prefix+"old/"), registration.WithClock(f.clock.Now))
			g, err := legacy.CreateGateway(ctx, basicInput("prod"))
			if err != nil {
				t.Fatal(err)
			}
			old := g.CredentialsSecretARN
			if !strings.Contains(old, f.prefix+"old/gateways/"+g.ID) {
				t.Fatalf("legacy secret %s", old)
			}

			f.reg.updateGateway = errInjected
			before := f.state()
			if _, _, err := f.svc.UpdateGateway(ctx, g.ID, tc.changes()); !errors.Is(err, errInjected) {
				t.Fatalf("UpdateGateway = %v, want the table write's error", err)
			}
			if diff := cmp.Diff(before, f.state()); diff != "" {
				t.Errorf("after a failed move (-before +after):\n%s", diff)
			}
			f.reg.updateGateway = nil

			got, _, err := f.svc.UpdateGateway(ctx, g.ID, tc.changes())
			if err != nil {
				t.Fatalf("UpdateGateway: %v", err)
			}
			if want := f.prefix + "gateways/" + g.ID; !strings.Contains(got.CredentialsSecretARN, want) {
				t.Errorf("credentials secret %s, want %s", got.CredentialsSecretARN, want)
			}
			if c := f.credentials(got.CredentialsSecretARN); c.Password != tc.want || c.Username != "svc" {
				t.Errorf("moved credentials = %+v, want svc / %s", c, tc.want)
			}
			if st := f.secretState(old); st != "pending deletion" {
				t.Errorf("old secret is %s, want pending deletion", st)
			}
			if diff := cmp.Diff([]string{f.prefix + "gateways/" + g.ID}, f.secretNames()); diff != "" {
				t.Errorf("live secrets (-want +got):\n%s", diff)
			}
			// Moved once: the next update writes the new secret in place.
			p := "th1rd"
			again, _, err := f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{Password: &p})
			if err != nil || again.CredentialsSecretARN != got.CredentialsSecretARN || f.credentials(got.CredentialsSecretARN).Password != p {
				t.Errorf("second update = %s, %v; want the password put in %s", again.CredentialsSecretARN, err, got.CredentialsSecretARN)
			}
		})
	}
}

func TestCreateGatewayUndoFails(t *testing.T) {
	f := newFixture(t)
	f.reg.createGateway = errInjected
	f.sec.delete = errors.New("secrets manager unavailable")
	_, err := f.svc.CreateGateway(context.Background(), basicInput("prod"))
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "also failed to delete the secret created for it") || !strings.Contains(err.Error(), "secrets manager unavailable") {
		t.Fatalf("CreateGateway = %v, want the table write's error and the failed undo", err)
	}
	names := f.secretNames()
	if len(names) != 1 || !strings.Contains(err.Error(), strings.TrimPrefix(names[0], f.prefix)) {
		t.Errorf("secrets = %q; want the one left, named in %q", names, err)
	}
	if n := len(f.items()); n != 0 {
		t.Errorf("%d registry items, want 0", n)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	active := f.gateway("prod")
	g := func(change func(*registration.GatewayInput)) registration.GatewayInput {
		in := basicInput("x")
		change(&in)
		return in
	}
	s := func(v string) *string { return &v }
	n := func(v int) *int { return &v }
	hook := registration.WebhookInput{Name: "x", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident}
	h := func(change func(*registration.WebhookInput)) registration.WebhookInput {
		in := hook
		change(&in)
		return in
	}
	ctx := context.Background()
	before := f.state()

	tests := []struct {
		name, flag, message string
		op                  func() error
	}{
		{"gateway name", "--name", "--name is required", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Name = "" }))
			return err
		}},
		{"instance missing", "--instance-url", "--instance-url is required", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.InstanceURL = "" }))
			return err
		}},
		{"plain http", "--instance-url", "--instance-url must use https (http is accepted only on loopback)", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.InstanceURL = "http://acme.service-now.com" }))
			return err
		}},
		{"not a URL", "--instance-url", "--instance-url must be an https URL such as https://example.service-now.com", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.InstanceURL = "https://u:p@acme.service-now.com" }))
			return err
		}},
		{"auth missing", "--auth", "--auth is required (basic, oauth-client-credentials or oauth-password)", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Auth = "" }))
			return err
		}},
		{"auth unknown", "--auth", "--auth must be basic, oauth-client-credentials or oauth-password", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Auth = "kerberos" }))
			return err
		}},
		{"basic without username", "--username", "--auth basic needs --username", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Username = "" }))
			return err
		}},
		{"basic without password", "--password-stdin", "--auth basic needs --password-stdin", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Password = "" }))
			return err
		}},
		{"client id with basic", "--client-id", "--client-id is not used with --auth basic", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.ClientID = "cid" }))
			return err
		}},
		{"client credentials without secret", "--client-secret-stdin", "--auth oauth-client-credentials needs --client-secret-stdin", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) {
				in.Auth, in.Username, in.Password, in.ClientID = registry.AuthOAuthClientCredentials, "", "", "cid"
			}))
			return err
		}},
		{"dedup window", "--dedup-window-minutes", "--dedup-window-minutes must be -1 (off), 0 or more", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.DedupWindowMinutes = -2 }))
			return err
		}},
		{"mode", "--mode", "--mode must be automatic or semi-automatic", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Mode = "manual" }))
			return err
		}},
		{"on success", "--on-success", "--on-success must be resolve, comment or none", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.OnSuccess = "close" }))
			return err
		}},
		{"on failure", "--on-failure", "--on-failure must be escalate, note or none", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.OnFailure = "Escalate" }))
			return err
		}},
		{"mention with a space", "--mention", `--mention "@snow gate" cannot contain spaces: it is one token, such as @2501`, func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Mention = "@snow gate" }))
			return err
		}},
		{"mention with a tab", "--mention", `--mention "@snow\tgate" cannot contain spaces: it is one token, such as @2501`, func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Mention = "@snow\tgate" }))
			return err
		}},
		{"mention too long", "--mention", "--mention is 41 characters long; at most 40", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Mention = "@" + strings.Repeat("é", 40) }))
			return err
		}},
		{"org too long", "--org", "--org is 101 characters long; at most 100", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Org = strings.Repeat("o", 101) }))
			return err
		}},
		{"org with a newline", "--org", "--org cannot contain control characters", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.Org = "acme\nops" }))
			return err
		}},
		{"blank close code", "--resolve-close-code", `--resolve-close-code cannot be empty (the default is "Solution provided")`, func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.ResolveCloseCode = "  " }))
			return err
		}},
		{"update: empty mention", "--mention", "--mention cannot be empty (the default is @2501)", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{Mention: s("")})
			return err
		}},
		{"update: empty close code", "--resolve-close-code", `--resolve-close-code cannot be empty (the default is "Solution provided")`, func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{ResolveCloseCode: s("")})
			return err
		}},
		{"update: empty mode", "--mode", "--mode must be automatic or semi-automatic", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{Mode: s("")})
			return err
		}},
		{"update: on failure", "--on-failure", "--on-failure must be escalate, note or none", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{OnFailure: s("page")})
			return err
		}},
		{"update: malformed id", "--id", `--id "gtw_1" is not a gateway id (gtw_<uuid>)`, func() error {
			_, _, err := f.svc.UpdateGateway(ctx, "gtw_1", registration.GatewayChanges{Name: s("n")})
			return err
		}},
		{"update: nothing", "", "nothing to change", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{})
			return err
		}},
		{"update: empty name", "--name", "--name cannot be empty", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{Name: s("")})
			return err
		}},
		{"update: dedup", "--dedup-window-minutes", "--dedup-window-minutes must be -1 (off), 0 or more", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{DedupWindowMinutes: n(-3)})
			return err
		}},
		{"update: new mode without its secret", "--client-secret-stdin", "--auth oauth-client-credentials needs --client-secret-stdin", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{Auth: s(registry.AuthOAuthClientCredentials), ClientID: s("cid")})
			return err
		}},
		{"update: unused credential", "--client-id", "--client-id is not used with --auth basic", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{ClientID: s("cid")})
			return err
		}},
		{"delete: missing id", "--id", "--id is required", func() error {
			_, err := f.svc.DeleteGateway(ctx, "", false)
			return err
		}},
		{"webhook: name", "--name", "--name is required", func() error {
			_, err := f.svc.CreateWebhook(ctx, h(func(in *registration.WebhookInput) { in.Name = "" }))
			return err
		}},
		{"webhook: source type", "--source-type", "--source-type must be servicenow", func() error {
			_, err := f.svc.CreateWebhook(ctx, h(func(in *registration.WebhookInput) { in.SourceType = "jira" }))
			return err
		}},
		{"webhook: event type", "--event-type", "--event-type must be incident or change_request", func() error {
			_, err := f.svc.CreateWebhook(ctx, h(func(in *registration.WebhookInput) { in.EventType = "problem" }))
			return err
		}},
		{"webhook: signing", "--signing", "--signing must be secret or hmac", func() error {
			_, err := f.svc.CreateWebhook(ctx, h(func(in *registration.WebhookInput) { in.Signing = "jwt" }))
			return err
		}},
		{"webhook: gateway id", "--gateway-id", `--gateway-id "prod" is not a gateway id (gtw_<uuid>)`, func() error {
			_, err := f.svc.CreateWebhook(ctx, h(func(in *registration.WebhookInput) { in.GatewayID = "prod" }))
			return err
		}},
		{"webhook: update nothing", "", "nothing to change: give --name, --description or --active", func() error {
			_, err := f.svc.UpdateWebhook(ctx, "whk_00000000-0000-4000-8000-000000000000", registration.WebhookChanges{})
			return err
		}},
		{"webhook: malformed id", "--id", `--id "whk_x" is not a webhook id (whk_<uuid>)`, func() error {
			_, err := f.svc.DeleteWebhook(ctx, "whk_x")
			return err
		}},
		{"rate limit: negative", "--rate-limit", "--rate-limit must be at least 1/h (or default, 3600/h)", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.RateLimitPerHour = -1 }))
			return err
		}},
		{"rate limit: more than the budget counts", "--rate-limit", "--rate-limit 3600001/h is more than the budget counts: at most 3600000/h", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{RateLimitPerHour: n(budget.MaxRatePerHour + 1)})
			return err
		}},
		{"max concurrency: too many", "--max-concurrency", "--max-concurrency must be 1 to 64 requests at once (or 0, the default 2)", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.MaxConcurrency = 65 }))
			return err
		}},
		{"max concurrency: negative", "--max-concurrency", "--max-concurrency must be 1 to 64 requests at once (or 0, the default 2)", func() error {
			return f.svc.CheckGatewayUpdate(ctx, active.ID, registration.GatewayChanges{MaxConcurrency: n(-1)})
		}},
		{"custom host", "--instance-url", "--instance-url https://itsm.acme.example is not a ServiceNow instance (https://<instance>.service-now.com or https://<instance>.servicenowservices.com): " +
			"to send the gateway's credentials to this host (a proxy, a custom domain), pass --allow-custom-host", func() error {
			_, err := f.svc.CreateGateway(ctx, g(func(in *registration.GatewayInput) { in.InstanceURL = "https://itsm.acme.example/" }))
			return err
		}},
		{"custom host: a look-alike", "--instance-url", "--instance-url https://acme.service-now.com.example.net is not a ServiceNow instance (https://<instance>.service-now.com or https://<instance>.servicenowservices.com): " +
			"to send the gateway's credentials to this host (a proxy, a custom domain), pass --allow-custom-host", func() error {
			return f.svc.CheckGatewayUpdate(ctx, active.ID, registration.GatewayChanges{InstanceURL: s("https://acme.service-now.com.example.net")})
		}},
		{"custom host: update", "--instance-url", "--instance-url https://itsm.acme.example is not a ServiceNow instance (https://<instance>.service-now.com or https://<instance>.servicenowservices.com): " +
			"to send the gateway's credentials to this host (a proxy, a custom domain), pass --allow-custom-host", func() error {
			_, _, err := f.svc.UpdateGateway(ctx, active.ID, registration.GatewayChanges{InstanceURL: s("https://itsm.acme.example")})
			return err
		}},
		{"rotate: negative grace", "--grace", "--grace must not be negative", func() error {
			_, err := f.svc.RotateSecret(ctx, "whk_00000000-0000-4000-8000-000000000000", -time.Hour)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			var v *registration.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			if v.Flag != tc.flag || v.Error() != tc.message {
				t.Errorf("ValidationError = {%q, %q}, want {%q, %q}", v.Flag, v.Error(), tc.flag, tc.message)
			}
		})
	}
	if diff := cmp.Diff(before, f.state()); diff != "" {
		t.Errorf("refused operations wrote (-before +after):\n%s", diff)
	}
}

func TestUpdateGateway(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	s := func(v string) *string { return &v }

	f.clock.Advance(time.Minute)
	dedup, writeBack := -1, false
	upd, before, err := f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{
		Name: s("production"), InstanceURL: s("https://other.service-now.com/"), EnvironmentFilter: s("prod"),
		DedupWindowMinutes: &dedup, WriteBack: &writeBack, SkipInstanceChecks: true,
	})
	if err != nil {
		t.Fatalf("UpdateGateway: %v", err)
	}
	if diff := cmp.Diff(g, before); diff != "" {
		t.Errorf("before (-want +got):\n%s", diff)
	}
	want := g
	want.Name, want.InstanceURL, want.EnvironmentFilter, want.DedupWindowMinutes, want.WriteBack, want.UpdatedAt =
		"production", "https://other.service-now.com", "prod", -1, false, f.clock.Now()
	stored, _ := f.reg.Gateway(ctx, g.ID)
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(stored, upd); diff != "" {
		t.Errorf("returned (-stored +returned):\n%s", diff)
	}
	// A new instance is written into the secret with the credentials.
	if got := f.credentials(g.CredentialsSecretARN); got.InstanceURL != "https://other.service-now.com" || got.Password != "pa55word" {
		t.Errorf("credentials after the instance changed = %+v, want the new instance, the password kept", got)
	}

	t.Run("new password keeps the user", func(t *testing.T) {
		if _, _, err := f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{Password: s("n3w")}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(registry.Credentials{Auth: registry.AuthBasic, Username: "svc", Password: "n3w", InstanceURL: "https://other.service-now.com"}, f.credentials(g.CredentialsSecretARN)); diff != "" {
			t.Errorf("credentials (-want +got):\n%s", diff)
		}
	})
	t.Run("switch to oauth client credentials", func(t *testing.T) {
		c := registration.GatewayChanges{Auth: s(registry.AuthOAuthClientCredentials), ClientID: s("cid"), ClientSecret: s("cs")}
		if err := f.svc.CheckGatewayUpdate(ctx, g.ID, c); err != nil {
			t.Fatalf("CheckGatewayUpdate: %v", err)
		}
		got, _, err := f.svc.UpdateGateway(ctx, g.ID, c)
		if err != nil {
			t.Fatal(err)
		}
		if got.Auth != registry.AuthOAuthClientCredentials || got.ClientID != "cid" || got.Username != "" {
			t.Errorf("gateway auth = %s, client %q, user %q; want oauth-client-credentials, cid, no user", got.Auth, got.ClientID, got.Username)
		}
		if diff := cmp.Diff(registry.Credentials{Auth: registry.AuthOAuthClientCredentials, ClientID: "cid", ClientSecret: "cs", InstanceURL: "https://other.service-now.com"}, f.credentials(g.CredentialsSecretARN)); diff != "" {
			t.Errorf("credentials (-want +got):\n%s", diff)
		}
	})
	t.Run("unknown gateway", func(t *testing.T) {
		if _, _, err := f.svc.UpdateGateway(ctx, "gtw_00000000-0000-4000-8000-000000000000", registration.GatewayChanges{Name: s("n")}); !errors.Is(err, registration.ErrNotFound) {
			t.Errorf("UpdateGateway(unknown) = %v, want ErrNotFound", err)
		}
	})
}

// A gateway on a host that is neither ServiceNow's nor loopback is made
// and kept only with AllowCustomHost, which an update turns on and off; a
// gateway left on such a host without it (registered before the setting
// existed) can still be changed otherwise.
func TestAllowCustomHost(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := func(v string) *string { return &v }
	b := func(v bool) *bool { return &v }
	invalidFlag := func(t *testing.T, err error) string {
		t.Helper()
		var v *registration.ValidationError
		if !errors.As(err, &v) {
			t.Fatalf("error = %v, want a *ValidationError", err)
		}
		return v.Flag
	}

	in := basicInput("proxied")
	in.InstanceURL, in.AllowCustomHost = "https://itsm.acme.example", true
	g, err := f.svc.CreateGateway(ctx, in)
	if err != nil {
		t.Fatalf("CreateGateway with AllowCustomHost: %v", err)
	}
	if stored, _ := f.reg.Gateway(ctx, g.ID); !stored.AllowCustomHost || stored.InstanceURL != in.InstanceURL {
		t.Fatalf("stored %s, AllowCustomHost %v; want %s allowed", stored.InstanceURL, stored.AllowCustomHost, in.InstanceURL)
	}
	if g, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{Name: s("renamed")}); err != nil || !g.AllowCustomHost {
		t.Fatalf("an unrelated update: AllowCustomHost %v, %v; want it kept", g.AllowCustomHost, err)
	}
	if g, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{InstanceURL: s("https://proxy.acme.example")}); err != nil {
		t.Fatalf("another custom host, still allowed: %v", err)
	}

	before := f.state()
	err = f.svc.CheckGatewayUpdate(ctx, g.ID, registration.GatewayChanges{AllowCustomHost: b(false)})
	if flag := invalidFlag(t, err); flag != "--allow-custom-host" || !strings.Contains(err.Error(), "https://proxy.acme.example") {
		t.Errorf("turned off on a custom host: %v (flag %s), want a refusal of --allow-custom-host naming the URL", err, flag)
	}
	_, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{AllowCustomHost: b(false)})
	invalidFlag(t, err)
	if diff := cmp.Diff(before, f.state()); diff != "" {
		t.Errorf("refused updates wrote (-before +after):\n%s", diff)
	}

	g, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{InstanceURL: s("https://acme.service-now.com"), AllowCustomHost: b(false)})
	if err != nil || g.AllowCustomHost || g.InstanceURL != "https://acme.service-now.com" {
		t.Fatalf("back on ServiceNow, turned off: %s, %v, %v", g.InstanceURL, g.AllowCustomHost, err)
	}
	if g, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{InstanceURL: s("https://itsm.acme.example"), AllowCustomHost: b(true)}); err != nil || !g.AllowCustomHost {
		t.Fatalf("a custom host and the permission in one update: %v, %v", g.AllowCustomHost, err)
	}

	// Left on a custom host without the permission (as before it
	// existed): deactivating it needs nothing more.
	if _, err := f.reg.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { g.AllowCustomHost = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if g, err = f.svc.SetGatewayActive(ctx, g.ID, false); err != nil || g.Active {
		t.Errorf("deactivate a gateway on a custom host without the permission: active %v, %v", g.Active, err)
	}
}

// The job lifecycle settings: stored as given (empty: the default), and
// changed by an update only when given.
func TestGatewayJobSettings(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := func(v string) *string { return &v }
	b := func(v bool) *bool { return &v }
	type settings struct {
		Org, Mode, Mention, OnSuccess, OnFailure, CloseCode string
		DedupNoteOff                                        bool
	}
	stored := func(g registry.Gateway) settings {
		return settings{g.Org, g.Mode, g.Mention, g.OnSuccess, g.OnFailure, g.ResolveCloseCode, g.DedupNoteOff}
	}

	plain := f.gateway("plain")
	if got := stored(plain); got != (settings{}) {
		t.Errorf("a gateway created without settings stores %+v, want none (the defaults)", got)
	}
	in := basicInput("semi")
	in.Org, in.Mode, in.Mention = "acme-ops", registry.ModeSemiAutomatic, "@bot"
	in.OnSuccess, in.OnFailure, in.ResolveCloseCode, in.DedupNoteOff = registry.OnSuccessComment, registry.OnFailureNote, "Workaround provided", true
	g, err := f.svc.CreateGateway(ctx, in)
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	want := settings{"acme-ops", "semi-automatic", "@bot", "comment", "note", "Workaround provided", true}
	if diff := cmp.Diff(want, stored(g)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if read, _ := f.reg.Gateway(ctx, g.ID); stored(read) != want {
		t.Errorf("stored = %+v, want %+v", stored(read), want)
	}

	steps := []struct {
		name string
		ch   registration.GatewayChanges
		want settings
	}{
		{"mode only", registration.GatewayChanges{Mode: s(registry.ModeAutomatic)},
			settings{"acme-ops", "automatic", "@bot", "comment", "note", "Workaround provided", true}},
		{"mapping", registration.GatewayChanges{OnSuccess: s(registry.OnSuccessResolve), OnFailure: s(registry.OnFailureEscalate), ResolveCloseCode: s("Solved (Permanently)")},
			settings{"acme-ops", "automatic", "@bot", "resolve", "escalate", "Solved (Permanently)", true}},
		{"dedup note back on, org cleared", registration.GatewayChanges{DedupNoteOff: b(false), Org: s("")},
			settings{"", "automatic", "@bot", "resolve", "escalate", "Solved (Permanently)", false}},
		{"an unrelated change", registration.GatewayChanges{Name: s("renamed")},
			settings{"", "automatic", "@bot", "resolve", "escalate", "Solved (Permanently)", false}},
		{"mention", registration.GatewayChanges{Mention: s("@2501-prod")},
			settings{"", "automatic", "@2501-prod", "resolve", "escalate", "Solved (Permanently)", false}},
	}
	for _, st := range steps {
		upd, _, err := f.svc.UpdateGateway(ctx, g.ID, st.ch)
		if err != nil {
			t.Fatalf("%s: UpdateGateway: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, stored(upd)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", st.name, diff)
		}
	}
}

// The ServiceNow budget settings: stored as given (0: the default), kept by
// unrelated changes, put back to the default with 0.
func TestGatewayBudgetSettings(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	n := func(v int) *int { return &v }
	name := "renamed"
	type settings struct{ Rate, Concurrency int }
	stored := func(g registry.Gateway) settings { return settings{g.RateLimitPerHour, g.MaxConcurrency} }

	if got := stored(f.gateway("plain")); got != (settings{}) {
		t.Errorf("a gateway created without a budget stores %+v, want none (the defaults)", got)
	}
	in := basicInput("small")
	in.RateLimitPerHour, in.MaxConcurrency = 500, 1
	g, err := f.svc.CreateGateway(ctx, in)
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	if read, _ := f.reg.Gateway(ctx, g.ID); stored(read) != (settings{500, 1}) {
		t.Errorf("stored = %+v, want {500 1}", stored(read))
	}
	steps := []struct {
		name string
		ch   registration.GatewayChanges
		want settings
	}{
		{"rate only", registration.GatewayChanges{RateLimitPerHour: n(1200)}, settings{1200, 1}},
		{"an unrelated change", registration.GatewayChanges{Name: &name}, settings{1200, 1}},
		{"concurrency back to the default", registration.GatewayChanges{MaxConcurrency: n(0)}, settings{1200, 0}},
		{"rate back to the default", registration.GatewayChanges{RateLimitPerHour: n(0), MaxConcurrency: n(4)}, settings{0, 4}},
	}
	for _, st := range steps {
		upd, _, err := f.svc.UpdateGateway(ctx, g.ID, st.ch)
		if err != nil {
			t.Fatalf("%s: UpdateGateway: %v", st.name, err)
		}
		read, _ := f.reg.Gateway(ctx, g.ID)
		if stored(upd) != st.want || stored(read) != st.want {
			t.Errorf("%s: returned %+v, stored %+v, want %+v", st.name, stored(upd), stored(read), st.want)
		}
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		message string // of the error; "" for none
	}{
		{in: "1000/h", want: 1000},
		{in: "1000/hour", want: 1000},
		{in: " 250 /H ", want: 250},
		{in: "1/h", want: 1},
		{in: "3600000/h", want: budget.MaxRatePerHour},
		{in: "default", want: 0},
		{in: "0", want: 0},
		{in: "1000", message: `--rate-limit "1000": give requests per hour, such as 1000/h (or default, 3600/h)`},
		{in: "10/s", message: `--rate-limit "10/s": give requests per hour, such as 1000/h (or default, 3600/h)`},
		{in: "1e3/h", message: `--rate-limit "1e3/h": give requests per hour, such as 1000/h (or default, 3600/h)`},
		{in: "", message: `--rate-limit "": give requests per hour, such as 1000/h (or default, 3600/h)`},
		{in: "0/h", message: "--rate-limit must be at least 1/h (or default, 3600/h)"},
		{in: "-5/h", message: "--rate-limit must be at least 1/h (or default, 3600/h)"},
		{in: "3600001/h", message: "--rate-limit 3600001/h is more than the budget counts: at most 3600000/h"},
	}
	for _, tc := range tests {
		got, err := registration.ParseRateLimit(tc.in)
		if tc.message == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseRateLimit(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
			continue
		}
		var v *registration.ValidationError
		if !errors.As(err, &v) || v.Flag != "--rate-limit" || v.Message != tc.message {
			t.Errorf("ParseRateLimit(%q) = %d, %v; want a ValidationError of --rate-limit %q", tc.in, got, err, tc.message)
		}
	}
}

func TestEscalationWarning(t *testing.T) {
	tests := []struct {
		name string
		g    registry.Gateway
		warn bool
	}{
		{"default mapping, no group", registry.Gateway{}, true},
		{"escalate, no group", registry.Gateway{OnFailure: registry.OnFailureEscalate}, true},
		{"escalate to a group", registry.Gateway{EscalationGroup: "Ops escalations"}, false},
		{"note only", registry.Gateway{OnFailure: registry.OnFailureNote}, false},
		{"none", registry.Gateway{OnFailure: registry.OnFailureNone}, false},
	}
	for _, tc := range tests {
		msg := registration.EscalationWarning(tc.g)
		if (msg != "") != tc.warn {
			t.Errorf("%s: EscalationWarning = %q, want a warning: %v", tc.name, msg, tc.warn)
		}
		if msg != "" && !strings.Contains(msg, "--escalation-group") {
			t.Errorf("%s: EscalationWarning = %q, want it to name --escalation-group", tc.name, msg)
		}
	}
}

func TestUpdateGatewayTableWriteFailsRestoresSecret(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name    string
		changes registration.GatewayChanges
	}{
		{"new password", registration.GatewayChanges{Password: s("n3w"), Name: s("renamed")}},
		{"new auth mode", registration.GatewayChanges{Auth: s(registry.AuthOAuthPassword), ClientID: s("cid"), Password: s("p"), ClientSecret: s("cs")}},
		{"new instance", registration.GatewayChanges{InstanceURL: s("https://other.service-now.com"), SkipInstanceChecks: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			g := f.gateway("prod")
			before := f.state()
			doc, _ := f.secret(g.CredentialsSecretARN)
			f.reg.updateGateway = errInjected
			if _, _, err := f.svc.UpdateGateway(context.Background(), g.ID, tc.changes); !errors.Is(err, errInjected) {
				t.Fatalf("UpdateGateway = %v, want the table write's error", err)
			}
			if got, _ := f.secret(g.CredentialsSecretARN); got != doc {
				t.Errorf("credentials after the failed update = %s, want the previous %s", got, doc)
			}
			if diff := cmp.Diff(before, f.state()); diff != "" {
				t.Errorf("registry or secrets changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestUpdateGatewayRestoreFails(t *testing.T) {
	f := newFixture(t)
	g := f.gateway("prod")
	pw := "n3w"
	f.reg.updateGateway = errInjected
	f.sec.put, f.sec.putFrom = errors.New("secrets manager unavailable"), 2 // the new value goes in, the old one cannot go back
	_, _, err := f.svc.UpdateGateway(context.Background(), g.ID, registration.GatewayChanges{Password: &pw})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "also failed to restore the previous credentials in "+g.CredentialsSecretARN) {
		t.Fatalf("UpdateGateway = %v, want the table write's error and the failed restore naming the secret", err)
	}
}

func TestSetGatewayActive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	w := f.webhook(g.ID, registry.SigningSecret)
	for _, active := range []bool{false, true} {
		got, err := f.svc.SetGatewayActive(ctx, g.ID, active)
		if err != nil {
			t.Fatalf("SetGatewayActive(%v): %v", active, err)
		}
		r, err := f.reg.Route(ctx, w.Webhook.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Active != active || r.Active != active {
			t.Errorf("SetGatewayActive(%v): gateway active %v, route active %v", active, got.Active, r.Active)
		}
	}
}

func TestDeleteGateway(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	if _, err := f.svc.DeleteGateway(ctx, g.ID, false); err != nil {
		t.Fatalf("DeleteGateway: %v", err)
	}
	if diff := cmp.Diff(state{}, f.state()); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
	if _, err := f.svc.DeleteGateway(ctx, g.ID, false); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("DeleteGateway(deleted) = %v, want ErrNotFound", err)
	}
}

func TestDeleteGatewayInUseAndForced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	a := f.webhook(g.ID, registry.SigningHMAC)
	b := f.webhook(g.ID, registry.SigningSecret)
	// A rotated key in grace is a second secret of a; --force removes both.
	if _, err := f.svc.RotateSecret(ctx, a.Webhook.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := len(f.secretNames()); n != 3 {
		t.Fatalf("%d secrets before the delete, want 3 (credentials and two keys)", n)
	}
	before := f.state()

	_, err := f.svc.DeleteGateway(ctx, g.ID, false)
	var inUse *registration.GatewayInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, registration.ErrGatewayInUse) {
		t.Fatalf("DeleteGateway(in use) = %v, want a *GatewayInUseError", err)
	}
	wantIDs := []string{a.Webhook.ID, b.Webhook.ID}
	slices.Sort(wantIDs)
	if diff := cmp.Diff(wantIDs, inUse.WebhookIDs); diff != "" {
		t.Errorf("webhooks in the error (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, f.state()); diff != "" {
		t.Errorf("a refused delete changed (-before +after):\n%s", diff)
	}

	del, err := f.svc.DeleteGateway(ctx, g.ID, true)
	if err != nil {
		t.Fatalf("DeleteGateway(force): %v", err)
	}
	var got []string
	for _, w := range del.Webhooks {
		got = append(got, w.ID)
	}
	if del.Gateway.ID != g.ID || !cmp.Equal(wantIDs, got) {
		t.Errorf("deleted %s and %q, want %s and %q", del.Gateway.ID, got, g.ID, wantIDs)
	}
	if diff := cmp.Diff(state{}, f.state()); diff != "" {
		t.Errorf("after the forced delete (-want +got):\n%s", diff)
	}
}

func TestDeleteGatewaySecretsLeftOver(t *testing.T) {
	f := newFixture(t)
	g := f.gateway("prod")
	w := f.webhook(g.ID, registry.SigningHMAC)
	f.sec.delete = errors.New("secrets manager unavailable")
	del, err := f.svc.DeleteGateway(context.Background(), g.ID, true)
	var left *registration.LeftoverSecretsError
	if !errors.As(err, &left) || !registration.IsLeftover(err) {
		t.Fatalf("DeleteGateway = %v, want a *LeftoverSecretsError", err)
	}
	wantARNs := []string{g.CredentialsSecretARN, w.Webhook.SigningKeys[0].SecretARN}
	if diff := cmp.Diff(wantARNs, left.ARNs); diff != "" {
		t.Errorf("left-over secrets (-want +got):\n%s", diff)
	}
	if del.Gateway.ID != g.ID || len(del.Webhooks) != 1 {
		t.Errorf("result = %+v, want the deleted gateway and its webhook", del)
	}
	if n := len(f.items()); n != 0 {
		t.Errorf("%d registry items after the delete, want 0", n)
	}
}

func TestCreateWebhook(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")

	t.Run("static secret", func(t *testing.T) {
		out, err := f.svc.CreateWebhook(ctx, registration.WebhookInput{
			Name: "inc", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident, Description: "P1s",
		})
		if err != nil {
			t.Fatal(err)
		}
		w := out.Webhook
		if !registry.ValidWebhookID(w.ID) || !registry.ValidPath(w.Path) || out.Gateway.ID != g.ID {
			t.Errorf("id %q, path %q, gateway %s; want whk_<uuid>, 24 hex, the only active gateway %s", w.ID, w.Path, out.Gateway.ID, g.ID)
		}
		want := registry.Webhook{
			ID: w.ID, Name: "inc", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident, GatewayID: g.ID,
			Description: "P1s", Path: w.Path, Active: true, Signing: registry.SigningSecret,
			SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(out.Secret)}}, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now(),
		}
		stored, err := f.reg.Webhook(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stored); diff != "" {
			t.Errorf("stored (-want +got):\n%s", diff)
		}
		r, err := f.reg.Route(ctx, w.Path)
		if err != nil || !r.Active || r.WebhookID != w.ID {
			t.Errorf("route = %+v, %v; want an active route to %s", r, err, w.ID)
		}
		if strings.Contains(strings.Join(f.items(), ""), out.Secret) {
			t.Error("the secret is in the registry table")
		}
	})
	t.Run("hmac", func(t *testing.T) {
		out := f.webhook(g.ID, registry.SigningHMAC)
		keys := out.Webhook.SigningKeys
		if len(keys) != 1 {
			t.Fatalf("signing keys = %+v, want one", keys)
		}
		if v, ok := f.secret(keys[0].SecretARN); !ok || v != out.Secret {
			t.Errorf("key secret = %q, %v; want the issued key", v, ok)
		}
		if !slices.Contains(f.secretNames(), f.prefix+"webhooks/"+out.Webhook.ID) {
			t.Errorf("secrets %q lack %swebhooks/%s", f.secretNames(), f.prefix, out.Webhook.ID)
		}
	})
}

func TestCreateWebhookTableWriteFails(t *testing.T) {
	f := newFixture(t)
	g := f.gateway("prod")
	before := f.state()
	f.reg.createWebhook = errInjected
	for _, signing := range []string{registry.SigningSecret, registry.SigningHMAC} {
		_, err := f.svc.CreateWebhook(context.Background(), registration.WebhookInput{
			Name: "inc", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident, GatewayID: g.ID, Signing: signing,
		})
		if !errors.Is(err, errInjected) {
			t.Fatalf("CreateWebhook(%s) = %v, want the table write's error", signing, err)
		}
		if diff := cmp.Diff(before, f.state()); diff != "" {
			t.Errorf("after a failed %s webhook (-before +after):\n%s", signing, diff)
		}
	}
}

func TestCreateWebhookGatewayDeactivatedMeanwhile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	before := f.state()
	f.reg.beforeCreateWebhook = func() {
		if _, err := f.reg.Store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { g.Active = false; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.CreateWebhook(ctx, registration.WebhookInput{
		Name: "inc", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident, GatewayID: g.ID, Signing: registry.SigningHMAC,
	})
	var chosenInactive *registration.GatewayInactiveError
	if !errors.Is(err, registration.ErrGatewayInactive) || errors.As(err, &chosenInactive) {
		t.Fatalf("CreateWebhook = %v, want the registry's ErrGatewayInactive", err)
	}
	after := f.state()
	if diff := cmp.Diff(before.Secrets, after.Secrets); diff != "" {
		t.Errorf("the HMAC key outlived the failed write (-before +after):\n%s", diff)
	}
	if len(after.Items) != 1 {
		t.Errorf("%d registry items, want the gateway alone", len(after.Items))
	}
}

func TestSelectGateway(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.SelectGateway(ctx, ""); !errors.Is(err, registration.ErrNoActiveGateway) {
		t.Errorf("SelectGateway with none = %v, want ErrNoActiveGateway", err)
	}
	in := basicInput("dormant")
	in.Active = false
	dormant, err := f.svc.CreateGateway(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var inactive *registration.GatewayInactiveError
	if _, err := f.svc.SelectGateway(ctx, dormant.ID); !errors.As(err, &inactive) || inactive.Gateway.ID != dormant.ID {
		t.Errorf("SelectGateway(inactive) = %v, want a *GatewayInactiveError", err)
	}
	if _, err := f.svc.SelectGateway(ctx, "gtw_00000000-0000-4000-8000-000000000000"); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("SelectGateway(unknown) = %v, want ErrNotFound", err)
	}
	a := f.gateway("a")
	if got, err := f.svc.SelectGateway(ctx, ""); err != nil || got.ID != a.ID {
		t.Errorf("SelectGateway with one active = %s, %v; want %s", got.ID, err, a.ID)
	}
	f.gateway("b")
	var v *registration.ValidationError
	if _, err := f.svc.SelectGateway(ctx, ""); !errors.As(err, &v) || v.Flag != "--gateway-id" {
		t.Errorf("SelectGateway with two active = %v, want a ValidationError naming --gateway-id", err)
	}
}

func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	t.Run("static secret", func(t *testing.T) {
		f := newFixture(t)
		g := f.gateway("prod")
		w := f.webhook(g.ID, registry.SigningSecret)
		out, err := f.svc.RotateSecret(ctx, w.Webhook.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		until := f.clock.Now().Add(time.Hour)
		want := []registry.SecretHash{{SHA256: webhook.HashSecret(out.Secret)}, {SHA256: webhook.HashSecret(w.Secret), Expires: until}}
		r, _ := f.reg.Route(ctx, w.Webhook.Path)
		if diff := cmp.Diff(want, r.SecretHashes); diff != "" {
			t.Errorf("route's hashes (-want +got):\n%s", diff)
		}
		if !out.PreviousUntil.Equal(until) || out.Secret == w.Secret {
			t.Errorf("rotation = %+v, want a new secret and the old one until %s", out, until)
		}
	})
	t.Run("hmac with grace", func(t *testing.T) {
		f := newFixture(t)
		g := f.gateway("prod")
		w := f.webhook(g.ID, registry.SigningHMAC)
		out, err := f.svc.RotateSecret(ctx, w.Webhook.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		keys := out.Webhook.SigningKeys
		if len(keys) != 2 || keys[1].SecretARN != w.Webhook.SigningKeys[0].SecretARN {
			t.Fatalf("keys = %+v, want the new one and the old one in grace", keys)
		}
		if v, _ := f.secret(keys[0].SecretARN); v != out.Secret {
			t.Error("the new key's secret does not hold the issued key")
		}
		if _, ok := f.secret(keys[1].SecretARN); !ok {
			t.Error("the key in grace lost its secret")
		}
		// Once the grace has ended, the next change drops the old key and its secret.
		f.clock.Advance(2 * time.Hour)
		name := "renamed"
		if _, err := f.svc.UpdateWebhook(ctx, w.Webhook.ID, registration.WebhookChanges{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.secret(keys[1].SecretARN); ok {
			t.Error("the expired key's secret survived the update that dropped it")
		}
		if n := len(f.secretNames()); n != 2 {
			t.Errorf("%d secrets, want 2 (credentials and the current key)", n)
		}
	})
	t.Run("hmac revoked at once", func(t *testing.T) {
		f := newFixture(t)
		g := f.gateway("prod")
		w := f.webhook(g.ID, registry.SigningHMAC)
		out, err := f.svc.RotateSecret(ctx, w.Webhook.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Webhook.SigningKeys) != 1 || !out.PreviousUntil.IsZero() {
			t.Errorf("rotation = %+v, want the new key alone", out)
		}
		if _, ok := f.secret(w.Webhook.SigningKeys[0].SecretARN); ok {
			t.Error("the revoked key's secret survived")
		}
	})
}

func TestRotateSecretTableWriteFails(t *testing.T) {
	for _, signing := range []string{registry.SigningSecret, registry.SigningHMAC} {
		t.Run(signing, func(t *testing.T) {
			f := newFixture(t)
			g := f.gateway("prod")
			w := f.webhook(g.ID, signing)
			before := f.state()
			f.reg.updateWebhook = errInjected
			if _, err := f.svc.RotateSecret(context.Background(), w.Webhook.ID, time.Hour); !errors.Is(err, errInjected) {
				t.Fatalf("RotateSecret = %v, want the table write's error", err)
			}
			if diff := cmp.Diff(before, f.state()); diff != "" {
				t.Errorf("after a failed rotation (-before +after):\n%s", diff)
			}
		})
	}
}

func TestRotateSecretLeftover(t *testing.T) {
	f := newFixture(t)
	g := f.gateway("prod")
	w := f.webhook(g.ID, registry.SigningHMAC)
	f.sec.delete = errors.New("secrets manager unavailable")
	out, err := f.svc.RotateSecret(context.Background(), w.Webhook.ID, 0)
	if !registration.IsLeftover(err) {
		t.Fatalf("RotateSecret = %v, want a *LeftoverSecretsError", err)
	}
	// The rotation happened: its new key is returned, to be shown once.
	if out.Secret == "" || len(out.Webhook.SigningKeys) != 1 || out.Webhook.SigningKeys[0].SecretARN == w.Webhook.SigningKeys[0].SecretARN {
		t.Errorf("result = %+v, want the new key", out)
	}
}

func TestUpdateAndDeleteWebhook(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.gateway("prod")
	w := f.webhook(g.ID, registry.SigningHMAC)
	off, desc := false, "paused"
	got, err := f.svc.UpdateWebhook(ctx, w.Webhook.ID, registration.WebhookChanges{Active: &off, Description: &desc})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.reg.Route(ctx, w.Webhook.Path)
	if got.Active || got.Description != "paused" || got.Name != "incidents" || r.Active {
		t.Errorf("updated = %+v, route active %v; want inactive, described, name kept, route inactive", got, r.Active)
	}
	if _, err := f.svc.UpdateWebhook(ctx, "whk_00000000-0000-4000-8000-000000000000", registration.WebhookChanges{Active: &off}); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("UpdateWebhook(unknown) = %v, want ErrNotFound", err)
	}

	del, err := f.svc.DeleteWebhook(ctx, w.Webhook.ID)
	if err != nil || del.ID != w.Webhook.ID {
		t.Fatalf("DeleteWebhook = %s, %v", del.ID, err)
	}
	after := f.state()
	if len(after.Items) != 1 || !cmp.Equal(after.Secrets, []string{f.prefix + "gateways/" + g.ID}) {
		t.Errorf("after delete: %d items, secrets %q; want the gateway and its credentials alone", len(after.Items), after.Secrets)
	}
	if _, err := f.svc.DeleteWebhook(ctx, w.Webhook.ID); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("DeleteWebhook(deleted) = %v, want ErrNotFound", err)
	}
}

// A gateway item edited by hand to point at another gateway's secret: the
// operations neither overwrite nor delete that secret.
func TestForeignCredentialsSecret(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mine, other := f.gateway("mine"), f.gateway("other")
	if _, err := f.reg.Store.UpdateGateway(ctx, mine.ID, func(g *registry.Gateway) error {
		g.CredentialsSecretARN = other.CredentialsSecretARN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	doc, _ := f.secret(other.CredentialsSecretARN)
	pw := "stolen"
	if _, _, err := f.svc.UpdateGateway(ctx, mine.ID, registration.GatewayChanges{Password: &pw}); err == nil || !strings.Contains(err.Error(), "not the one named for it") {
		t.Errorf("UpdateGateway(password) = %v, want a refusal to change another gateway's secret", err)
	}
	// The secret names its instance: a new one is not written into another gateway's.
	elsewhere := "https://elsewhere.service-now.com"
	if _, _, err := f.svc.UpdateGateway(ctx, mine.ID, registration.GatewayChanges{InstanceURL: &elsewhere, SkipInstanceChecks: true}); err == nil || !strings.Contains(err.Error(), "not the one named for it") {
		t.Errorf("UpdateGateway(instance URL) = %v, want a refusal to change another gateway's secret", err)
	}
	if _, err := f.svc.DeleteGateway(ctx, mine.ID, false); err != nil {
		t.Fatalf("DeleteGateway: %v", err)
	}
	if got, ok := f.secret(other.CredentialsSecretARN); !ok || got != doc {
		t.Errorf("the other gateway's secret = %q, %v after the update and delete; want it unchanged", got, ok)
	}
}
