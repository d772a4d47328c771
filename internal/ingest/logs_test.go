package ingest_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
)

// splitReplays remembers in one store and forgets in another.
type splitReplays struct{ remember, forget *replay.Store }

func (s splitReplays) Remember(ctx context.Context, webhookID, messageID string, now, expires time.Time) (bool, error) {
	return s.remember.Remember(ctx, webhookID, messageID, now, expires)
}

func (s splitReplays) Forget(ctx context.Context, webhookID, messageID string, now time.Time) error {
	return s.forget.Forget(ctx, webhookID, messageID, now)
}

// TestNoPathInLogs sends a request down every way ingest can refuse or
// fail one (every authentication failure, every protocol and body error,
// every store that can fail: registry, route item, gateway, signing key,
// replay store, queue, and the clean-up after a failed enqueue) and checks
// that no log line, and no metric line, carries the webhook path: the
// path is the secret part of the webhook's URL. Each request logs exactly
// one line.
func TestNoPathInLogs(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	cfg := awstest.Config(t)
	const brokenPath = "d00000000000000000000001" // a path item that does not decode
	_, err := e.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.res.RegistryTable), Item: map[string]ddbtypes.AttributeValue{
		schema.AttrPK:   &ddbtypes.AttributeValueMemberS{Value: registry.PathKey(brokenPath)},
		schema.AttrKind: &ddbtypes.AttributeValueMemberS{Value: registry.KindPath},
		"path":          &ddbtypes.AttributeValueMemberS{Value: brokenPath},
		"active":        &ddbtypes.AttributeValueMemberS{Value: "yes"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(e.ddb, e.res.RegistryTable)
	missingReg := registry.New(e.ddb, e.res.RegistryTable+"-missing")
	missingQueue := queue.NewSender(sqs.NewFromConfig(cfg), e.res.IntakeQueueURL+"-missing")
	missingReplays := replay.New(e.ddb, e.res.StateTable+"-missing")
	unreachableSecrets := secrets.New(secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	}))

	var logs, emf bytes.Buffer
	opts := ingest.Options{Now: (&clock{t: now}).Now, Logger: jsonLogger(&logs), Metrics: emitter(&emf), Replays: e.replays()}
	with := func(mod func(*ingest.Options)) ingest.Options {
		o := opts
		mod(&o)
		return o
	}
	handlers := map[string]*ingest.Handler{
		"normal":           ingest.New(reg, e.secrets, e.sender(), opts),
		"registry missing": ingest.New(missingReg, e.secrets, e.sender(), opts),
		"gateway unreadable": ingest.New(splitRegistry{reg, missingReg}, e.secrets, e.sender(),
			with(func(o *ingest.Options) { o.CacheTTL = -1 })),
		"secrets unreachable": ingest.New(reg, unreachableSecrets, e.sender(), opts),
		"queue missing":       ingest.New(reg, e.secrets, missingQueue, opts),
		"replays missing":     ingest.New(reg, e.secrets, e.sender(), with(func(o *ingest.Options) { o.Replays = missingReplays })),
		"queue missing, then forget fails": ingest.New(reg, e.secrets, missingQueue,
			with(func(o *ingest.Options) { o.Replays = splitReplays{e.replays(), missingReplays} })),
	}
	acme := withInstance("acme")
	sign := func(id, body string) *req {
		return &req{path: hmacPath, signed: signed(t, signingKey, id, now, body), body: body}
	}
	requests := []req{
		{secret: testSecret, body: acme},
		{secret: testSecret, body: minimalBody},
		{secret: "guess", body: acme},
		{body: acme},
		{secret: testSecret, body: withInstance("acmedev")},
		{secret: testSecret, body: `{"sys_id":1}`},
		{secret: testSecret, body: `{not json`},
		{secret: testSecret, body: acme, ct: "text/plain"},
		{method: http.MethodGet, secret: testSecret},
		{secret: testSecret, body: `{"x":"` + strings.Repeat("x", ingest.MaxBody) + `"}`},
		{secret: testSecret, body: `{"x":"` + strings.Repeat("x", ingest.MaxBody) + `"}`, chunked: true},
		{path: "ffffffffffffffffffffffff", secret: testSecret, body: acme},
		{path: "ffffffffffffffffffffffff", secret: testSecret, body: acme}, // from the unknown cache
		{path: brokenPath, secret: testSecret, body: acme},
		{path: "a00000000000000000000001", secret: testSecret, body: acme},
		{path: "a00000000000000000000002", secret: testSecret, body: acme},
		{path: "a00000000000000000000004", secret: testSecret, body: acme},
		{path: "a00000000000000000000007", secret: testSecret, body: acme},
		{path: "b00000000000000000000001", signed: sign("msg_l0", acme).signed, body: acme},
		{path: "b00000000000000000000003", signed: sign("msg_l0", acme).signed, body: acme},
		{path: hmacPath, body: acme},
		{path: hmacPath, secret: testSecret, body: acme},
		{path: hmacPath, signed: sign("msg_l1", acme).signed, body: `{"sys_id":"ffffffffffffffffffffffffffffffff"}`},
		{path: hmacPath, signed: sign("msg_"+strings.Repeat("x", ingest.MaxMessageID), acme).signed, body: acme},
		{path: hmacPath, signed: signed(t, signingKey, "msg_l2", now.Add(-ingest.DefaultTolerance*2), acme), body: acme},
	}
	paths := []string{secretPath, hmacPath, brokenPath, "ffffffffffffffffffffffff", "a00000000000000000000001", "a00000000000000000000002",
		"a00000000000000000000004", "a00000000000000000000007", "b00000000000000000000001", "b00000000000000000000003"}
	var all strings.Builder
	for name, h := range handlers {
		// Signed requests are new to each handler, and one is sent twice.
		signedOnce := *sign("msg_l3_"+strings.ReplaceAll(name, " ", "_"), acme)
		for _, r := range append(requests, signedOnce, signedOnce) {
			logs.Reset()
			r.do(t, h)
			all.WriteString(logs.String())
			if lines := strings.Count(logs.String(), "\n"); lines != 1 {
				t.Errorf("%s: a request to %s logged %d lines, want 1: %s", name, r.path, lines, logs.String())
			}
			for _, p := range paths {
				if strings.Contains(logs.String(), p) {
					t.Errorf("%s: log line carries the path %s: %s", name, p, logs.String())
				}
			}
			if strings.Contains(logs.String(), `"level":"ERROR"`) && !strings.Contains(logs.String(), `"error":`) {
				t.Errorf("%s: an error line without the error: %s", name, logs.String())
			}
		}
		e.drain(t)
	}
	for _, p := range paths {
		if strings.Contains(emf.String(), p) {
			t.Errorf("metrics carry the path %s", p)
		}
	}
	// The failures did happen, each logged with its error: the broken
	// item's, which quoted its key, with the path taken out.
	for _, want := range []string{
		`"reason":"unknown_path"`, `"reason":"instance_mismatch"`, `"reason":"bad_webhook_id"`, `"outcome":"duplicate"`,
		"decode PATH#<path>", "get gateway", "127.0.0.1:1", "remember webhook message", "forget webhook message", "SendMessage",
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no log line has %s", want)
		}
	}
}
