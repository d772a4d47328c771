package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

// The fuzz test and the benchmarks run millions of requests, so they use
// in-memory implementations of the handler's own small interfaces (not of
// the AWS SDK); the emulator tests cover the real stores, and
// BenchmarkReplay puts its markers on the emulator.

type memRoutes map[string]registry.Route

func (m memRoutes) Route(_ context.Context, path string) (registry.Route, error) {
	r, ok := m[path]
	if !ok {
		return registry.Route{}, registry.ErrNotFound
	}
	return r, nil
}

// Gateway is the one gateway of the fixtures, on the instance acme.
func (m memRoutes) Gateway(_ context.Context, id string) (registry.Gateway, error) {
	if id != gatewayID {
		return registry.Gateway{}, registry.ErrNotFound
	}
	return registry.Gateway{ID: gatewayID, Active: true, InstanceURL: instanceURL}, nil
}

// memReplays remembers messages forever: a fuzz run or a benchmark stays
// within one timestamp window.
type memReplays struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memReplays) Remember(_ context.Context, webhookID, messageID string, _, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	k := webhookID + "#" + messageID
	if m.seen[k] {
		return false, nil
	}
	m.seen[k] = true
	return true, nil
}

func (m *memReplays) Forget(_ context.Context, webhookID, messageID string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, webhookID+"#"+messageID)
	return nil
}

type memSecrets map[string]string

func (m memSecrets) Get(_ context.Context, arn string) (string, error) {
	v, ok := m[arn]
	if !ok {
		return "", secrets.ErrNotFound
	}
	return v, nil
}

// sink keeps the encoded messages, encoding them as the SQS sender does.
type sink struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (s *sink) Send(_ context.Context, m queue.IntakeMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, b)
	s.mu.Unlock()
	return nil
}

// discardSink encodes and drops, so a benchmark does not grow a slice.
type discardSink struct{}

func (discardSink) Send(_ context.Context, m queue.IntakeMessage) error {
	_, err := json.Marshal(m)
	return err
}

const keyARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:snowgate/key"

func memRoutesFixture() memRoutes {
	return memRoutes{
		secretPath: {Path: secretPath, WebhookID: webhookID, GatewayID: gatewayID, Table: registry.TableIncident,
			Active: true, Signing: registry.SigningSecret, SecretHashes: []registry.SecretHash{
				{SHA256: webhook.HashSecret(testSecret)},
				{SHA256: webhook.HashSecret(prevSecret), Expires: now.Add(time.Hour)},
			}},
		hmacPath: {Path: hmacPath, WebhookID: hmacWebhook, GatewayID: gatewayID, Table: registry.TableChangeRequest,
			Active: true, Signing: registry.SigningHMAC, SigningKeys: []registry.SigningKeyRef{{SecretARN: keyARN}}},
		"a00000000000000000000001": {Path: "a00000000000000000000001", WebhookID: webhookID, GatewayID: gatewayID,
			Table: registry.TableIncident, Active: false, Signing: registry.SigningSecret,
			SecretHashes: []registry.SecretHash{{SHA256: webhook.HashSecret(testSecret)}}},
	}
}

// FuzzHandle: whatever the path, headers and body, the handler does not
// panic, answers with one of its statuses, gives every auth failure the same
// answer, accepts (and enqueues) only a request with a valid secret or
// signature from a rule on the gateway's instance (or one that names
// none), enqueues a signed message once, and answers its repeats 200.
func FuzzHandle(f *testing.F) {
	ts := strconv.FormatInt(now.Unix(), 10)
	key, _ := webhook.DecodeSigningKey(signingKey)
	f.Add(secretPath, contentJSON, testSecret, "", "", "", []byte(minimalBody))
	f.Add(secretPath, contentJSON, prevSecret, "", "", "", []byte(`{"sys_id":"`+validSysID+`","sys_mod_count":"3","table":"x"}`))
	f.Add(secretPath, contentJSON, "guess", "", "", "", []byte(minimalBody))
	f.Add(hmacPath, contentJSON, "", "msg_1", ts, webhook.Sign(key, "msg_1", ts, []byte(minimalBody)), []byte(minimalBody))
	f.Add(hmacPath, contentJSON, testSecret, "msg_1", ts, "v1,AAAA", []byte(minimalBody))
	f.Add("a00000000000000000000001", contentJSON, testSecret, "", "", "", []byte(minimalBody))
	f.Add("../"+secretPath, "text/plain", "", "", "", "", []byte("{}"))
	f.Add(secretPath, contentJSON+"; charset=utf-8", testSecret, "", "", "", []byte(`{"sys_id":1}`))
	f.Add(secretPath, contentJSON, testSecret, "", "", "", []byte(`{"sys_id":"`+validSysID+`","sys_mod_count":99999999999999999999}`))
	f.Add(secretPath, contentJSON, testSecret, "", "", "", []byte(withInstance("acme")))
	f.Add(secretPath, contentJSON, testSecret, "", "", "", []byte(withInstance("acmedev")))
	f.Add(secretPath, contentJSON, testSecret, "", "", "", []byte(`{"sys_id":"`+validSysID+`","instance_name":7}`))
	signedBody := withInstance("ACME")
	f.Add(hmacPath, contentJSON, "", "msg_2", ts, webhook.Sign(key, "msg_2", ts, []byte(signedBody)), []byte(signedBody))
	long := "msg_" + strings.Repeat("z", ingest.MaxMessageID)
	f.Add(hmacPath, contentJSON, "", long, ts, webhook.Sign(key, long, ts, []byte(minimalBody)), []byte(minimalBody))

	s := &sink{}
	h := ingest.New(memRoutesFixture(), memSecrets{keyARN: signingKey}, s, ingest.Options{
		Now:     func() time.Time { return now },
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Replays: &memReplays{},
	})
	validSecret := map[string]bool{testSecret: true, prevSecret: true}
	statuses := map[int]bool{200: true, 202: true, 400: true, 401: true, 413: true, 415: true}
	enqueuedIDs := map[string]bool{} // webhook-ids of signed messages enqueued

	f.Fuzz(func(t *testing.T, path, ct, secret, id, stamp, sig string, body []byte) {
		before := len(s.msgs)
		signedH := webhook.SignedHeaders{ID: id, Timestamp: stamp, Signature: sig}
		resp := h.Handle(context.Background(), ingest.Request{
			Method: http.MethodPost, Path: path, ContentType: ct, ContentLength: int64(len(body)),
			Secret: secret, Signed: signedH, Body: strings.NewReader(string(body)), RequestID: "fuzz",
		})
		if !statuses[resp.Status] {
			t.Fatalf("status %d not one the handler gives", resp.Status)
		}
		if resp.Status == http.StatusUnauthorized {
			want := ingest.Response{Status: 401, Header: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"error":"unauthorized"}`)}
			if diff := cmp.Diff(want, resp); diff != "" {
				t.Fatalf("401 differs from the one answer (-want +got):\n%s", diff)
			}
		}
		enqueued := len(s.msgs) - before
		if resp.Status == http.StatusOK {
			if path != hmacPath || !enqueuedIDs[id] || string(resp.Body) != `{"status":"duplicate"}` {
				t.Fatalf("200 %s for path %q id %q, which was not enqueued before", resp.Body, path, id)
			}
		}
		if resp.Status != http.StatusAccepted {
			if enqueued != 0 {
				t.Fatalf("status %d but %d messages enqueued", resp.Status, enqueued)
			}
			return
		}
		if enqueued != 1 {
			t.Fatalf("202 but %d messages enqueued", enqueued)
		}
		switch path {
		case secretPath:
			if !validSecret[secret] {
				t.Fatalf("accepted secret %q", secret)
			}
		case hmacPath:
			if webhook.VerifySignature([][]byte{key}, signedH, body, now, ingest.DefaultTolerance) != nil {
				t.Fatalf("accepted an invalid signature %+v", signedH)
			}
			if enqueuedIDs[id] || len(id) > ingest.MaxMessageID {
				t.Fatalf("enqueued webhook-id %q again, or one over the limit", id)
			}
			enqueuedIDs[id] = true
		default:
			t.Fatalf("accepted path %q", path)
		}
		var sent struct {
			Instance *string `json:"instance_name"`
		}
		if json.Unmarshal(body, &sent) != nil || (sent.Instance != nil && *sent.Instance != "" && !strings.EqualFold(*sent.Instance, "acme")) {
			t.Fatalf("accepted a body from another instance: %s", body)
		}
		var m queue.IntakeMessage
		if err := json.Unmarshal(s.msgs[len(s.msgs)-1], &m); err != nil {
			t.Fatalf("enqueued message: %v", err)
		}
		if !registry.ValidPath(path) || len(m.SysID) != 32 || strings.ToLower(m.SysID) != m.SysID || m.Source != queue.SourceWebhook {
			t.Fatalf("enqueued message %+v is not valid", m)
		}
	})
}

// BenchmarkHandle measures the handler's own work for an accepted webhook:
// cached route lookup, secret verification, bounded read, validation,
// message building and encoding, and the JSON log line. The queue send is
// an in-memory sink.
func BenchmarkHandle(b *testing.B) {
	ts := strconv.FormatInt(now.Unix(), 10)
	key, _ := webhook.DecodeSigningKey(signingKey)
	body := `{"sys_id":"` + validSysID + `","table":"incident","number":"INC0010001","sys_mod_count":"4","operation":"update","instance_name":"acme"}`
	cases := []struct {
		name   string
		path   string
		secret string
		signed webhook.SignedHeaders
	}{
		{"secret", secretPath, testSecret, webhook.SignedHeaders{}},
		{"hmac", hmacPath, "", webhook.SignedHeaders{ID: "msg_1", Timestamp: ts, Signature: webhook.Sign(key, "msg_1", ts, []byte(body))}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := ingest.New(memRoutesFixture(), memSecrets{keyARN: signingKey}, discardSink{}, ingest.Options{
				Now:      func() time.Time { return now },
				CacheTTL: time.Hour,
				Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
			})
			ctx := context.Background()
			r := strings.NewReader(body)
			req := ingest.Request{Method: http.MethodPost, Path: c.path, ContentType: contentJSON,
				ContentLength: int64(len(body)), Secret: c.secret, Signed: c.signed, RequestID: lambdaReqID}
			b.ReportAllocs()
			cpu0, n := cpuTime(), 0
			for b.Loop() {
				r.Reset(body)
				req.Body = r
				if resp := h.Handle(ctx, req); resp.Status != http.StatusAccepted {
					b.Fatalf("status %d: %s", resp.Status, resp.Body)
				}
				n++
			}
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkReplay measures what replay detection adds to a signed
// request: each iteration signs a new message id (so none is a repeat),
// with replay detection off and with the marker's conditional PutItem on
// the emulator's state table. The rest is in memory, as in BenchmarkHandle.
func BenchmarkReplay(b *testing.B) {
	key, _ := webhook.DecodeSigningKey(signingKey)
	body := withInstance("acme")
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, c := range []struct {
		name    string
		replays func() ingest.Replays
	}{
		{"off", func() ingest.Replays { return nil }},
		{"emulator", func() ingest.Replays {
			return replay.New(dynamodb.NewFromConfig(awstest.Config(b)), awstest.Resources(b).StateTable)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := ingest.New(memRoutesFixture(), memSecrets{keyARN: signingKey}, discardSink{}, ingest.Options{
				Now: func() time.Time { return now }, CacheTTL: time.Hour, Replays: c.replays(),
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			})
			ctx := context.Background()
			r := strings.NewReader(body)
			b.ReportAllocs()
			cpu0, n := cpuTime(), 0
			for b.Loop() {
				id := "msg_" + strconv.Itoa(n)
				r.Reset(body)
				req := ingest.Request{Method: http.MethodPost, Path: hmacPath, ContentType: contentJSON, ContentLength: int64(len(body)),
					Signed: webhook.SignedHeaders{ID: id, Timestamp: ts, Signature: webhook.Sign(key, id, ts, []byte(body))}, Body: r, RequestID: lambdaReqID}
				if resp := h.Handle(ctx, req); resp.Status != http.StatusAccepted {
					b.Fatalf("status %d: %s", resp.Status, resp.Body)
				}
				n++
			}
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
			}
		})
	}
}
