package localrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/queue"
)

func TestMain(m *testing.M) {
	if awstest.Kind() == awstest.Kumo {
		// kumo's HTTP API calls Lambda back at KUMO_HOST:KUMO_PORT, read at
		// package initialisation: this re-executes the test binary with them.
		if err := localrun.ExecWithSelfAddr(0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	awstest.Main(m)
}

var (
	emuOnce sync.Once
	emu     *localrun.Emulator
	emuErr  error
)

// rig is what every subtest shares: the emulator at its self-call address,
// clients, and the test function's bootstrap.
type rig struct {
	cfg       aws.Config
	emu       *localrun.Emulator
	lambda    *lambda.Client
	sqs       *sqs.Client
	bootstrap string
	logs      *localrun.Logs
	log       *slog.Logger
}

func newRig(t testing.TB) *rig {
	t.Helper()
	if awstest.Kind() != awstest.Kumo {
		t.Skip("the local runtime needs kumo's Lambda Runtime API and HTTP API")
	}
	url := awstest.URL(t)
	emuOnce.Do(func() { emu, emuErr = localrun.ServeEmulator(url) })
	if emuErr != nil {
		t.Fatalf("serve emulator: %v", emuErr)
	}
	cfg, err := awsconfig.Load(t.Context(), awsconfig.Options{Endpoint: emu.URL, StaticCredentials: true})
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-o", bootstrap, "./testdata/echofn")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test function: %v\n%s", err, out)
	}
	logs := localrun.NewLogs(testWriter{t}, true)
	return &rig{
		cfg: cfg, emu: emu, bootstrap: bootstrap, logs: logs,
		lambda: lambda.NewFromConfig(cfg),
		sqs:    sqs.NewFromConfig(cfg),
		log:    slog.New(slog.NewJSONHandler(logs.Writer("localrun"), nil)),
	}
}

// testWriter shows the functions' logs in the test output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start registers a fresh function and runs its bootstrap until the test
// ends; it returns once the bootstrap is polling for work.
func (r *rig) start(t testing.TB, env map[string]string) localrun.Function {
	t.Helper()
	return r.startFn(t, localrun.Function{
		Name:      awstest.UniqueName("echo-"),
		Bootstrap: r.bootstrap,
		Timeout:   3 * time.Second,
		Env:       env,
	})
}

// startFn is start for a function of the test's own making.
func (r *rig) startFn(t testing.TB, fn localrun.Function) localrun.Function {
	t.Helper()
	if _, err := localrun.Register(t.Context(), r.lambda, fn); err != nil {
		t.Fatalf("Register: %v", err)
	}
	sup := &localrun.Supervisor{
		Emulator: r.emu, Region: r.cfg.Region, Logs: r.logs, Log: r.log,
		Backoff: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Supervisor.Run: %v", err)
		}
	})
	wait, cancelWait := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelWait()
	if err := r.emu.WaitPolling(wait, fn.Name); err != nil {
		t.Fatal(err)
	}
	return fn
}

func (r *rig) invoke(t *testing.T, fn, payload string) (string, string) {
	t.Helper()
	out, err := r.lambda.Invoke(t.Context(), &lambda.InvokeInput{
		FunctionName: aws.String(fn), Payload: []byte(payload),
	})
	if err != nil {
		t.Fatalf("Invoke(%s, %s): %v", fn, payload, err)
	}
	return string(out.Payload), aws.ToString(out.FunctionError)
}

// queue creates a queue for this test; with maxReceive > 0 it gets a
// dead-letter queue, whose URL is returned too.
func (r *rig) queue(t *testing.T, visibility time.Duration, maxReceive int) (url, dlqURL string) {
	t.Helper()
	name := awstest.UniqueName("q")
	attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(int(visibility / time.Second))}
	if maxReceive > 0 {
		dlq, err := r.sqs.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
		if err != nil {
			t.Fatalf("create DLQ: %v", err)
		}
		dlqURL = aws.ToString(dlq.QueueUrl)
		a, err := r.sqs.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
			QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			t.Fatalf("DLQ ARN: %v", err)
		}
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`,
			a.Attributes["QueueArn"], maxReceive)
	}
	q, err := r.sqs.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return aws.ToString(q.QueueUrl), dlqURL
}

// drain receives until the queue has stayed empty for quiet, or until
// timeout, and returns the bodies it got (deleting them).
func (r *rig) drain(t *testing.T, url string, want int, timeout time.Duration) []string {
	t.Helper()
	var bodies []string
	deadline := time.Now().Add(timeout)
	for len(bodies) < want && time.Now().Before(deadline) {
		out, err := r.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			if _, err := r.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{
				QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle,
			}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
	}
	return bodies
}

// BenchmarkHTTPRoute measures one webhook-sized POST through the front, the
// emulator's HTTP API and Runtime API to a bootstrap and back: the local
// overhead around a function.
func BenchmarkHTTPRoute(b *testing.B) {
	r := newRig(b)
	r.logs = localrun.NewLogs(io.Discard, false)
	fn := r.start(b, nil)
	arn, err := localrun.Register(b.Context(), r.lambda, fn)
	if err != nil {
		b.Fatal(err)
	}
	apiID, err := localrun.CreateHTTPAPI(b.Context(), apigatewayv2.NewFromConfig(r.cfg), fn.Name, localrun.IngestRoute, arn)
	if err != nil {
		b.Fatal(err)
	}
	front, err := localrun.StartFront("", r.emu.URL, apiID)
	if err != nil {
		b.Fatal(err)
	}
	defer front.Close()
	url := front.URL + "/api/webhooks/ingest/0123456789abcdef01234567"
	body := `{"sys_id":"9d385017c611228701d22104cc95c371","table":"incident"}`
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func TestRuntime(t *testing.T) {
	r := newRig(t)

	t.Run("invoke reaches the bootstrap through the runtime API", func(t *testing.T) {
		fn := r.start(t, nil)
		got, fnErr := r.invoke(t, fn.Name, `{"action":"pid"}`)
		if fnErr != "" {
			t.Fatalf("Invoke: function error %s: %s", fnErr, got)
		}
		if _, err := strconv.Atoi(got); err != nil {
			t.Errorf("Invoke(pid) = %q, want a process id", got)
		}
	})

	t.Run("a crashed bootstrap is restarted", func(t *testing.T) {
		fn := r.start(t, nil)
		before, _ := r.invoke(t, fn.Name, `{"action":"pid"}`)
		if _, fnErr := r.invoke(t, fn.Name, `{"action":"crash"}`); fnErr == "" {
			t.Errorf("Invoke(crash): no function error, want one")
		}
		after, fnErr := r.invoke(t, fn.Name, `{"action":"pid"}`)
		if fnErr != "" {
			t.Fatalf("Invoke(pid) after crash: function error %s: %s", fnErr, after)
		}
		if after == before {
			t.Errorf("process id after crash = %s, want a new process (was %s)", after, before)
		}
	})

	t.Run("the HTTP API route delivers a v2 event", func(t *testing.T) {
		fn := r.start(t, nil)
		arn, err := localrun.Register(t.Context(), r.lambda, fn)
		if err != nil {
			t.Fatal(err)
		}
		apiID, err := localrun.CreateHTTPAPI(t.Context(), apigatewayv2.NewFromConfig(r.cfg), fn.Name, localrun.IngestRoute, arn)
		if err != nil {
			t.Fatal(err)
		}
		front, err := localrun.StartFront("127.0.0.1:0", r.emu.URL, apiID)
		if err != nil {
			t.Fatal(err)
		}
		defer front.Close()

		body := `{"sys_id":"9d385017c611228701d22104cc95c371"}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost,
			front.URL+"/api/webhooks/ingest/0123456789abcdef01234567?x=1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhook-Secret", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST ingest route: status %d, want 202: %s", resp.StatusCode, raw)
		}
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("decode echoed event: %v\n%s", err, raw)
		}
		type shape struct {
			Version, RouteKey, RawPath, RawQuery, Method, Body, APIID, Stage string
			PathParams                                                       map[string]string
			Secret                                                           string
		}
		got := shape{
			Version: ev.Version, RouteKey: ev.RouteKey, RawPath: ev.RawPath, RawQuery: ev.RawQueryString,
			Method: ev.RequestContext.HTTP.Method, Body: ev.Body, APIID: ev.RequestContext.APIID,
			Stage: ev.RequestContext.Stage, PathParams: ev.PathParameters,
			Secret: header(ev.Headers, "x-webhook-secret"),
		}
		want := shape{
			Version: "2.0", RouteKey: localrun.IngestRoute, RawPath: "/api/webhooks/ingest/0123456789abcdef01234567",
			RawQuery: "x=1", Method: "POST", Body: body, APIID: apiID, Stage: "$default",
			PathParams: map[string]string{"path": "0123456789abcdef01234567"},
			Secret:     "s3cret",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("v2 event (-want +got):\n%s", diff)
		}
		if ev.IsBase64Encoded {
			t.Errorf("isBase64Encoded = true for a JSON body, want false")
		}
	})

	t.Run("the SQS event source deletes successes and leaves failures to the DLQ", func(t *testing.T) {
		seen, _ := r.queue(t, 30*time.Second, 0)
		intake, dlq := r.queue(t, time.Second, 2)
		fn := r.start(t, map[string]string{"ECHO_SEEN_QUEUE": seen})
		src := &localrun.SQSSource{
			SQS: r.sqs, Lambda: r.lambda, Log: r.log,
			QueueURL: intake, Function: fn.Name, Region: r.cfg.Region,
			Window: 200 * time.Millisecond, WaitTime: time.Second,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("SQSSource.Run: %v", err)
			}
		}()

		for _, body := range []string{"ok-1", "fail-1", "ok-2"} {
			if _, err := r.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{
				QueueUrl: aws.String(intake), MessageBody: aws.String(body),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					queue.AttrSource: {DataType: aws.String("String"), StringValue: aws.String(queue.SourceWebhook)},
				},
			}); err != nil {
				t.Fatal(err)
			}
		}
		dead := r.drain(t, dlq, 1, 30*time.Second)
		if diff := cmp.Diff([]string{"fail-1"}, dead); diff != "" {
			t.Errorf("dead-letter queue (-want +got):\n%s", diff)
		}

		// Every delivery the function saw: ok-1 and ok-2 once, fail-1 twice
		// (maxReceiveCount), each in the shape Lambda sends.
		counts := map[string]int{}
		for _, raw := range r.drain(t, seen, 4, 10*time.Second) {
			var rec events.SQSMessage
			if err := json.Unmarshal([]byte(raw), &rec); err != nil {
				t.Fatalf("decode record: %v\n%s", err, raw)
			}
			counts[rec.Body]++
			checkRecord(t, raw, rec, intake)
		}
		if diff := cmp.Diff(map[string]int{"ok-1": 1, "ok-2": 1, "fail-1": 2}, counts); diff != "" {
			t.Errorf("deliveries per message (-want +got):\n%s", diff)
		}
		if left := r.drain(t, intake, 1, 2*time.Second); len(left) != 0 {
			t.Errorf("intake queue still holds %q, want empty", left)
		}
	})

	t.Run("without a batching window, a long poll hands a message over on arrival", func(t *testing.T) {
		seen, _ := r.queue(t, 30*time.Second, 0)
		intake, _ := r.queue(t, 30*time.Second, 0)
		fn := r.start(t, map[string]string{"ECHO_SEEN_QUEUE": seen})
		// Long polls of 20 s, as Lambda's: a message is delivered within the
		// drain's 10 s only if a receive answers as soon as it is there.
		src := &localrun.SQSSource{
			SQS: r.sqs, Lambda: r.lambda, Log: r.log,
			QueueURL: intake, Function: fn.Name, Region: r.cfg.Region,
			Window: 0, WaitTime: 20 * time.Second, Concurrency: 2,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("SQSSource.Run: %v", err)
			}
		}()
		// The pollers are waiting in their long polls by then.
		time.Sleep(500 * time.Millisecond)
		for i, body := range []string{"first", "second"} {
			if _, err := r.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{
				QueueUrl: aws.String(intake), MessageBody: aws.String(body),
			}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, raw := range r.drain(t, seen, 1, 10*time.Second) {
				var rec events.SQSMessage
				if err := json.Unmarshal([]byte(raw), &rec); err != nil {
					t.Fatalf("decode record: %v\n%s", err, raw)
				}
				got = append(got, rec.Body)
			}
			if diff := cmp.Diff([]string{body}, got); diff != "" {
				t.Fatalf("message %d: deliveries within 10 s of a 20 s long poll (-want +got):\n%s", i+1, diff)
			}
		}
		if left := r.drain(t, intake, 1, 2*time.Second); len(left) != 0 {
			t.Errorf("intake queue still holds %q, want empty", left)
		}
	})

	t.Run("the schedule fires at its interval with a scheduled event", func(t *testing.T) {
		seen, _ := r.queue(t, 30*time.Second, 0)
		fn := r.start(t, map[string]string{"ECHO_SEEN_QUEUE": seen})
		s := &localrun.Schedule{
			Lambda: r.lambda, Log: r.log, Function: fn.Name,
			Rule: "reconcile", Region: r.cfg.Region, Interval: 300 * time.Millisecond,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		fired := r.drain(t, seen, 2, 15*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Schedule.Run: %v", err)
		}
		if len(fired) < 2 {
			t.Fatalf("schedule fired %d times in 15s, want at least 2", len(fired))
		}
		var ev events.EventBridgeEvent
		if err := json.Unmarshal([]byte(fired[0]), &ev); err != nil {
			t.Fatalf("decode scheduled event: %v\n%s", err, fired[0])
		}
		type shape struct {
			Version, DetailType, Source, Account, Region, Detail string
			Resources                                            []string
		}
		got := shape{ev.Version, ev.DetailType, ev.Source, ev.AccountID, ev.Region, string(ev.Detail), ev.Resources}
		want := shape{"0", "Scheduled Event", "aws.events", "000000000000", r.cfg.Region, "{}",
			[]string{"arn:aws:events:" + r.cfg.Region + ":000000000000:rule/reconcile"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("scheduled event (-want +got):\n%s", diff)
		}
		if ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("scheduled event id %q, time %v: want both set", ev.ID, ev.Time)
		}
	})
}

// checkRecord checks one delivered record against what Lambda sends.
func checkRecord(t *testing.T, raw string, rec events.SQSMessage, queueURL string) {
	t.Helper()
	if rec.EventSource != "aws:sqs" || !strings.HasSuffix(rec.EventSourceARN, ":"+queueURL[strings.LastIndex(queueURL, "/")+1:]) {
		t.Errorf("record source %q %q, want aws:sqs and the queue's ARN", rec.EventSource, rec.EventSourceARN)
	}
	if rec.MessageId == "" || rec.ReceiptHandle == "" || rec.Md5OfBody == "" || rec.AWSRegion == "" {
		t.Errorf("record misses messageId, receiptHandle, md5OfBody or awsRegion: %s", raw)
	}
	for _, a := range []string{"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"} {
		if rec.Attributes[a] == "" {
			t.Errorf("record attribute %s missing: %s", a, raw)
		}
	}
	src := rec.MessageAttributes[queue.AttrSource]
	if aws.ToString(src.StringValue) != queue.SourceWebhook || src.DataType != "String" {
		t.Errorf("record messageAttributes.source = %+v, want String %q", src, queue.SourceWebhook)
	}
}

// header looks a header up the way API Gateway presents them: lower case.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
