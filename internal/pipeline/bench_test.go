package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// countingTransport counts DynamoDB requests, for the calls-per-message
// figure (a measurement, never an assertion).
type countingTransport struct {
	next  http.RoundTripper
	calls atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_") {
		c.calls.Add(1)
	}
	return c.next.RoundTrip(r)
}

// BenchmarkBatch processes batches of 10 new incidents with the simulator
// answering every call after 50 ms, the gateway's budget allowing
// concurrency requests in flight and far more an hour than it needs. ns/op
// is one batch; ddb-calls/msg counts the budget's writes too.
func BenchmarkBatch(b *testing.B) {
	for _, bc := range []struct {
		concurrency int
		writeBack   bool
	}{{5, false}, {10, false}, {10, true}} {
		b.Run(fmt.Sprintf("concurrency=%d/write-back=%v", bc.concurrency, bc.writeBack), func(b *testing.B) {
			e := newEnv(b, pipeline.Config{})
			e.setGateway(registry.Gateway{Name: "ops", Active: true, WriteBack: bc.writeBack, DedupWindowMinutes: -1,
				RateLimitPerHour: testRatePerHour, MaxConcurrency: bc.concurrency})
			counter := &countingTransport{next: http.DefaultTransport}
			cfg := awstest.Config(b)
			cfg.HTTPClient = &http.Client{Transport: counter}
			deps := e.deps
			deps.Tickets = state.New(dynamodb.NewFromConfig(cfg), e.res.StateTable)
			deps.Gateways = registry.New(dynamodb.NewFromConfig(cfg), e.res.RegistryTable)
			deps.ServiceNow = pipeline.Connections{Pool: connect.New(connect.Config{
				Secrets: e.secrets, Budget: budget.New(dynamodb.NewFromConfig(cfg), e.res.StateTable, budget.Options{}),
			})}
			p := pipeline.New(deps, pipeline.Config{Logger: e.cfg.Logger})
			e.sim.Sim.SetFaults(snowsim.Faults{Latency: 50 * time.Millisecond})
			ctx := context.Background()
			batch := func() []events.SQSMessage {
				msgs := make([]events.SQSMessage, 10)
				for i := range msgs {
					msgs[i] = message(e.gw, "incident", e.insert("incident", incident(fmt.Sprint("bench ", i))))
				}
				return msgs
			}
			// Warm up: credentials, client, gateway cache.
			p.Handle(ctx, events.SQSEvent{Records: batch()})
			counter.calls.Store(0)
			var msgs int64
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				ev := events.SQSEvent{Records: batch()}
				b.StartTimer()
				resp, _ := p.Handle(ctx, ev)
				if len(resp.BatchItemFailures) != 0 {
					b.Fatalf("failures: %v\n%s", resp.BatchItemFailures, e.logs.String())
				}
				msgs += int64(len(ev.Records))
			}
			b.StopTimer()
			b.ReportMetric(float64(counter.calls.Load())/float64(msgs), "ddb-calls/msg")
			e.jobs()
		})
	}
}
