package writer_test

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/internal/queue"
)

// BenchmarkBatch applies a batch of 10 succeeded results (a public
// comment and a resolve each) to 10 incidents, and reports the ServiceNow
// requests each result costs.
func BenchmarkBatch(b *testing.B) {
	e := newEnv(b)
	before := 0
	for _, n := range e.sim.Stats().Requests {
		before += n
	}
	results := 0
	for b.Loop() {
		b.StopTimer()
		var msgs []events.SQSMessage
		for range 10 {
			_, jobID := e.openJob("incident", incident())
			msgs = append(msgs, resultMessage(result(jobID, queue.ResultSucceeded)))
		}
		b.StartTimer()
		if failed := e.invoke(msgs...); len(failed) != 0 {
			b.Fatalf("batch failures %v", failed)
		}
		results += len(msgs)
	}
	after := 0
	for _, n := range e.sim.Stats().Requests {
		after += n
	}
	// openJob reads each record once.
	b.ReportMetric(float64(after-before-results)/float64(results), "snow-requests/result")
}
