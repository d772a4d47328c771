package localrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
)

// meeting is what the test function answers to a rendezvous: its process
// and whether every invocation of the rendezvous had arrived while it was
// still running.
type meeting struct {
	PID int  `json:"pid"`
	Met bool `json:"met"`
}

// together sums meetings up: how many met the others, in how many
// processes.
type together struct {
	Met, Processes int
}

func summarise(ms []meeting) (together, map[int]bool) {
	pids := map[int]bool{}
	var s together
	for _, m := range ms {
		if m.Met {
			s.Met++
		}
		pids[m.PID] = true
	}
	s.Processes = len(pids)
	return s, pids
}

// startEnvs runs a fresh test function in n execution environments, with
// a rendezvous directory of its own.
func (r *rig) startEnvs(t *testing.T, n int, env map[string]string) localrun.Function {
	t.Helper()
	all := map[string]string{"ECHO_RENDEZVOUS_DIR": t.TempDir()}
	for k, v := range env {
		all[k] = v
	}
	// Long enough for a second process to start under a loaded machine;
	// a rendezvous that never meets answers shortly before it.
	return r.startFn(t, localrun.Function{
		Name: awstest.UniqueName("echo-"), Bootstrap: r.bootstrap,
		Timeout: 5 * time.Second, Env: all, Environments: n,
	})
}

// concurrently runs call n times at once and returns the meetings.
func concurrently(t *testing.T, n int, call func() (meeting, error)) []meeting {
	t.Helper()
	ms := make([]meeting, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ms[i], errs[i] = call() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

func (r *rig) invokeMeeting(ctx context.Context, fn, round string, n int) (meeting, error) {
	out, err := r.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(fn),
		Payload:      fmt.Appendf(nil, `{"action":"rendezvous","round":%q,"n":%d}`, round, n),
	})
	if err != nil {
		return meeting{}, fmt.Errorf("invoke rendezvous: %w", err)
	}
	if out.FunctionError != nil {
		return meeting{}, fmt.Errorf("invoke rendezvous: function error %s: %s", aws.ToString(out.FunctionError), out.Payload)
	}
	var m meeting
	if err := json.Unmarshal(out.Payload, &m); err != nil {
		return meeting{}, fmt.Errorf("decode %s: %w", out.Payload, err)
	}
	return m, nil
}

func TestConcurrency(t *testing.T) {
	r := newRig(t)

	t.Run("invocations run at once in environments of their own", func(t *testing.T) {
		fn := r.startEnvs(t, 2, nil)
		ms := concurrently(t, 2, func() (meeting, error) { return r.invokeMeeting(t.Context(), fn.Name, "a", 2) })
		got, _ := summarise(ms)
		if diff := cmp.Diff(together{Met: 2, Processes: 2}, got); diff != "" {
			t.Errorf("two invocations of a function with two environments (-want +got):\n%s\nmeetings: %+v", diff, ms)
		}
	})

	t.Run("a crashed environment is restarted on its own", func(t *testing.T) {
		fn := r.startEnvs(t, 2, nil)
		before, pidsBefore := summarise(concurrently(t, 2, func() (meeting, error) {
			return r.invokeMeeting(t.Context(), fn.Name, "before", 2)
		}))
		if before.Processes != 2 {
			t.Fatalf("before the crash: %+v, want two processes", before)
		}
		if _, fnErr := r.invoke(t, fn.Name, `{"action":"crash"}`); fnErr == "" {
			t.Errorf("Invoke(crash): no function error, want one")
		}
		after, pidsAfter := summarise(concurrently(t, 2, func() (meeting, error) {
			return r.invokeMeeting(t.Context(), fn.Name, "after", 2)
		}))
		kept := 0
		for pid := range pidsAfter {
			if pidsBefore[pid] {
				kept++
			}
		}
		type result struct {
			After together
			Kept  int
		}
		// The environment that did not crash keeps its process; the other
		// runs a new one, and both serve again.
		want := result{After: together{Met: 2, Processes: 2}, Kept: 1}
		if diff := cmp.Diff(want, result{after, kept}); diff != "" {
			t.Errorf("after one environment crashed (-want +got):\n%s\nprocesses before %v, after %v", diff, pidsBefore, pidsAfter)
		}
	})

	t.Run("HTTP API requests are served at once", func(t *testing.T) {
		fn := r.startEnvs(t, 2, nil)
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
		url := front.URL + "/api/webhooks/ingest/0123456789abcdef01234567"
		ms := concurrently(t, 2, func() (meeting, error) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("rendezvous:http:2"))
			if err != nil {
				return meeting{}, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return meeting{}, err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusAccepted {
				return meeting{}, fmt.Errorf("POST: status %d: %s", resp.StatusCode, raw)
			}
			var m meeting
			if err := json.Unmarshal(raw, &m); err != nil {
				return meeting{}, fmt.Errorf("decode %s: %w", raw, err)
			}
			return m, nil
		})
		got, _ := summarise(ms)
		if diff := cmp.Diff(together{Met: 2, Processes: 2}, got); diff != "" {
			t.Errorf("two HTTP requests to a function with two environments (-want +got):\n%s\nmeetings: %+v", diff, ms)
		}
	})

	t.Run("the SQS event source has several batches in flight", func(t *testing.T) {
		seen, _ := r.queue(t, 30*time.Second, 0)
		intake, _ := r.queue(t, 30*time.Second, 0)
		fn := r.startEnvs(t, 2, map[string]string{"ECHO_SEEN_QUEUE": seen})
		// Batches of one, so the two messages can only meet in two
		// invocations running at once.
		src := &localrun.SQSSource{
			SQS: r.sqs, Lambda: r.lambda, Log: r.log,
			QueueURL: intake, Function: fn.Name, Region: r.cfg.Region,
			BatchSize: 1, WaitTime: time.Second, Concurrency: 2,
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
		for range 2 {
			if _, err := r.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{
				QueueUrl: aws.String(intake), MessageBody: aws.String("rendezvous:sqs:2"),
			}); err != nil {
				t.Fatal(err)
			}
		}
		var ms []meeting
		for _, raw := range r.drain(t, seen, 2, 30*time.Second) {
			var m meeting
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				t.Fatalf("decode %s: %v", raw, err)
			}
			ms = append(ms, m)
		}
		got, _ := summarise(ms)
		if diff := cmp.Diff(together{Met: 2, Processes: 2}, got); diff != "" {
			t.Errorf("two single-message batches with concurrency 2 (-want +got):\n%s\nmeetings: %+v", diff, ms)
		}
	})
}
