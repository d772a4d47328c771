package localrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
)

// make dev runs the demo engine on its dispatch queue: a job event put
// there is answered on the results queue the env file names. No function
// needs to be built for that.
func TestDevRunsTheDemoEngine(t *testing.T) {
	r := newRig(t)
	envFile := filepath.Join(t.TempDir(), "env")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var summary bytes.Buffer
	go func() {
		done <- localrun.Dev(ctx, localrun.DevConfig{
			Emulator: r.emu, Region: r.cfg.Region, Prefix: awstest.UniqueName("eng") + "-",
			BuildDir: t.TempDir(), EnvFile: envFile, EngineDelay: 10 * time.Millisecond,
			Out: &summary, Logs: r.logs,
		})
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Dev: %v", err)
			}
		}
	}
	defer stop()
	env := waitEnv(t, envFile, done)
	if env[schema.EnvResultsQueueURL] == "" || env[schema.EnvResultsDLQURL] == "" {
		t.Fatalf("env file lacks the results queue: %v", env)
	}

	ev := queue.JobEvent{
		Type: queue.EventJobCreated, SchemaVersion: queue.EventSchemaVersion, EventID: "ev-1", JobID: "job-1",
		Sequence: 1, Episode: 1, GatewayID: "gtw_x", Table: "incident", SysID: "s1", Number: "INC0010099",
		Ticket: queue.JobTicket{Number: "INC0010099", ShortDescription: "Printer on fire [fail]"},
	}
	client := sqs.NewFromConfig(r.cfg)
	if err := queue.NewSender(client, env[schema.EnvDispatchQueueURL]).SendJSON(t.Context(), ev, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	deadline := time.Now().Add(time.Minute)
	for len(got) < 2 && time.Now().Before(deadline) {
		out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(env[schema.EnvResultsQueueURL]), WaitTimeSeconds: 5, MaxNumberOfMessages: 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var res queue.JobResult
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &res); err != nil {
				t.Fatalf("result %q: %v", aws.ToString(m.Body), err)
			}
			got[res.ResultID] = res.Status
		}
	}
	want := map[string]string{
		demoengine.ResultIDFor("ev-1", demoengine.KindStarted): queue.ResultInProgress,
		demoengine.ResultIDFor("ev-1", demoengine.KindFinal):   queue.ResultFailed,
	}
	for id, status := range want {
		if got[id] != status {
			t.Errorf("result %s = %q, want %s (all: %v)", id, got[id], status, got)
		}
	}
	stop() // the summary is written by then
	if !strings.Contains(summary.String(), "engine          demo") {
		t.Errorf("summary does not name the engine:\n%s", summary.String())
	}
}

func TestDevRefusesAnUnknownEngine(t *testing.T) {
	err := localrun.Dev(t.Context(), localrun.DevConfig{Engine: "turbo"})
	if !errors.Is(err, localrun.ErrUnknownEngine) {
		t.Errorf("Dev(engine turbo) = %v, want ErrUnknownEngine", err)
	}
}
