// Command echofn is the tests' Lambda function: it shows what the local
// runtime delivers. HTTP API events come back as the response body; SQS
// records and scheduled events are forwarded to the queue in ECHO_SEEN_QUEUE
// (SQS records whose body starts with "fail" are reported as failed); an
// {"action":"pid"} event returns the process id and {"action":"crash"} exits.
//
// A rendezvous shows invocations running at once: {"action":"rendezvous",
// "round":"r1","n":2}, an SQS record with body "rendezvous:r1:2" or an HTTP
// API request with that body marks its arrival in ECHO_RENDEZVOUS_DIR/r1 and
// waits until n invocations have arrived there, or until shortly before its
// deadline. The result, {"pid":...,"met":true} when all n were there while it
// was still running, is returned (HTTP: as the body; SQS: forwarded instead
// of the record).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awsconfig"
)

type handler struct {
	sqs        *sqs.Client
	seen       string
	rendezvous string
}

// meeting is a rendezvous's result.
type meeting struct {
	PID int  `json:"pid"`
	Met bool `json:"met"`
}

func main() {
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf(`{"level":"INFO","msg":"echofn cold start","pid":%d}`+"\n", os.Getpid())
	h := &handler{sqs: sqs.NewFromConfig(cfg), seen: os.Getenv("ECHO_SEEN_QUEUE"), rendezvous: os.Getenv("ECHO_RENDEZVOUS_DIR")}
	lambda.Start(h.handle)
}

func (h *handler) handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		RouteKey   string            `json:"routeKey"`
		Records    []json.RawMessage `json:"Records"`
		DetailType string            `json:"detail-type"`
		Action     string            `json:"action"`
		Round      string            `json:"round"`
		N          int               `json:"n"`
		Body       string            `json:"body"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	switch {
	case probe.RouteKey != "" && strings.HasPrefix(probe.Body, "rendezvous:"):
		m, err := h.meet(ctx, probe.Body)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(m)
		return events.APIGatewayV2HTTPResponse{StatusCode: 202, Body: string(b)}, nil
	case probe.RouteKey != "":
		return events.APIGatewayV2HTTPResponse{
			StatusCode: 202,
			Headers:    map[string]string{"Content-Type": "application/json"},
			Body:       string(raw),
		}, nil
	case probe.Records != nil:
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode SQS event: %w", err)
		}
		var resp events.SQSEventResponse
		for i, rec := range ev.Records {
			fwd := probe.Records[i]
			if strings.HasPrefix(rec.Body, "rendezvous:") {
				m, err := h.meet(ctx, rec.Body)
				if err != nil {
					return nil, err
				}
				fwd, _ = json.Marshal(m)
			}
			if err := h.forward(ctx, fwd); err != nil {
				return nil, err
			}
			if strings.HasPrefix(rec.Body, "fail") {
				resp.BatchItemFailures = append(resp.BatchItemFailures,
					events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			}
		}
		return resp, nil
	case probe.DetailType != "":
		return nil, h.forward(ctx, raw)
	case probe.Action == "rendezvous":
		return h.meet(ctx, fmt.Sprintf("rendezvous:%s:%d", probe.Round, probe.N))
	case probe.Action == "pid":
		return os.Getpid(), nil
	case probe.Action == "crash":
		os.Exit(3)
	}
	return nil, fmt.Errorf("unknown event %s", raw)
}

func (h *handler) forward(ctx context.Context, raw json.RawMessage) error {
	_, err := h.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(h.seen), MessageBody: aws.String(string(raw)),
	})
	if err != nil {
		return fmt.Errorf("forward to %s: %w", h.seen, err)
	}
	return nil
}

// meet joins the rendezvous "rendezvous:<round>:<n>": it marks this
// invocation's arrival with a file of its own and waits for n arrivals.
func (h *handler) meet(ctx context.Context, spec string) (meeting, error) {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return meeting{}, fmt.Errorf("bad rendezvous %q", spec)
	}
	round, n := parts[1], 0
	if _, err := fmt.Sscan(parts[2], &n); err != nil || round == "" || h.rendezvous == "" {
		return meeting{}, fmt.Errorf("bad rendezvous %q (dir %q)", spec, h.rendezvous)
	}
	dir := filepath.Join(h.rendezvous, round)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return meeting{}, err
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("pid%d-", os.Getpid()))
	if err != nil {
		return meeting{}, err
	}
	f.Close()
	// Give up shortly before the function would time out, so a lone
	// invocation still answers (met false) instead of timing out.
	until := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		until = d.Add(-300 * time.Millisecond)
	}
	m := meeting{PID: os.Getpid()}
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return meeting{}, err
		}
		if len(entries) >= n {
			m.Met = true
			return m, nil
		}
		if time.Now().After(until) {
			return m, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}
