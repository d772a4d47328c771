package localrun_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// TestDemo runs make demo against make dev's system, twice in a row as a
// newcomer might: every step must end as it announced (an incident
// resolved, a failing one escalated, a change updated without a second
// job), and the second run must not find its incidents duplicates of the
// first run's.
func TestDemo(t *testing.T) {
	if _, err := os.Stat("../../functions/writer/main.go"); err != nil {
		t.Skip("functions/writer has no main yet: make demo's results cannot be written back")
	}
	r := newRig(t)
	build := t.TempDir()
	for _, fn := range []string{localrun.Ingest, localrun.Processor, localrun.Reconciler, "writer"} {
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", filepath.Join(build, fn, "bootstrap"), "../../functions/"+fn)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", fn, err, out)
		}
	}
	envFile := filepath.Join(t.TempDir(), "env")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- localrun.Dev(ctx, localrun.DevConfig{
			Emulator: r.emu, Region: r.cfg.Region, Prefix: awstest.UniqueName("demo") + "-",
			BuildDir: build, EnvFile: envFile, Interval: localrun.DefaultInterval, Outbound: true,
			Out: testWriter{t}, Logs: r.logs,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Dev: %v", err)
		}
	}()
	env := waitEnv(t, envFile, done)

	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		dctx, dcancel := context.WithTimeout(t.Context(), 2*time.Minute)
		err := localrun.Demo(dctx, env, &out)
		dcancel()
		t.Logf("demo run %d:\n%s", run, out.String())
		if err != nil {
			t.Fatalf("Demo run %d = %v, want every step as announced", run, err)
		}
		// Six changes, then the two results written back.
		if got := strings.Count(out.String(), "(expect "); got != 8 {
			t.Errorf("demo run %d announced %d outcomes, want 8", run, got)
		}
		for _, bad := range []string{"DIFFERS", "no decision", "not checked"} {
			if strings.Contains(out.String(), bad) {
				t.Errorf("demo run %d output contains %q", run, bad)
			}
		}
		time.Sleep(time.Second) // the next run's incidents get another tag
	}

	// A run whose first incident meets an earlier one with the same short
	// description and CI: the demo must not claim success.
	const tag = "taken"
	earlier := simCreate(t, env, map[string]string{
		"short_description": "Checkout API returns 502 for some requests (demo " + tag + ")", "priority": "3", "impact": "2", "urgency": "2",
		"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("lb-web-01"), "u_environment": "production",
	})
	if got := newTicketWatch(t, env).wait(t, earlier, 60*time.Second); got.Status != state.StatusAccepted {
		t.Fatalf("earlier incident: ticket %+v, want accepted", got)
	}
	var out bytes.Buffer
	err := localrun.DemoWith(t.Context(), env, &out, localrun.DemoOptions{Tag: tag})
	t.Logf("demo run after an identical incident:\n%s", out.String())
	if !errors.Is(err, localrun.ErrDemoDiffered) {
		t.Fatalf("DemoWith(tag %q) = %v, want ErrDemoDiffered", tag, err)
	}
	for _, step := range []string{`"create incident"`, `"create the same incident again"`} {
		if !strings.Contains(err.Error(), step) {
			t.Errorf("error %q does not name step %s", err, step)
		}
	}
	for _, step := range []string{`"create a change, Scheduled"`, `"move the change to Implement"`, `"create a change starting in an hour"`} {
		if strings.Contains(err.Error(), step) {
			t.Errorf("error %q names step %s, which went as announced", err, step)
		}
	}
	if !strings.Contains(out.String(), "DIFFERS: deduplicated") {
		t.Errorf("output does not show the differing outcome:\n%s", out.String())
	}
}

// TestDemoNotRunning: without make dev the demo says so.
func TestDemoNotRunning(t *testing.T) {
	_, err := localrun.ReadEnvFile(filepath.Join(t.TempDir(), "env"))
	if !errors.Is(err, localrun.ErrNotRunning) {
		t.Errorf("ReadEnvFile(missing) = %v, want ErrNotRunning", err)
	}
	err = localrun.Demo(t.Context(), map[string]string{}, &bytes.Buffer{})
	if !errors.Is(err, localrun.ErrNotRunning) {
		t.Errorf("Demo(no env) = %v, want ErrNotRunning", err)
	}
}
