package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// Fixtures shared with testdata/*.json.
const (
	secretPath  = "0123456789abcdef01234567"
	hmacPath    = "89abcdef0123456789abcdef"
	testSecret  = "s3cr3t-current-0123456789abcdefghijklmnopq"
	prevSecret  = "s3cr3t-previous-0123456789abcdefghijklmnop"
	oldSecret   = "s3cr3t-expired-0123456789abcdefghijklmnopq"
	signingKey  = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	prevKey     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	gatewayID   = "gtw_11111111-2222-4333-8444-555555555555"
	webhookID   = "whk_aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	hmacWebhook = "whk_99999999-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	validSysID  = "9d385017c611228701d22104cc95c371"
	lambdaReqID = "6f1c2b8e-4d3a-4e5f-9a7b-1c2d3e4f5a6b"
	minimalBody = `{"sys_id":"` + validSysID + `"}`
	contentJSON = "application/json"
)

// now is the fixed clock of every test: 2026-03-01T12:00:00Z, the
// timestamp of the signed testdata events.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// env is one test's emulator resources and clients.
type env struct {
	res     provision.Resources
	ddb     *dynamodb.Client
	sqs     *sqs.Client
	secrets *secrets.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := awstest.Config(t)
	return &env{
		res:     awstest.Resources(t),
		ddb:     dynamodb.NewFromConfig(cfg),
		sqs:     sqs.NewFromConfig(cfg),
		secrets: secrets.New(secretsmanager.NewFromConfig(cfg)),
	}
}

// instanceURL is the test gateway's instance, named acme.
const instanceURL = "https://acme.service-now.com"

// putGateway writes a gateway item the way the registry does; ingest reads
// only its instance URL.
func (e *env) putGateway(t *testing.T, g registry.Gateway) {
	t.Helper()
	item, err := attributevalue.MarshalMap(g)
	if err != nil {
		t.Fatalf("marshal gateway: %v", err)
	}
	item[schema.AttrPK] = &ddbtypes.AttributeValueMemberS{Value: registry.GatewayKey(g.ID)}
	item[schema.AttrKind] = &ddbtypes.AttributeValueMemberS{Value: registry.KindGateway}
	if _, err := e.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.res.RegistryTable), Item: item}); err != nil {
		t.Fatalf("put gateway %s: %v", g.ID, err)
	}
}

// replays is a replay store on this test's state table.
func (e *env) replays() *replay.Store { return replay.New(e.ddb, e.res.StateTable) }

// putRoute writes a path item the way the registry does.
func (e *env) putRoute(t *testing.T, r registry.Route) {
	t.Helper()
	item, err := attributevalue.MarshalMap(r)
	if err != nil {
		t.Fatalf("marshal route: %v", err)
	}
	item[schema.AttrPK] = &ddbtypes.AttributeValueMemberS{Value: registry.PathKey(r.Path)}
	item[schema.AttrKind] = &ddbtypes.AttributeValueMemberS{Value: registry.KindPath}
	if _, err := e.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.res.RegistryTable), Item: item}); err != nil {
		t.Fatalf("put route %s: %v", r.Path, err)
	}
}

func (e *env) deleteRoute(t *testing.T, path string) {
	t.Helper()
	_, err := e.ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(e.res.RegistryTable),
		Key:       map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: registry.PathKey(path)}},
	})
	if err != nil {
		t.Fatalf("delete route %s: %v", path, err)
	}
}

func (e *env) createSecret(t *testing.T, value string) string {
	t.Helper()
	arn, err := e.secrets.Create(context.Background(), awstest.UniqueName("snowgate/test-ingest-"), value, "test signing key")
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	t.Cleanup(func() { _ = e.secrets.Delete(context.Background(), arn) })
	return arn
}

func (e *env) handler(t *testing.T, c *clock, opts ingest.Options) *ingest.Handler {
	t.Helper()
	opts.Now = c.Now
	return ingest.New(registry.New(e.ddb, e.res.RegistryTable), e.secrets, e.sender(), opts)
}

func (e *env) sender() *queue.Sender { return queue.NewSender(e.sqs, e.res.IntakeQueueURL) }

// drain returns every message on the intake queue, checking the source
// attribute of each.
func (e *env) drain(t *testing.T) []queue.IntakeMessage {
	t.Helper()
	var out []queue.IntakeMessage
	for _, m := range awstest.Drain(t, e.sqs, e.res.IntakeQueueURL) {
		var im queue.IntakeMessage
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &im); err != nil {
			t.Fatalf("message body %q: %v", aws.ToString(m.Body), err)
		}
		if got := aws.ToString(m.MessageAttributes[queue.AttrSource].StringValue); got != queue.SourceWebhook {
			t.Errorf("message attribute source = %q, want %q", got, queue.SourceWebhook)
		}
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SysID < out[j].SysID })
	return out
}

// registrations writes the routes TestHandle uses and returns the HMAC keys' ARNs.
func (e *env) registrations(t *testing.T) {
	t.Helper()
	e.putGateway(t, registry.Gateway{ID: gatewayID, Name: "acme", Active: true, InstanceURL: instanceURL})
	hash := func(s string) string { return webhook.HashSecret(s) }
	grace := now.Add(time.Hour)
	secretRoute := func(path string, mod func(*registry.Route)) {
		r := registry.Route{
			Path: path, WebhookID: webhookID, GatewayID: gatewayID, Table: registry.TableIncident,
			Active: true, Signing: registry.SigningSecret,
			SecretHashes: []registry.SecretHash{
				{SHA256: hash(testSecret)},
				{SHA256: hash(prevSecret), Expires: grace},
				{SHA256: hash(oldSecret), Expires: now.Add(-time.Second)},
			},
			UpdatedAt: now,
		}
		if mod != nil {
			mod(&r)
		}
		e.putRoute(t, r)
	}
	secretRoute(secretPath, nil)
	secretRoute("a00000000000000000000001", func(r *registry.Route) { r.Active = false })
	secretRoute("a00000000000000000000002", func(r *registry.Route) { r.Signing = "plaintext" })
	secretRoute("a00000000000000000000003", func(r *registry.Route) { r.Signing = "" })
	secretRoute("a00000000000000000000004", func(r *registry.Route) { r.SecretHashes = nil })
	secretRoute("a00000000000000000000005", func(r *registry.Route) {
		r.SecretHashes = []registry.SecretHash{{SHA256: "not-a-hash"}, {SHA256: ""}}
	})
	secretRoute("a00000000000000000000006", func(r *registry.Route) { r.Table = "" })
	secretRoute("a00000000000000000000007", func(r *registry.Route) { r.Signing = registry.SigningHMAC })

	current := e.createSecret(t, signingKey)
	previous := e.createSecret(t, prevKey)
	gone := e.createSecret(t, signingKey)
	if err := e.secrets.Delete(context.Background(), gone); err != nil {
		t.Fatalf("delete secret: %v", err)
	}
	malformed := e.createSecret(t, "not a signing key")
	hmacRoute := func(path string, keys ...registry.SigningKeyRef) {
		e.putRoute(t, registry.Route{
			Path: path, WebhookID: hmacWebhook, GatewayID: gatewayID, Table: registry.TableChangeRequest,
			Active: true, Signing: registry.SigningHMAC, SigningKeys: keys,
			// A hash on an HMAC route must not open a second way in.
			SecretHashes: []registry.SecretHash{{SHA256: hash(testSecret)}},
			UpdatedAt:    now,
		})
	}
	hmacRoute(hmacPath, registry.SigningKeyRef{SecretARN: current}, registry.SigningKeyRef{SecretARN: previous, Expires: grace})
	hmacRoute("b00000000000000000000001", registry.SigningKeyRef{SecretARN: gone})
	hmacRoute("b00000000000000000000002", registry.SigningKeyRef{SecretARN: current, Expires: now.Add(-time.Second)})
	hmacRoute("b00000000000000000000003", registry.SigningKeyRef{SecretARN: malformed})
}

// req is a test request through the net/http adapter.
type req struct {
	method  string
	path    string
	ct      string
	secret  string
	signed  *webhook.SignedHeaders
	body    string
	chunked bool // hide the length, as a chunked upload does
}

func (r req) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	path := r.path
	if path == "" {
		path = secretPath
	}
	var body io.Reader = strings.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(body)
	}
	hr := httptest.NewRequest(method, ingest.PathPrefix+path, body)
	if r.chunked {
		hr.ContentLength = -1
	}
	if r.ct != "-" {
		ct := r.ct
		if ct == "" {
			ct = contentJSON
		}
		hr.Header.Set("Content-Type", ct)
	}
	if r.secret != "" {
		hr.Header.Set(ingest.HeaderSecret, r.secret)
	}
	if r.signed != nil {
		hr.Header.Set(ingest.HeaderWebhookID, r.signed.ID)
		hr.Header.Set(ingest.HeaderWebhookTimestamp, r.signed.Timestamp)
		hr.Header.Set(ingest.HeaderWebhookSignature, r.signed.Signature)
	}
	hr = hr.WithContext(lambdacontext.NewContext(hr.Context(), &lambdacontext.LambdaContext{AwsRequestID: lambdaReqID}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// signed returns Standard Webhooks headers for body under key at ts.
func signed(t *testing.T, key, id string, ts time.Time, body string) *webhook.SignedHeaders {
	t.Helper()
	raw, err := webhook.DecodeSigningKey(key)
	if err != nil {
		t.Fatalf("DecodeSigningKey: %v", err)
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	return &webhook.SignedHeaders{ID: id, Timestamp: stamp, Signature: webhook.Sign(raw, id, stamp, []byte(body))}
}

// response is what a test compares of an HTTP answer.
type response struct {
	Status int
	Header map[string]string
	Body   string
}

func responseOf(w *httptest.ResponseRecorder) response {
	h := map[string]string{}
	for k := range w.Header() {
		h[k] = w.Header().Get(k)
	}
	return response{w.Code, h, w.Body.String()}
}

var unauthorized = response{
	Status: http.StatusUnauthorized,
	Header: map[string]string{"Content-Type": "application/json"},
	Body:   `{"error":"unauthorized"}`,
}

func msg(table, webhook, sysID string, mod func(*queue.IntakeMessage)) *queue.IntakeMessage {
	m := &queue.IntakeMessage{
		GatewayID: gatewayID, WebhookID: webhook, Table: table, SysID: sysID,
		Source: queue.SourceWebhook, ReceivedAt: now, RequestID: lambdaReqID,
	}
	if mod != nil {
		mod(m)
	}
	return m
}

func intPtr(n int) *int { return &n }

// withInstance is the minimal body with the instance_name a rule sends.
func withInstance(name string) string {
	return `{"sys_id":"` + validSysID + `","instance_name":"` + name + `"}`
}

func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

func TestHandle(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	c := &clock{t: now}
	h := e.handler(t, c, ingest.Options{Replays: e.replays()})

	full := `{"sys_id":"` + validSysID + `","table":"change_request","number":"INC0010001","sys_mod_count":7,"operation":"update","short_description":"ignored"}`
	exact := `{"sys_id":"` + validSysID + `","pad":"` + strings.Repeat("x", ingest.MaxBody-len(minimalBody)-10) + `"}`
	tooLarge := `{"sys_id":"` + validSysID + `","pad":"` + strings.Repeat("x", ingest.MaxBody) + `"}`
	accepted := func(status int) func(t *testing.T, got response) {
		return func(t *testing.T, got response) {
			want := fmt.Sprintf(`{"status":"accepted","request_id":%q}`, lambdaReqID)
			if got.Status != status || got.Body != want {
				t.Errorf("response = %d %s, want %d %s", got.Status, got.Body, status, want)
			}
		}
	}
	tests := []struct {
		name       string
		req        req
		wantStatus int
		// wantResp, when set, is compared whole (every 401 must be identical).
		wantResp *response
		wantMsg  *queue.IntakeMessage
	}{
		// Accepted.
		{name: "minimal body", req: req{secret: testSecret, body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "hints passed along, table from the route", req: req{secret: testSecret, body: full}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, func(m *queue.IntakeMessage) {
				m.Number, m.SysModCount, m.Operation = "INC0010001", intPtr(7), "update"
			})},
		{name: "sys_mod_count as a string", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":"12"}`}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, func(m *queue.IntakeMessage) { m.SysModCount = intPtr(12) })},
		{name: "sys_mod_count empty string or null", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":"","number":null}`}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "content type with charset", req: req{secret: testSecret, body: minimalBody, ct: "Application/JSON; charset=utf-8"}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "upper-case sys_id is normalised", req: req{secret: testSecret, body: `{"sys_id":"` + strings.ToUpper(validSysID) + `"}`}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "previous secret during grace", req: req{secret: prevSecret, body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "body of exactly 16 KiB", req: req{secret: testSecret, body: exact}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "chunked body", req: req{secret: testSecret, body: minimalBody, chunked: true}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "hmac", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_a1", now, minimalBody), body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},
		{name: "hmac with several signatures", req: req{path: hmacPath, body: minimalBody, signed: func() *webhook.SignedHeaders {
			s := signed(t, signingKey, "msg_a2", now, minimalBody)
			s.Signature = "v1,bm90IHRoaXMgb25lIG5vdCB0aGlzIG9uZSBub3QgdGhpcyAh " + s.Signature
			return s
		}()}, wantStatus: 202, wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},
		{name: "hmac previous key during grace", req: req{path: hmacPath, signed: signed(t, prevKey, "msg_a3", now, minimalBody), body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},
		{name: "hmac timestamp 4 minutes old", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_a4", now.Add(-4*time.Minute), minimalBody), body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},
		// ServiceNow's ECC queue can be minutes late: the default tolerance is 15.
		{name: "hmac timestamp 14 minutes old", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_a5", now.Add(-14*time.Minute), minimalBody), body: minimalBody}, wantStatus: 202,
			wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},
		{name: "instance name of the gateway", req: req{secret: testSecret, body: withInstance("acme")}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "instance name in upper case", req: req{secret: testSecret, body: withInstance("ACME")}, wantStatus: 202,
			wantMsg: msg(registry.TableIncident, webhookID, validSysID, nil)},
		{name: "hmac with the instance name signed", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_a6", now, withInstance("acme")), body: withInstance("acme")}, wantStatus: 202,
			wantMsg: msg(registry.TableChangeRequest, hmacWebhook, validSysID, nil)},

		// Authentication failures: one and the same answer.
		{name: "unknown path", req: req{path: "ffffffffffffffffffffffff", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "malformed path", req: req{path: "../../etc/passwd", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "upper-case path", req: req{path: strings.ToUpper(secretPath), secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "path with a suffix", req: req{path: secretPath + "/x", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "empty path", req: req{path: "/", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "missing secret", req: req{body: minimalBody}, wantResp: &unauthorized},
		{name: "wrong secret", req: req{secret: "guess", body: minimalBody}, wantResp: &unauthorized},
		{name: "secret with trailing space", req: req{secret: testSecret + "x", body: minimalBody}, wantResp: &unauthorized},
		{name: "the hash instead of the secret", req: req{secret: webhook.HashSecret(testSecret), body: minimalBody}, wantResp: &unauthorized},
		{name: "expired previous secret", req: req{secret: oldSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "wrong secret and a bad body", req: req{secret: "guess", body: `{not json`}, wantResp: &unauthorized},
		{name: "inactive webhook or gateway", req: req{path: "a00000000000000000000001", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "unknown signing mode", req: req{path: "a00000000000000000000002", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "empty signing mode", req: req{path: "a00000000000000000000003", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "registration without hash", req: req{path: "a00000000000000000000004", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "registration with malformed hashes", req: req{path: "a00000000000000000000005", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "registration without table", req: req{path: "a00000000000000000000006", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac registration without keys", req: req{path: "a00000000000000000000007", secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac route with the static secret", req: req{path: hmacPath, secret: testSecret, body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac without headers", req: req{path: hmacPath, body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac wrong key", req: req{path: hmacPath, signed: signed(t, webhook.NewSigningKey(), "msg_1", now, minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac tampered body", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_1", now, minimalBody), body: `{"sys_id":"ffffffffffffffffffffffffffffffff"}`}, wantResp: &unauthorized},
		{name: "hmac replayed 16 minutes later", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_b1", now.Add(-16*time.Minute), minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac from 16 minutes in the future", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_b2", now.Add(16*time.Minute), minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac with a webhook-id over the limit", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_"+strings.Repeat("x", ingest.MaxMessageID), now, minimalBody), body: minimalBody}, wantResp: &unauthorized},
		// A clone of production posting with production's secret or key.
		{name: "another instance", req: req{secret: testSecret, body: withInstance("acmedev")}, wantResp: &unauthorized},
		{name: "another instance, signed", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_b3", now, withInstance("acmedev")), body: withInstance("acmedev")}, wantResp: &unauthorized},
		{name: "hmac key deleted from Secrets Manager", req: req{path: "b00000000000000000000001", signed: signed(t, signingKey, "msg_1", now, minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac key expired", req: req{path: "b00000000000000000000002", signed: signed(t, signingKey, "msg_1", now, minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac key malformed", req: req{path: "b00000000000000000000003", signed: signed(t, signingKey, "msg_1", now, minimalBody), body: minimalBody}, wantResp: &unauthorized},
		{name: "hmac chunked body over the limit", req: req{path: hmacPath, signed: signed(t, signingKey, "msg_1", now, tooLarge), body: tooLarge, chunked: true}, wantResp: &unauthorized},

		// Protocol errors.
		{name: "GET", req: req{method: http.MethodGet, secret: testSecret}, wantResp: &response{405,
			map[string]string{"Content-Type": "application/json", "Allow": "POST"}, `{"error":"method not allowed"}`}},
		{name: "PUT", req: req{method: http.MethodPut, secret: testSecret, body: minimalBody}, wantStatus: 405},
		{name: "text/plain", req: req{secret: testSecret, body: minimalBody, ct: "text/plain"}, wantStatus: 415},
		{name: "no content type", req: req{secret: testSecret, body: minimalBody, ct: "-"}, wantStatus: 415},
		{name: "application/jsonx", req: req{secret: testSecret, body: minimalBody, ct: "application/jsonx"}, wantStatus: 415},
		{name: "too large", req: req{secret: testSecret, body: tooLarge}, wantStatus: 413},
		{name: "too large on an unknown path too", req: req{path: "ffffffffffffffffffffffff", body: tooLarge}, wantStatus: 413},
		{name: "too large, chunked", req: req{secret: testSecret, body: tooLarge, chunked: true}, wantStatus: 413},

		// Bad bodies from an authenticated caller.
		{name: "malformed JSON", req: req{secret: testSecret, body: `{"sys_id":`}, wantResp: &response{400,
			map[string]string{"Content-Type": "application/json"}, `{"error":"body must be a JSON object"}`}},
		{name: "empty body", req: req{secret: testSecret}, wantStatus: 400},
		{name: "array", req: req{secret: testSecret, body: `["` + validSysID + `"]`}, wantStatus: 400},
		{name: "trailing garbage", req: req{secret: testSecret, body: minimalBody + "x"}, wantStatus: 400},
		{name: "missing sys_id", req: req{secret: testSecret, body: `{"number":"INC1"}`}, wantStatus: 400},
		{name: "sys_id a number", req: req{secret: testSecret, body: `{"sys_id":12345678901234567890123456789012}`}, wantResp: &response{400,
			map[string]string{"Content-Type": "application/json"}, `{"error":"sys_id must be a string of 32 hex characters"}`}},
		{name: "sys_id too short", req: req{secret: testSecret, body: `{"sys_id":"9d385017"}`}, wantStatus: 400},
		{name: "sys_id not hex", req: req{secret: testSecret, body: `{"sys_id":"zz385017c611228701d22104cc95c371"}`}, wantStatus: 400},
		{name: "sys_mod_count not numeric", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":"abc"}`}, wantStatus: 400},
		{name: "sys_mod_count negative", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":-1}`}, wantStatus: 400},
		{name: "sys_mod_count fractional", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":1.5}`}, wantStatus: 400},
		{name: "sys_mod_count a boolean", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","sys_mod_count":true}`}, wantStatus: 400},
		{name: "table a number", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","table":1}`}, wantResp: &response{400,
			map[string]string{"Content-Type": "application/json"}, `{"error":"table has the wrong type"}`}},
		{name: "number too long", req: req{secret: testSecret, body: `{"sys_id":"` + validSysID + `","number":"` + strings.Repeat("1", 65) + `"}`}, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := responseOf(tt.req.do(t, h))
			switch {
			case tt.wantResp != nil:
				if diff := cmp.Diff(*tt.wantResp, got); diff != "" {
					t.Errorf("response (-want +got):\n%s", diff)
				}
			case tt.wantStatus == 202:
				accepted(202)(t, got)
			default:
				if got.Status != tt.wantStatus {
					t.Errorf("status = %d (%s), want %d", got.Status, got.Body, tt.wantStatus)
				}
			}
			if got.Status != 202 && got.Status != 405 && !strings.HasPrefix(got.Body, `{"error":"`) {
				t.Errorf("error body %q is not {\"error\":...}", got.Body)
			}
			var want []queue.IntakeMessage
			if tt.wantMsg != nil {
				want = append(want, *tt.wantMsg)
			}
			if diff := cmp.Diff(want, e.drain(t)); diff != "" {
				t.Errorf("intake queue (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnavailable: a failure to read the registry or to enqueue is a 503
// (the caller may retry), never a 202 for a message that is not queued.
func TestUnavailable(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	cfg := awstest.Config(t)
	tests := []struct {
		name  string
		table string
		queue string
	}{
		{"queue missing", e.res.RegistryTable, e.res.IntakeQueueURL + "-missing"},
		{"registry table missing", e.res.RegistryTable + "-missing", e.res.IntakeQueueURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := ingest.New(registry.New(e.ddb, tt.table), e.secrets, queue.NewSender(sqs.NewFromConfig(cfg), tt.queue),
				ingest.Options{Now: (&clock{t: now}).Now, Logger: jsonLogger(&logs)})
			got := responseOf(req{secret: testSecret, body: minimalBody}.do(t, h))
			want := response{503, map[string]string{"Content-Type": "application/json", "Retry-After": "1"}, `{"error":"temporarily unavailable, retry"}`}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if !strings.Contains(logs.String(), `"outcome":"unavailable"`) || !strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("log %q does not record the failure as an error", logs.String())
			}
			if got := e.drain(t); len(got) != 0 {
				t.Errorf("intake queue holds %d messages, want 0", len(got))
			}
		})
	}
}

// TestRouteCache: a burst reuses the looked-up route, and a deleted webhook
// stops being accepted once the cache TTL has passed.
func TestRouteCache(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		// after deleting the route, requests at these offsets from now...
		at   []time.Duration
		want []int // ...get these statuses
	}{
		{"default TTL", 0, []time.Duration{0, ingest.DefaultCacheTTL - time.Millisecond, ingest.DefaultCacheTTL}, []int{202, 202, 401}},
		{"short TTL", time.Second, []time.Duration{999 * time.Millisecond, time.Second}, []int{202, 401}},
		{"cache off", -1, []time.Duration{0}, []int{401}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.putGateway(t, registry.Gateway{ID: gatewayID, Active: true, InstanceURL: instanceURL})
			e.putRoute(t, registry.Route{Path: secretPath, WebhookID: webhookID, GatewayID: gatewayID, Table: registry.TableIncident,
				Active: true, Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(testSecret)}}})
			c := &clock{t: now}
			h := e.handler(t, c, ingest.Options{CacheTTL: tt.ttl})
			if got := (req{secret: testSecret, body: minimalBody}).do(t, h).Code; got != 202 {
				t.Fatalf("first request = %d, want 202", got)
			}
			e.deleteRoute(t, secretPath)
			for i, d := range tt.at {
				c.Set(now.Add(d))
				if got := (req{secret: testSecret, body: minimalBody}).do(t, h).Code; got != tt.want[i] {
					t.Errorf("%s after deletion: status %d, want %d", d, got, tt.want[i])
				}
			}
			e.drain(t)
		})
	}
}

// TestAPIGatewayEvents feeds payload 2.0 events through
// lambda.NewHandler(...).Invoke, as the Lambda runtime does, in both shapes
// the stack can put before ingest: an HTTP API route event (apigw_*, with a
// {path} parameter) and a function URL event (furl_*, with the whole path
// in rawPath and no path parameters). Each case lists its events of both
// shapes: the answer and the queue must be the same whichever front sent it.
func TestAPIGatewayEvents(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	h := e.handler(t, &clock{t: now}, ingest.Options{})
	invoke := lambda.NewHandler(h.HandleAPIGateway)

	hints := func(m *queue.IntakeMessage) { m.Number, m.SysModCount, m.Operation = "INC0010001", intPtr(4), "update" }
	acceptedBody := fmt.Sprintf(`{"status":"accepted","request_id":%q}`, lambdaReqID)
	tests := []struct {
		name       string
		files      []string
		wantStatus int
		wantBody   string
		wantMsg    *queue.IntakeMessage
	}{
		{"secret", []string{"apigw_secret.json", "furl_secret.json"}, 202, acceptedBody, msg(registry.TableIncident, webhookID, validSysID, hints)},
		{"base64 body", []string{"apigw_base64.json", "furl_base64.json"}, 202, acceptedBody, msg(registry.TableIncident, webhookID, validSysID, hints)},
		// A catch-all route puts a stage name before the prefix.
		{"stage in rawPath", []string{"apigw_stage_rawpath.json"}, 202, acceptedBody, msg(registry.TableIncident, webhookID, validSysID, hints)},
		// Function URL events carry "$default" placeholders for routeKey and
		// stage; nothing depends on them.
		{"no route key", []string{"furl_no_route_key.json"}, 202, acceptedBody, msg(registry.TableIncident, webhookID, validSysID, hints)},
		// The emulator's events keep Go's canonical header case.
		{"canonical headers", []string{"apigw_emulator_canonical_headers.json"}, 202, acceptedBody, msg(registry.TableIncident, webhookID, validSysID, hints)},
		{"hmac", []string{"apigw_hmac.json", "furl_hmac.json"}, 202, acceptedBody, msg(registry.TableChangeRequest, hmacWebhook, validSysID, hints)},
		{"hmac tampered", []string{"apigw_hmac_tampered.json", "furl_hmac_tampered.json"}, 401, unauthorized.Body, nil},
		{"wrong secret", []string{"apigw_wrong_secret.json", "furl_wrong_secret.json"}, 401, unauthorized.Body, nil},
		{"no secret", []string{"apigw_no_secret.json", "furl_no_secret.json"}, 401, unauthorized.Body, nil},
		{"GET", []string{"apigw_get.json", "furl_get.json"}, 405, `{"error":"method not allowed"}`, nil},
		{"bad sys_id", []string{"apigw_bad_sys_id.json", "furl_bad_sys_id.json"}, 400, `{"error":"sys_id must be a string of 32 hex characters"}`, nil},
		{"too large", []string{"apigw_too_large.json", "furl_too_large.json"}, 413, `{"error":"body larger than 16 KiB"}`, nil},
		// Every path reaches a function URL; outside the ingest route the
		// answer is the one an unknown webhook gets, with a valid secret.
		{"other path", []string{"furl_other_path.json"}, 401, unauthorized.Body, nil},
		{"root", []string{"furl_root.json"}, 401, unauthorized.Body, nil},
		{"prefix deeper than a stage", []string{"furl_nested_prefix.json"}, 401, unauthorized.Body, nil},
		{"trailing slash", []string{"furl_trailing_slash.json"}, 401, unauthorized.Body, nil},
	}
	for _, tt := range tests {
		for _, file := range tt.files {
			t.Run(tt.name+"/"+strings.TrimSuffix(file, ".json"), func(t *testing.T) {
				payload, err := os.ReadFile(filepath.Join("testdata", file))
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(file, "furl_") && bytes.Contains(payload, []byte(`"pathParameters"`)) {
					t.Fatalf("%s: a function URL event has no path parameters", file)
				}
				ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: lambdaReqID})
				out, err := invoke.Invoke(ctx, payload)
				if err != nil {
					t.Fatalf("Invoke(%s): %v", file, err)
				}
				var got events.APIGatewayV2HTTPResponse
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("response %s: %v", out, err)
				}
				if got.StatusCode != tt.wantStatus || got.Body != tt.wantBody || got.Headers["Content-Type"] != "application/json" {
					t.Errorf("Invoke(%s) = %d %v %s, want %d %s", file, got.StatusCode, got.Headers, got.Body, tt.wantStatus, tt.wantBody)
				}
				var want []queue.IntakeMessage
				if tt.wantMsg != nil {
					want = append(want, *tt.wantMsg)
				}
				if diff := cmp.Diff(want, e.drain(t)); diff != "" {
					t.Errorf("intake queue after %s (-want +got):\n%s", file, diff)
				}
			})
		}
	}
}

// TestLogLine: one JSON line per request with the request id, webhook,
// outcome and latency, and never the secret or the body.
func TestLogLine(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	var logs bytes.Buffer
	h := e.handler(t, &clock{t: now}, ingest.Options{Logger: jsonLogger(&logs)})
	body := `{"sys_id":"` + validSysID + `","number":"INC-SECRET-BODY"}`
	for _, r := range []req{{secret: testSecret, body: body}, {secret: "wrong-secret-value", body: body}} {
		logs.Reset()
		r.do(t, h)
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("log %q is not one JSON line: %v", logs.String(), err)
		}
		for _, k := range []string{"request_id", "webhook_id", "outcome", "latency_ms", "status"} {
			if _, ok := line[k]; !ok {
				t.Errorf("log line %s lacks %q", logs.String(), k)
			}
		}
		if line["request_id"] != lambdaReqID {
			t.Errorf("log request_id = %v, want %s", line["request_id"], lambdaReqID)
		}
		for _, leak := range []string{r.secret, "INC-SECRET-BODY", webhook.HashSecret(testSecret)} {
			if strings.Contains(logs.String(), leak) {
				t.Errorf("log line %s contains %q", logs.String(), leak)
			}
		}
	}
	e.drain(t)
}

func TestEnvFromGetenv(t *testing.T) {
	base := map[string]string{schema.EnvRegistryTable: "reg", schema.EnvIntakeQueueURL: "http://q", schema.EnvStateTable: "state"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	defaults := func(mod func(*ingest.Env)) ingest.Env {
		e := ingest.Env{RegistryTable: "reg", IntakeQueueURL: "http://q", StateTable: "state",
			CacheTTL: ingest.DefaultCacheTTL, Tolerance: ingest.DefaultTolerance}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    ingest.Env
		wantErr []string // substrings of the error
	}{
		{"defaults", base, defaults(nil), nil},
		{"ttl set", with(ingest.EnvCacheTTL, "2s"), defaults(func(e *ingest.Env) { e.CacheTTL = 2 * time.Second }), nil},
		{"ttl zero turns the cache off", with(ingest.EnvCacheTTL, "0"), defaults(func(e *ingest.Env) { e.CacheTTL = -1 }), nil},
		{"tolerance set", with(ingest.EnvTolerance, "45m"), defaults(func(e *ingest.Env) { e.Tolerance = 45 * time.Minute }), nil},
		{"tolerance at its bounds", with(ingest.EnvTolerance, "24h"), defaults(func(e *ingest.Env) { e.Tolerance = ingest.MaxTolerance }), nil},
		{"tolerance too short", with(ingest.EnvTolerance, "30s"), ingest.Env{}, []string{ingest.EnvTolerance}},
		{"tolerance too long", with(ingest.EnvTolerance, "25h"), ingest.Env{}, []string{ingest.EnvTolerance}},
		{"tolerance not a duration", with(ingest.EnvTolerance, "900"), ingest.Env{}, []string{ingest.EnvTolerance}},
		{"no state table", with(schema.EnvStateTable, ""), ingest.Env{}, []string{schema.EnvStateTable}},
		{"nothing set", map[string]string{}, ingest.Env{}, []string{schema.EnvRegistryTable, schema.EnvIntakeQueueURL, schema.EnvStateTable}},
		{"no queue", with(schema.EnvIntakeQueueURL, " "), ingest.Env{}, []string{schema.EnvIntakeQueueURL}},
		{"ttl not a duration", with(ingest.EnvCacheTTL, "5"), ingest.Env{}, []string{ingest.EnvCacheTTL}},
		{"ttl too long", with(ingest.EnvCacheTTL, "1h"), ingest.Env{}, []string{ingest.EnvCacheTTL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.EnvFromGetenv(func(k string) string { return tt.env[k] })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EnvFromGetenv (-want +got):\n%s", diff)
			}
			if (err != nil) != (len(tt.wantErr) > 0) {
				t.Fatalf("EnvFromGetenv error = %v, want one mentioning %v", err, tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("EnvFromGetenv error %q does not name %s", err, s)
				}
			}
		})
	}
}

// TestRequestIDWithoutLambdaContext: outside Lambda the edge's request id
// is used, so a response can still be matched to its log line and message.
func TestRequestIDWithoutLambdaContext(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	h := e.handler(t, &clock{t: now}, ingest.Options{})
	var ev events.APIGatewayV2HTTPRequest
	payload, err := os.ReadFile(filepath.Join("testdata", "apigw_secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	resp, err := h.HandleAPIGateway(context.Background(), ev)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("HandleAPIGateway = %d %s, %v; want 202", resp.StatusCode, resp.Body, err)
	}
	want := fmt.Sprintf(`{"status":"accepted","request_id":%q}`, ev.RequestContext.RequestID)
	if resp.Body != want {
		t.Errorf("body = %s, want %s", resp.Body, want)
	}
	if got := e.drain(t); len(got) != 1 || got[0].RequestID != ev.RequestContext.RequestID {
		t.Errorf("queue = %+v, want one message with request id %s", got, ev.RequestContext.RequestID)
	}
}

// TestUnknownPathCache: a path found unknown is answered from memory for
// a short while, without a table read, so a flood on it costs one read
// per UnknownTTL: a route written meanwhile is seen only after that. With
// the cache off every request reads.
func TestUnknownPathCache(t *testing.T) {
	tests := []struct {
		name string
		opts ingest.Options
		// after writing the route, requests at these offsets from now...
		at   []time.Duration
		want []int // ...get these statuses
	}{
		{"default", ingest.Options{}, []time.Duration{0, ingest.DefaultUnknownTTL - time.Millisecond, ingest.DefaultUnknownTTL}, []int{401, 401, 202}},
		{"never longer than the route cache", ingest.Options{CacheTTL: time.Second}, []time.Duration{999 * time.Millisecond, time.Second}, []int{401, 202}},
		{"set", ingest.Options{UnknownTTL: 500 * time.Millisecond}, []time.Duration{499 * time.Millisecond, 500 * time.Millisecond}, []int{401, 202}},
		{"off", ingest.Options{UnknownTTL: -1}, []time.Duration{0}, []int{202}},
		{"cache off", ingest.Options{CacheTTL: -1}, []time.Duration{0}, []int{202}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.putGateway(t, registry.Gateway{ID: gatewayID, Active: true, InstanceURL: instanceURL})
			c := &clock{t: now}
			h := e.handler(t, c, tt.opts)
			r := req{secret: testSecret, body: withInstance("acme")}
			if got := r.do(t, h).Code; got != 401 {
				t.Fatalf("unknown path: %d, want 401", got)
			}
			e.putRoute(t, registry.Route{Path: secretPath, WebhookID: webhookID, GatewayID: gatewayID, Table: registry.TableIncident,
				Active: true, Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(testSecret)}}})
			for i, d := range tt.at {
				c.Set(now.Add(d))
				if got := r.do(t, h).Code; got != tt.want[i] {
					t.Errorf("%s after the route was written: status %d, want %d", d, got, tt.want[i])
				}
			}
			e.drain(t)
		})
	}
}
