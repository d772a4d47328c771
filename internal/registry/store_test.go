package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	store *registry.Store
	db    *dynamodb.Client
	table string
	clock *clock
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Resources(t).RegistryTable
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	return fixture{store: registry.New(db, table, registry.WithClock(c.Now)), db: db, table: table, clock: c}
}

func gatewayID() string { return "gtw_" + uuid.NewString() }
func webhookID() string { return "whk_" + uuid.NewString() }
func path() string      { return uuid.NewString()[:8] + uuid.NewString()[:8] + uuid.NewString()[:8] }

func (f fixture) gateway(t *testing.T, active bool) registry.Gateway {
	t.Helper()
	g, err := f.store.CreateGateway(context.Background(), registry.Gateway{
		ID: gatewayID(), Name: "prod", Type: registry.SourceServiceNow, Active: active,
		InstanceURL: "https://example.service-now.com", Auth: registry.AuthBasic, Username: "svc",
		CredentialsSecretARN: "arn:secret", DedupWindowMinutes: 30, WriteBack: true,
	})
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	return g
}

func (f fixture) webhook(t *testing.T, gw string) registry.Webhook {
	t.Helper()
	w, err := f.store.CreateWebhook(context.Background(), registry.Webhook{
		ID: webhookID(), Name: "incidents", SourceType: registry.SourceServiceNow,
		EventType: registry.TableIncident, GatewayID: gw, Path: path(), Active: true,
		Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: "h1"}},
	})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

func (f fixture) route(t *testing.T, path string) registry.Route {
	t.Helper()
	r, err := f.store.Route(context.Background(), path)
	if err != nil {
		t.Fatalf("Route(%s): %v", path, err)
	}
	return r
}

func TestGatewayLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)

	got, err := f.store.Gateway(ctx, g.ID)
	if err != nil {
		t.Fatalf("Gateway: %v", err)
	}
	if diff := cmp.Diff(g, got); diff != "" {
		t.Errorf("Gateway() mismatch (-want +got):\n%s", diff)
	}
	if _, err := f.store.CreateGateway(ctx, g); !errors.Is(err, registry.ErrExists) {
		t.Errorf("CreateGateway(existing id) = %v, want ErrExists", err)
	}

	f.clock.Advance(time.Minute)
	upd, err := f.store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error {
		g.Name, g.ID = "renamed", "gtw_ignored"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateGateway: %v", err)
	}
	if upd.Name != "renamed" || upd.ID != g.ID || !upd.UpdatedAt.Equal(f.clock.Now()) || !upd.CreatedAt.Equal(g.CreatedAt) {
		t.Errorf("UpdateGateway() = %+v, want renamed, same id and created_at, updated now", upd)
	}

	list, err := f.store.Gateways(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "renamed" {
		t.Errorf("Gateways() = %+v, %v; want the renamed gateway", list, err)
	}

	if _, _, err := f.store.DeleteGateway(ctx, g.ID, false); err != nil {
		t.Fatalf("DeleteGateway: %v", err)
	}
	if _, err := f.store.Gateway(ctx, g.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Gateway(deleted) = %v, want ErrNotFound", err)
	}
	if _, err := f.store.UpdateGateway(ctx, g.ID, func(*registry.Gateway) error { return nil }); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("UpdateGateway(deleted) = %v, want ErrNotFound", err)
	}
}

func TestWebhookAndRoute(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	w := f.webhook(t, g.ID)

	got, err := f.store.Webhook(ctx, w.ID)
	if err != nil {
		t.Fatalf("Webhook: %v", err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("Webhook() mismatch (-want +got):\n%s", diff)
	}
	want := registry.Route{
		Path: w.Path, WebhookID: w.ID, GatewayID: g.ID, Table: registry.TableIncident, Active: true,
		Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: "h1"}}, UpdatedAt: f.clock.Now(),
	}
	if diff := cmp.Diff(want, f.route(t, w.Path)); diff != "" {
		t.Errorf("Route() mismatch (-want +got):\n%s", diff)
	}

	other := f.gateway(t, true)
	f.webhook(t, other.ID)
	for _, tc := range []struct {
		name    string
		gateway string
		want    int
	}{
		{"all", "", 2},
		{"one gateway", g.ID, 1},
		{"unknown gateway", gatewayID(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := f.store.Webhooks(ctx, tc.gateway)
			if err != nil || len(list) != tc.want {
				t.Errorf("Webhooks(%q) = %d items, %v; want %d", tc.gateway, len(list), err, tc.want)
			}
		})
	}

	deleted, err := f.store.DeleteWebhook(ctx, w.ID)
	if err != nil || deleted.ID != w.ID {
		t.Fatalf("DeleteWebhook = %v, %v", deleted.ID, err)
	}
	if _, err := f.store.Route(ctx, w.Path); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Route after delete = %v, want ErrNotFound", err)
	}
	if _, err := f.store.DeleteWebhook(ctx, w.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("DeleteWebhook again = %v, want ErrNotFound", err)
	}
	// The gateway has no webhook left: it can be deleted without force.
	if _, _, err := f.store.DeleteGateway(ctx, g.ID, false); err != nil {
		t.Errorf("DeleteGateway after its webhook went: %v", err)
	}
}

func TestCreateWebhookRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	active := f.gateway(t, true)
	inactive := f.gateway(t, false)
	taken := f.webhook(t, active.ID)

	tests := []struct {
		name string
		w    registry.Webhook
		want error
	}{
		{"unknown gateway", registry.Webhook{ID: webhookID(), GatewayID: gatewayID(), Path: path()}, registry.ErrNotFound},
		{"inactive gateway", registry.Webhook{ID: webhookID(), GatewayID: inactive.ID, Path: path()}, registry.ErrGatewayInactive},
		{"id taken", registry.Webhook{ID: taken.ID, GatewayID: active.ID, Path: path()}, registry.ErrExists},
		{"path taken", registry.Webhook{ID: webhookID(), GatewayID: active.ID, Path: taken.Path}, registry.ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.store.CreateWebhook(ctx, tc.w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateWebhook() = %v, want %v", err, tc.want)
			}
			if tc.w.ID != taken.ID {
				if _, err := f.store.Webhook(ctx, tc.w.ID); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("Webhook after refused create = %v, want ErrNotFound", err)
				}
			}
			if tc.w.Path != taken.Path {
				if _, err := f.store.Route(ctx, tc.w.Path); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("Route after refused create = %v, want ErrNotFound", err)
				}
			}
		})
	}
	if r := f.route(t, taken.Path); r.WebhookID != taken.ID {
		t.Errorf("Route(%s).WebhookID = %s, want %s (untouched)", taken.Path, r.WebhookID, taken.ID)
	}
}

func TestGatewayActiveRewritesRoutes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	a, b := f.webhook(t, g.ID), f.webhook(t, g.ID)
	if _, _, err := f.store.UpdateWebhook(ctx, b.ID, func(w *registry.Webhook) error { w.Active = false; return nil }); err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}

	steps := []struct {
		name           string
		gatewayActive  bool
		wantA, wantB   bool
		webhookBActive *bool
	}{
		{name: "deactivate gateway", gatewayActive: false, wantA: false, wantB: false},
		{name: "reactivate gateway", gatewayActive: true, wantA: true, wantB: false},
		{name: "activate webhook b", gatewayActive: true, wantA: true, wantB: true, webhookBActive: aws.Bool(true)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := f.store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { g.Active = st.gatewayActive; return nil }); err != nil {
				t.Fatalf("UpdateGateway: %v", err)
			}
			if st.webhookBActive != nil {
				if _, _, err := f.store.UpdateWebhook(ctx, b.ID, func(w *registry.Webhook) error { w.Active = *st.webhookBActive; return nil }); err != nil {
					t.Fatalf("UpdateWebhook: %v", err)
				}
			}
			if got := f.route(t, a.Path).Active; got != st.wantA {
				t.Errorf("route a active = %v, want %v", got, st.wantA)
			}
			if got := f.route(t, b.Path).Active; got != st.wantB {
				t.Errorf("route b active = %v, want %v", got, st.wantB)
			}
		})
	}
}

func TestDeleteGatewayInUse(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	w := f.webhook(t, g.ID)

	if _, _, err := f.store.DeleteGateway(ctx, g.ID, false); !errors.Is(err, registry.ErrGatewayInUse) {
		t.Fatalf("DeleteGateway(in use) = %v, want ErrGatewayInUse", err)
	}
	if _, err := f.store.Gateway(ctx, g.ID); err != nil {
		t.Fatalf("gateway gone after refused delete: %v", err)
	}
	_, deleted, err := f.store.DeleteGateway(ctx, g.ID, true)
	if err != nil {
		t.Fatalf("DeleteGateway(force): %v", err)
	}
	if len(deleted) != 1 || deleted[0].ID != w.ID {
		t.Errorf("DeleteGateway(force) deleted %+v, want webhook %s", deleted, w.ID)
	}
	for _, check := range []struct {
		name string
		err  error
	}{
		{"webhook", func() error { _, err := f.store.Webhook(ctx, w.ID); return err }()},
		{"route", func() error { _, err := f.store.Route(ctx, w.Path); return err }()},
		{"gateway", func() error { _, err := f.store.Gateway(ctx, g.ID); return err }()},
	} {
		if !errors.Is(check.err, registry.ErrNotFound) {
			t.Errorf("%s after forced delete: %v, want ErrNotFound", check.name, check.err)
		}
	}
}

func TestRotationGraceAndPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	w := f.webhook(t, g.ID)

	rotate := func(hash string, grace time.Duration) registry.Webhook {
		t.Helper()
		got, _, err := f.store.UpdateWebhook(ctx, w.ID, func(w *registry.Webhook) error {
			registry.RotateSecretHash(w, hash, f.clock.Now(), grace)
			return nil
		})
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		return got
	}
	t0 := f.clock.Now()
	rotate("h2", time.Hour)
	want := []registry.SecretHash{{SHA256: "h2"}, {SHA256: "h1", Expires: t0.Add(time.Hour)}}
	if diff := cmp.Diff(want, f.route(t, w.Path).SecretHashes); diff != "" {
		t.Errorf("route hashes during grace (-want +got):\n%s", diff)
	}

	f.clock.Advance(2 * time.Hour)
	got := rotate("h3", 0)
	want = []registry.SecretHash{{SHA256: "h3"}}
	if diff := cmp.Diff(want, got.SecretHashes); diff != "" {
		t.Errorf("webhook hashes after grace and a zero-grace rotation (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, f.route(t, w.Path).SecretHashes); diff != "" {
		t.Errorf("route hashes after prune (-want +got):\n%s", diff)
	}
}

func TestPruneExpiredSigningKeys(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := registry.Webhook{SigningKeys: []registry.SigningKeyRef{
		{SecretARN: "current"},
		{SecretARN: "grace", Expires: now.Add(time.Second)},
		{SecretARN: "ended", Expires: now},
	}}
	dropped := registry.PruneExpired(&w, now)
	if diff := cmp.Diff([]registry.SigningKeyRef{{SecretARN: "ended", Expires: now}}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"current", "grace"}, arns(w.SigningKeys)); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
}

func arns(ks []registry.SigningKeyRef) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.SecretARN)
	}
	return out
}

// TestFixtureItems checks that items written the documented way (MarshalMap
// plus pk and kind, no store bookkeeping) are read and updated correctly.
func TestFixtureItems(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := registry.Gateway{ID: gatewayID(), Name: "fixture", Active: true, Auth: registry.AuthBasic}
	w := registry.Webhook{ID: webhookID(), GatewayID: g.ID, Path: path(), Active: true, EventType: registry.TableIncident, Signing: registry.SigningSecret}
	put := func(pk, kind string, v any) {
		item, err := attributevalue.MarshalMap(v)
		if err != nil {
			t.Fatal(err)
		}
		item[schema.AttrPK] = &ddbtypes.AttributeValueMemberS{Value: pk}
		item[schema.AttrKind] = &ddbtypes.AttributeValueMemberS{Value: kind}
		if _, err := f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(f.table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	put(registry.GatewayKey(g.ID), registry.KindGateway, g)
	put(registry.WebhookKey(w.ID), registry.KindWebhook, w)
	put(registry.PathKey(w.Path), registry.KindPath, registry.RouteFor(w, g, f.clock.Now()))

	if _, err := f.store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { g.Active = false; return nil }); err != nil {
		t.Fatalf("UpdateGateway(fixture): %v", err)
	}
	if f.route(t, w.Path).Active {
		t.Error("fixture route still active after its gateway was deactivated")
	}
	if _, _, err := f.store.DeleteGateway(ctx, g.ID, false); !errors.Is(err, registry.ErrGatewayInUse) {
		t.Errorf("DeleteGateway(fixture in use) = %v, want ErrGatewayInUse", err)
	}
}

// TestConcurrentWritesKeepRoutesConsistent races gateway and webhook
// activation changes; whatever order they land in, every Route must end up
// active exactly when both its webhook and its gateway are.
func TestConcurrentWritesKeepRoutesConsistent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	hooks := []registry.Webhook{f.webhook(t, g.ID), f.webhook(t, g.ID)}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 6; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := f.store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { g.Active = i%2 == 0; return nil })
			if err != nil && !errors.Is(err, registry.ErrConflict) {
				errs <- fmt.Errorf("gateway: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			_, _, err := f.store.UpdateWebhook(ctx, hooks[i%2].ID, func(w *registry.Webhook) error { w.Active = i%3 != 0; return nil })
			if err != nil && !errors.Is(err, registry.ErrConflict) {
				errs <- fmt.Errorf("webhook: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	gw, err := f.store.Gateway(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		w, err := f.store.Webhook(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		r := f.route(t, w.Path)
		if r.Active != (w.Active && gw.Active) {
			t.Errorf("route %s active = %v, want webhook %v AND gateway %v", w.ID, r.Active, w.Active, gw.Active)
		}
	}
}

// The custom-host permission is stored as allow_custom_host, kept by an
// update that does not touch it, and absent from the item while off.
func TestGatewayAllowCustomHost(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	g := f.gateway(t, true)
	raw := func() map[string]ddbtypes.AttributeValue {
		t.Helper()
		out, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(f.table),
			Key: map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: registry.GatewayKey(g.ID)}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	if _, ok := raw()["allow_custom_host"]; ok {
		t.Errorf("a gateway without the permission has allow_custom_host in its item")
	}
	for _, change := range []func(*registry.Gateway){
		func(g *registry.Gateway) { g.AllowCustomHost = true },
		func(g *registry.Gateway) { g.Name = "renamed" },
	} {
		if _, err := f.store.UpdateGateway(ctx, g.ID, func(g *registry.Gateway) error { change(g); return nil }); err != nil {
			t.Fatalf("UpdateGateway: %v", err)
		}
		if v, ok := raw()["allow_custom_host"].(*ddbtypes.AttributeValueMemberBOOL); !ok || !v.Value {
			t.Errorf("allow_custom_host = %v, want true", raw()["allow_custom_host"])
		}
		if got, err := f.store.Gateway(ctx, g.ID); err != nil || !got.AllowCustomHost {
			t.Errorf("Gateway() = %+v, %v; want AllowCustomHost", got, err)
		}
	}
}
