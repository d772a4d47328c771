// Command echofn is the tests' Lambda function: it shows what the local
// runtime delivers. HTTP API events come back as the response body; SQS
// records and scheduled events are forwarded to the queue in ECHO_SEEN_QUEUE
// (SQS records whose body starts with "fail" are reported as failed); an
// {"action":"pid"} event returns the process id and {"action":"crash"} exits.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awsconfig"
)

type handler struct {
	sqs  *sqs.Client
	seen string
}

func main() {
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf(`{"level":"INFO","msg":"echofn cold start","pid":%d}`+"\n", os.Getpid())
	h := &handler{sqs: sqs.NewFromConfig(cfg), seen: os.Getenv("ECHO_SEEN_QUEUE")}
	lambda.Start(h.handle)
}

func (h *handler) handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		RouteKey   string            `json:"routeKey"`
		Records    []json.RawMessage `json:"Records"`
		DetailType string            `json:"detail-type"`
		Action     string            `json:"action"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	switch {
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
			if err := h.forward(ctx, probe.Records[i]); err != nil {
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
