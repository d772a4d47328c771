package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
)

// System is make dev's whole system running in this process (localrun.Dev
// on the rig's emulator): the simulator with the demo gateway's Business
// Rules, ingest behind the HTTP API, the intake queue's event source and the
// processor.
type System struct {
	env    map[string]string
	sqs    *sqs.Client
	lambda *lambda.Client
	http   *http.Client
	stop   func()
	// logPath is the file every program of the system logs to.
	logPath string
	// Concurrency is make dev's: the execution environments of ingest and
	// the processor and the event source's batches in flight.
	IngestEnvironments, ProcessorEnvironments, ProcessorBatches int
}

// systemPrefix names the system's tables, queues and functions.
const systemPrefix = "bench-dev-"

// StartSystem runs localrun.Dev until Close, with the given concurrency
// (zero: make dev's defaults). The reconciler's schedule is set far apart so
// that only webhooks dispatch during a measurement; Recover runs it. No
// engine runs on the dispatch queue: the measurement is its only
// consumer, or it would miss the jobs an engine took first.
func (r *Rig) StartSystem(ctx context.Context, ingestEnvs, processorEnvs, batches int) (*System, error) {
	envFile := filepath.Join(r.Dir, "dev.env")
	devCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dc := localrun.DevConfig{
		Emulator: r.Emu, Region: r.Cfg.Region, Prefix: systemPrefix, BuildDir: filepath.Join(r.Dir, "host"),
		EnvFile: envFile, Interval: time.Hour, Outbound: true, Logs: r.Logs, Engine: localrun.EngineOff,
		IngestEnvironments: ingestEnvs, ProcessorEnvironments: processorEnvs, ProcessorBatches: batches,
	}
	go func() { done <- localrun.Dev(devCtx, dc) }()
	s := &System{http: httpClient(), stop: func() { cancel(); <-done }, logPath: r.logFile.Name(),
		IngestEnvironments:    countOr(ingestEnvs, localrun.DefaultIngestEnvironments),
		ProcessorEnvironments: countOr(processorEnvs, localrun.DefaultProcessorEnvironments),
		ProcessorBatches:      countOr(batches, localrun.DefaultProcessorBatches)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		env, err := localrun.ReadEnvFile(envFile)
		if err == nil && env[schema.EnvDispatchQueueURL] != "" {
			s.env = env
			break
		}
		select {
		case err := <-done:
			cancel()
			return nil, fmt.Errorf("make dev stopped while starting: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, errors.New("make dev did not write its env file within 60s")
		}
	}
	cfg := sdkConfig(r.Cfg, r.Emu.URL)
	s.sqs, s.lambda = sqs.NewFromConfig(cfg), lambda.NewFromConfig(cfg)
	return s, nil
}

func countOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Close stops the system.
func (s *System) Close() { s.stop() }

// Flow is one webhook-to-dispatch measurement at a fixed rate.
type Flow struct {
	Rate     int
	Duration time.Duration
	// Created is when each record was created (the request to the
	// simulator was sent), by sys_id; Latencies the time from there to its
	// job's arrival on the dispatch queue (SQS SentTimestamp), sorted.
	Created   map[string]time.Time
	Latencies []time.Duration
	latency   map[string]time.Duration
	// Missing counts records without a job when the wait ended;
	// MissingAccepted those of them whose webhook ingest did accept (202),
	// which a lost webhook does not explain.
	Missing, MissingAccepted int
	// Lateness is how far behind its schedule the last insert went out.
	Lateness time.Duration
	// Settled is false when the system was still busy with an earlier
	// measurement (webhooks in flight, intake messages) when this one began.
	Settled bool

	// Webhooks are the simulator's webhook calls from the start of the
	// measurement to the end of the wait (the records' own and the echoes
	// of their write-back work notes): Sent, answered by HTTP status, and
	// failed without an answer, by reason. ServiceNow does not retry a
	// failed call; the reconciler finds those changes.
	Webhooks Webhooks
	// Errors counts the system's error log lines in that time, by program
	// and message.
	Errors map[string]int
	// IntakeDLQ and DispatchDLQ are the messages on the dead-letter queues
	// after the wait.
	IntakeDLQ, DispatchDLQ int
	// Recovered counts the missing records whose job arrived after the
	// reconciler ran once, after the wait; StillMissing those that did not
	// arrive even then. Recovery is not part of the latencies.
	Recovered, StillMissing int
}

// Webhooks are webhook calls and what became of them.
type Webhooks struct {
	Sent   int
	Status map[int]int
	Failed map[string]int
}

// Failures counts the calls that failed: no answer, or an answer other
// than 2xx.
func (w Webhooks) Failures() int {
	n := 0
	for _, c := range w.Failed {
		n += c
	}
	for code, c := range w.Status {
		if code/100 != 2 {
			n += c
		}
	}
	return n
}

// MeasureFlow creates rate incidents per second for d through the
// simulator's Table API, each matching the demo gateway, so its Business
// Rule calls the webhook, and times each record until its job is on the
// dispatch queue. It waits up to drain for the last jobs.
func (s *System) MeasureFlow(ctx context.Context, rate int, d, drain time.Duration) (Flow, error) {
	// Jobs of earlier runs are told apart by sys_id anyway; the purge
	// only keeps the consumer from wading through them.
	_, _ = s.sqs.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(s.env[schema.EnvDispatchQueueURL])})
	f := Flow{Rate: rate, Duration: d, Created: map[string]time.Time{}, latency: map[string]time.Duration{}}
	f.Settled = s.settle(ctx, 30*time.Second)
	statsBefore, err := s.simStats(ctx)
	if err != nil {
		return f, err
	}
	logFrom := fileSize(s.logPath)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	arrived := map[string]time.Time{}
	consumeCtx, stopConsume := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		s.consume(consumeCtx, func(sysID string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := arrived[sysID]; !ok {
				arrived[sysID] = at
			}
		})
	}()

	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	run := strconv.FormatInt(start.UnixNano(), 36)
	// Open loop: records are created on schedule whether or not the
	// system keeps up, as people and integrations change them.
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			t0 := time.Now()
			sysID, err := s.createIncident(ctx, fmt.Sprintf("bench %s #%d: link flaps on edge router", run, i), fmt.Sprintf("rtr-%s-%d", run, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			f.Created[sysID] = t0
		})
	}
	f.Lateness = time.Since(start.Add(time.Duration(n-1) * interval))
	wg.Wait()

	until := time.Now().Add(drain)
	for time.Now().Before(until) {
		mu.Lock()
		all := len(arrived) >= len(f.Created)
		mu.Unlock()
		if all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if firstErr != nil && len(f.Created) == 0 {
		mu.Unlock()
		stopConsume()
		<-consumed
		return f, firstErr
	}
	var missing []string
	for id, t0 := range f.Created {
		at, ok := arrived[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		f.latency[id] = at.Sub(t0)
		f.Latencies = append(f.Latencies, at.Sub(t0))
	}
	mu.Unlock()
	f.Missing = len(missing)
	sortDurations(f.Latencies)

	statsAfter, err := s.simStats(ctx)
	if err != nil {
		stopConsume()
		<-consumed
		return f, err
	}
	f.Webhooks = since(statsAfter, statsBefore)
	fd := s.logFindings(logFrom)
	f.Webhooks.Failed, f.Errors = fd.failed, fd.errs
	for _, id := range missing {
		if fd.accepted[id] {
			f.MissingAccepted++
		}
	}
	f.IntakeDLQ = s.depth(ctx, s.env[schema.EnvIntakeDLQURL])
	f.DispatchDLQ = s.depth(ctx, s.env[schema.EnvDispatchDLQURL])

	// What the webhooks missed, the reconciler finds: one run now, then
	// the missing records' jobs get the time a drain has.
	if len(missing) > 0 {
		if err := s.reconcile(ctx); err != nil {
			f.StillMissing = len(missing)
			stopConsume()
			<-consumed
			return f, err
		}
		until := time.Now().Add(max(drain, 30*time.Second))
		for {
			mu.Lock()
			n := 0
			for _, id := range missing {
				if _, ok := arrived[id]; ok {
					n++
				}
			}
			mu.Unlock()
			f.Recovered = n
			if n == len(missing) || time.Now().After(until) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		f.StillMissing = len(missing) - f.Recovered
	}
	stopConsume()
	<-consumed
	return f, nil
}

// settle waits until the system is idle, so a measurement does not pay for
// the one before: no webhook call in flight (the echoes of write-backs come
// after the jobs) and no message on the intake queue. It reports whether
// that happened within limit.
func (s *System) settle(ctx context.Context, limit time.Duration) bool {
	until := time.Now().Add(limit)
	for {
		st, err := s.simStats(ctx)
		answered := st.OutboundFailed
		for _, n := range st.OutboundStatus {
			answered += n
		}
		if err == nil && answered >= st.OutboundAttempted && s.depth(ctx, s.env[schema.EnvIntakeQueueURL]) == 0 {
			return true
		}
		if time.Now().After(until) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reconcile invokes the reconciler once with a scheduled event, as its
// schedule would; it returns when the run is over.
func (s *System) reconcile(ctx context.Context) error {
	sched := localrun.Schedule{Function: systemPrefix + localrun.Reconciler, Rule: systemPrefix + "reconcile", Region: s.env["AWS_REGION"]}
	payload, err := json.Marshal(sched.Event(time.Now()))
	if err != nil {
		return err
	}
	out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(sched.Function), Payload: payload})
	if err != nil {
		return fmt.Errorf("invoke the reconciler: %w", err)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("reconciler failed: %s: %s", aws.ToString(out.FunctionError), out.Payload)
	}
	return nil
}

// simStats reads the simulator's counters (GET /sim/stats).
func (s *System) simStats(ctx context.Context) (localrun.SimStats, error) {
	var st localrun.SimStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.env[localrun.EnvSimURL]+"/sim/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("simulator stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("simulator stats: %w", err)
	}
	return st, nil
}

// since are the webhook calls between two readings of the counters.
func since(after, before localrun.SimStats) Webhooks {
	w := Webhooks{Sent: after.OutboundAttempted - before.OutboundAttempted, Status: map[int]int{}}
	for code, n := range after.OutboundStatus {
		c, err := strconv.Atoi(code)
		if err != nil {
			continue
		}
		if d := n - before.OutboundStatus[code]; d > 0 {
			w.Status[c] = d
		}
	}
	return w
}

// depth is the approximate number of messages on a queue (-1 unknown).
func (s *System) depth(ctx context.Context, url string) int { return queueDepth(ctx, s.sqs, url) }

// queueDepth counts a queue's messages, visible, in flight and delayed
// (-1: unknown).
func queueDepth(ctx context.Context, client *sqs.Client, url string) int {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return -1
	}
	n := 0
	for _, v := range out.Attributes {
		if c, err := strconv.Atoi(v); err == nil {
			n += c
		}
	}
	return n
}

func (s *System) createIncident(ctx context.Context, short, ci string) (string, error) {
	body := mustJSON(map[string]string{
		"short_description": short, "priority": "3", "impact": "2", "urgency": "2", "state": "1",
		"assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI(ci), "u_environment": "production",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.env[localrun.EnvSimURL]+"/api/now/table/incident", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(s.env[localrun.EnvSimUser], s.env[localrun.EnvSimPassword])
	resp, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("create incident: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("create incident: %s: %s", resp.Status, raw)
	}
	var out struct {
		Result struct {
			SysID string `json:"sys_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Result.SysID == "" {
		return "", fmt.Errorf("create incident: no sys_id in %s", raw)
	}
	return out.Result.SysID, nil
}

// consume receives jobs from the dispatch queue until ctx ends and reports
// each job's record and the time SQS took it (SentTimestamp; the receive
// time when the emulator does not send one).
func (s *System) consume(ctx context.Context, got func(sysID string, at time.Time)) {
	url := s.env[schema.EnvDispatchQueueURL]
	for ctx.Err() == nil {
		out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSentTimestamp},
		})
		now := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for _, m := range out.Messages {
			var job queue.JobEvent
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &job); err == nil {
				at := now
				if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
					at = time.UnixMilli(ms)
				}
				got(job.SysID, at)
			}
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			_, _ = s.sqs.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del})
		}
	}
}
