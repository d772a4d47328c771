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
	env  map[string]string
	sqs  *sqs.Client
	http *http.Client
	stop func()
}

// StartSystem runs localrun.Dev until Close. The reconciler's schedule is
// set far apart so that only webhooks dispatch during a measurement.
func (r *Rig) StartSystem(ctx context.Context) (*System, error) {
	envFile := filepath.Join(r.Dir, "dev.env")
	devCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- localrun.Dev(devCtx, localrun.DevConfig{
			Emulator: r.Emu, Region: r.Cfg.Region, Prefix: "bench-dev-", BuildDir: filepath.Join(r.Dir, "host"),
			EnvFile: envFile, Interval: time.Hour, Outbound: true, Logs: r.Logs,
		})
	}()
	s := &System{http: httpClient(), stop: func() { cancel(); <-done }}
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
	s.sqs = sqs.NewFromConfig(sdkConfig(r.Cfg, r.Emu.URL))
	return s, nil
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
	// Missing counts records without a job when the wait ended.
	Missing int
	// Lateness is how far behind its schedule the last insert went out.
	Lateness time.Duration
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
	stopConsume()
	<-consumed
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil && len(f.Created) == 0 {
		return f, firstErr
	}
	for id, t0 := range f.Created {
		at, ok := arrived[id]
		if !ok {
			f.Missing++
			continue
		}
		f.latency[id] = at.Sub(t0)
		f.Latencies = append(f.Latencies, at.Sub(t0))
	}
	sortDurations(f.Latencies)
	return f, nil
}

func (s *System) createIncident(ctx context.Context, short, ci string) (string, error) {
	body := mustJSON(map[string]string{
		"short_description": short, "priority": "3", "impact": "2", "urgency": "2", "state": "1",
		"assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": ci, "u_environment": "production",
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
			var job queue.JobRequest
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
