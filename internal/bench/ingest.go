package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// Target is one way of accepting a webhook whose throughput and latency
// are measured.
type Target struct {
	Key  string // short label in the table: "a", "b", …
	Name string
	How  string
	Do   func(ctx context.Context) error
}

// ingestRig is a webhook registered on the emulator, an ingest function
// running on its Runtime API behind its HTTP API, and the baselines.
type ingestRig struct {
	Targets []Target
	purge   func(context.Context) error
	closers []func()
}

func (ir *ingestRig) Close() {
	for i := len(ir.closers) - 1; i >= 0; i-- {
		ir.closers[i]()
	}
}

// maxConns is more than the most clients, so no run pays for reconnecting.
const maxConns = 256

func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: maxConns, MaxIdleConnsPerHost: maxConns, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}, Timeout: 30 * time.Second}
}

// sdkConfig is cfg pointed at endpoint with a connection pool as large as
// the clients: the SDK's default keeps 10 idle connections per host, and
// 64 clients would spend their time reconnecting.
func sdkConfig(cfg aws.Config, endpoint string) aws.Config {
	c := cfg.Copy()
	c.BaseEndpoint = aws.String(endpoint)
	c.HTTPClient = awsconfig.HTTPClient(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = maxConns, maxConns
	})
	return c
}

// SetupIngest registers a gateway and a webhook (static secret) in fresh
// tables, starts the ingest function as make dev does (host build on the
// Runtime API, HTTP API, loopback front) and the baselines next to it. All
// of them put their messages on one intake queue that nothing consumes,
// purged between runs.
func (r *Rig) SetupIngest(ctx context.Context) (*ingestRig, error) {
	ir := &ingestRig{}
	ok := false
	defer func() {
		if !ok {
			ir.Close()
		}
	}()
	res, err := provision.Create(ctx, r.Cfg, "bench-http-")
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	path, secret, err := registerWebhook(ctx, r.Cfg, res.RegistryTable, "http://127.0.0.1:1")
	if err != nil {
		return nil, err
	}
	body := []byte(`{"sys_id":"` + snowsim.NewSysID() + `","table":"incident","number":"INC0010001","sys_mod_count":"4","operation":"update"}`)

	// (d) make dev's route: front → emulator HTTP API → Runtime API → bootstrap.
	fn := localrun.Function{
		Name: "bench-ingest", Bootstrap: r.Bootstrap(localrun.Ingest), Timeout: 10 * time.Second, MemoryMB: 256,
		Env: map[string]string{schema.EnvRegistryTable: res.RegistryTable, schema.EnvIntakeQueueURL: res.IntakeQueueURL,
			schema.EnvStateTable: res.StateTable},
	}
	lc := lambda.NewFromConfig(sdkConfig(r.Cfg, r.Emu.URL))
	arn, err := localrun.Register(ctx, lc, fn)
	if err != nil {
		return nil, err
	}
	fnCtx, stopFn := context.WithCancel(context.Background())
	done := make(chan struct{})
	sup := &localrun.Supervisor{Emulator: r.Emu, Region: r.Cfg.Region, Logs: r.Logs, Log: r.Log}
	go func() {
		defer close(done)
		if err := sup.Run(fnCtx, fn); err != nil {
			r.Log.Error("ingest function stopped", "error", err)
		}
	}()
	ir.closers = append(ir.closers, func() { stopFn(); <-done })
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.Emu.WaitPolling(wait, fn.Name); err != nil {
		return nil, err
	}
	apiID, err := localrun.CreateHTTPAPI(ctx, apigatewayv2.NewFromConfig(r.Cfg), "bench-api", localrun.IngestRoute, arn)
	if err != nil {
		return nil, err
	}
	front, err := localrun.StartFront("", r.Emu.URL, apiID)
	if err != nil {
		return nil, err
	}
	ir.closers = append(ir.closers, front.Close)

	// (a) the HTTP ceiling: read the body, answer 202.
	bare, bareURL, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	if err != nil {
		return nil, err
	}
	ir.closers = append(ir.closers, func() { _ = bare.Close() })

	// (b) the queue ceiling, on the emulator directly and through make
	// dev's address (the proxy the functions use).
	direct := sdkConfig(r.Cfg, r.KumoURL)
	sqsDirect, sqsProxied := sqs.NewFromConfig(direct), sqs.NewFromConfig(sdkConfig(r.Cfg, r.Emu.URL))
	msg := string(mustJSON(queue.IntakeMessage{Source: queue.SourceWebhook, GatewayID: "gtw_bench", WebhookID: "whk_bench",
		Table: registry.TableIncident, SysID: snowsim.NewSysID(), RequestID: uuid.NewString()}))
	send := func(c *sqs.Client) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(res.IntakeQueueURL), MessageBody: aws.String(msg)})
			return err
		}
	}

	// (c) the handler in this process behind net/http, on the same
	// emulator and with the same client settings as (b).
	h := ingest.New(
		registry.New(dynamodb.NewFromConfig(direct), res.RegistryTable),
		secrets.New(secretsmanager.NewFromConfig(direct)),
		queue.NewSender(sqsDirect, res.IntakeQueueURL),
		ingest.Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))},
	)
	mux := http.NewServeMux()
	mux.Handle("POST "+ingest.PathPrefix+"{path}", h)
	inproc, inprocURL, err := serveLoopback(mux)
	if err != nil {
		return nil, err
	}
	ir.closers = append(ir.closers, func() { _ = inproc.Close() })

	// (e) the function invoked directly, without the HTTP API.
	event := mustJSON(events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: localrun.IngestRoute, RawPath: ingest.PathPrefix + path,
		Headers:        map[string]string{"content-type": "application/json", "x-webhook-secret": secret},
		PathParameters: map[string]string{"path": path},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: localrun.IngestRoute, Stage: "$default", RequestID: "bench",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodPost, Path: ingest.PathPrefix + path, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1"},
		},
		Body: string(body),
	})
	invoke := func(ctx context.Context) error {
		out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn.Name), Payload: event})
		if err != nil {
			return err
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out.Payload, &resp); err != nil || resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("invoke: status %d, error %v: %s", resp.StatusCode, err, out.Payload)
		}
		return nil
	}

	client := httpClient()
	post := func(url string) func(ctx context.Context) error {
		return func(ctx context.Context) error { return postWebhook(ctx, client, url, secret, body) }
	}
	ir.Targets = []Target{
		{"a", "bare net/http server", "reads the body, answers 202; the HTTP ceiling of this machine", post(bareURL + ingest.PathPrefix + path)},
		{"b", "bare SendMessage", "the intake message, to the emulator in this process; the queue ceiling", send(sqsDirect)},
		{"b′", "SendMessage via make dev's emulator address", "as (b) through the proxy the functions use", send(sqsProxied)},
		{"c", "ingest handler on net/http, in process", "the real handler (route cache, secret check, JSON log line) sending to the emulator as (b)", post(inprocURL + ingest.PathPrefix + path)},
		{"e", "ingest function, Lambda Invoke", "an API Gateway v2 event through the emulator's Invoke and Runtime API to the bootstrap process", invoke},
		{"d", "make dev route", "front → emulator HTTP API → Runtime API → ingest bootstrap process → SendMessage", post(localrun.IngestURL(front.URL, path))},
	}
	ir.purge = func(ctx context.Context) error {
		_, err := sqsDirect.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(res.IntakeQueueURL)})
		return err
	}
	ok = true
	return ir, nil
}

func postWebhook(ctx context.Context, c *http.Client, url, secret string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ingest.HeaderSecret, secret)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// registerWebhook creates an active gateway for instanceURL and an incident
// webhook with a static secret, as the CLI does; it returns the webhook's
// path and secret.
func registerWebhook(ctx context.Context, cfg aws.Config, table, instanceURL string) (path, secret string, err error) {
	ops := registration.New(registry.New(dynamodb.NewFromConfig(cfg), table), secrets.New(secretsmanager.NewFromConfig(cfg)),
		registration.WithSecretPrefix(schema.DefaultSecretPrefix))
	gw, err := ops.CreateGateway(ctx, registration.GatewayInput{
		Name: "bench", InstanceURL: instanceURL, Auth: registry.AuthBasic, Username: "bench", Password: "bench",
		DedupWindowMinutes: -1, Active: true,
	})
	if err != nil {
		return "", "", fmt.Errorf("create gateway: %w", err)
	}
	made, err := ops.CreateWebhook(ctx, registration.WebhookInput{
		Name: "bench", SourceType: registry.SourceServiceNow, EventType: registry.TableIncident,
		GatewayID: gw.ID, Signing: registry.SigningSecret,
	})
	if err != nil {
		return "", "", fmt.Errorf("create webhook: %w", err)
	}
	return made.Webhook.Path, made.Secret, nil
}

func serveLoopback(h http.Handler) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("benchmark server stopped", "error", err)
		}
	}()
	return srv, "http://" + l.Addr().String(), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed, encodable values are passed
	}
	return b
}
