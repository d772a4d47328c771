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

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/webhook"
)

// The fuzz test and the benchmark run millions of requests, so they use
// in-memory implementations of the handler's own small interfaces (not of
// the AWS SDK); the emulator tests above cover the real stores.

type memRoutes map[string]registry.Route

func (m memRoutes) Route(_ context.Context, path string) (registry.Route, error) {
	r, ok := m[path]
	if !ok {
		return registry.Route{}, registry.ErrNotFound
	}
	return r, nil
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
// answer, and accepts (and enqueues) only a request with a valid secret or
// signature.
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

	s := &sink{}
	h := ingest.New(memRoutesFixture(), memSecrets{keyARN: signingKey}, s, ingest.Options{
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	validSecret := map[string]bool{testSecret: true, prevSecret: true}
	statuses := map[int]bool{202: true, 400: true, 401: true, 413: true, 415: true}

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
			if webhook.VerifySignature([][]byte{key}, signedH, body, now, webhook.DefaultTolerance) != nil {
				t.Fatalf("accepted an invalid signature %+v", signedH)
			}
		default:
			t.Fatalf("accepted path %q", path)
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
	body := `{"sys_id":"` + validSysID + `","table":"incident","number":"INC0010001","sys_mod_count":"4","operation":"update"}`
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
