package localrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// TestDev runs make dev's system with the real functions and follows a
// change made in the ServiceNow simulator: once through the Business Rule,
// the HTTP API, ingest, the intake queue and the processor, and once with
// the simulator's outbound calls off, found by the scheduled reconciler.
func TestDev(t *testing.T) {
	r := newRig(t)
	build := t.TempDir()
	var built []string
	for _, fn := range []string{localrun.Ingest, localrun.Processor, localrun.Reconciler} {
		if _, err := os.Stat(filepath.Join("..", "..", "functions", fn, "main.go")); err != nil {
			continue
		}
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", filepath.Join(build, fn, "bootstrap"), "../../functions/"+fn)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", fn, err, out)
		}
		built = append(built, fn)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- localrun.Dev(ctx, localrun.DevConfig{
			Emulator: r.emu, Region: r.cfg.Region, Prefix: awstest.UniqueName("dev") + "-",
			BuildDir: build, EnvFile: envFile, Interval: 2 * time.Second, Outbound: true,
			Out: testWriter{t}, Logs: r.logs,
		})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Dev: %v", err)
		}
	}
	defer stop()

	env := waitEnv(t, envFile, done)
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		schema.EnvRegistryTable, schema.EnvStateTable, schema.EnvIntakeQueueURL, schema.EnvIntakeDLQURL,
		schema.EnvDispatchQueueURL, schema.EnvDispatchDLQURL, schema.EnvResultsQueueURL, schema.EnvResultsDLQURL, schema.EnvAPIURL,
		localrun.EnvSimURL, localrun.EnvSimUser, localrun.EnvSimPassword} {
		if env[k] == "" {
			t.Errorf("env file: %s not set", k)
		}
	}

	rules := []struct {
		name, query, contentType, body string
		want                           int
	}{
		{"bare script", "?table=incident&name=pasted", "text/plain", "gs.info('hello');", http.StatusCreated},
		{"JSON rule", "", "application/json", `{"name":"json","table":"change_request","script":"gs.info('x');"}`, http.StatusCreated},
		{"CLI output", "", "application/json", `{"id":"whk_x","business_rule":{"name":"cli","table":"incident","script":"gs.info('x');"}}`, http.StatusCreated},
		{"bare script without table", "", "text/plain", "gs.info('hello');", http.StatusBadRequest},
		{"not JavaScript", "?table=incident", "text/plain", "function (", http.StatusBadRequest},
		{"unknown table", "", "application/json", `{"table":"problem","script":"gs.info('x');"}`, http.StatusBadRequest},
	}
	for _, tt := range rules {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost,
			env[localrun.EnvSimURL]+"/sim/business_rules"+tt.query, bytes.NewReader([]byte(tt.body)))
		req.Header.Set("Content-Type", tt.contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("POST /sim/business_rules (%s) = %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}

	if !slices.Contains(built, localrun.Ingest) || !slices.Contains(built, localrun.Processor) {
		t.Skip("functions/ingest or functions/processor has no main yet")
	}
	tickets := newTicketWatch(t, env)

	sysID := simCreate(t, env, map[string]string{
		"short_description": "Edge router rtr-07 drops BGP sessions", "priority": "2", "impact": "2", "urgency": "2",
		"state": "1", "assignment_group": snowsim.DemoGroupNetwork, "cmdb_ci": snowsim.DemoCI("rtr-07"), "u_environment": "production",
	})
	if got := tickets.wait(t, sysID, 60*time.Second); got.Status == "" {
		t.Errorf("record created with the webhook on: no ticket for %s", sysID)
	} else {
		t.Logf("webhook path: ticket %s %s (%s)", got.Number, got.Status, got.Reason)
	}

	if !slices.Contains(built, localrun.Reconciler) {
		return
	}
	post(t, env[localrun.EnvSimURL]+"/sim/outbound?enabled=false", "", nil)
	missed := simCreate(t, env, map[string]string{
		"short_description": "Backup job failed on orders-db-01", "priority": "3", "impact": "2", "urgency": "3",
		"state": "1", "assignment_group": snowsim.DemoGroupDatabase, "cmdb_ci": snowsim.DemoCI("orders-db-01"), "u_environment": "production",
	})
	if got := tickets.wait(t, missed, 90*time.Second); got.Status == "" {
		t.Errorf("record created with outbound calls off: the reconciler did not find %s", missed)
	} else {
		t.Logf("reconciler path: ticket %s %s (%s) from %s", got.Number, got.Status, got.Reason, got.Source)
	}
	// The simulator's counters show both: a webhook ingest accepted, and
	// one that was never sent.
	var st localrun.SimStats
	get(t, env[localrun.EnvSimURL]+"/sim/stats", &st)
	if st.OutboundStatus["202"] < 1 || st.OutboundFailed < 1 || st.OutboundAttempted < st.OutboundFailed+st.OutboundStatus["202"] {
		t.Errorf("GET /sim/stats = %+v, want at least one webhook answered 202 and one failed", st)
	}

	stop()
	if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env file after stop: %v, want it removed", err)
	}
}

func waitEnv(t *testing.T, file string, done <-chan error) map[string]string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Dev stopped early: %v", err)
		default:
		}
		if env, err := localrun.ReadEnvFile(file); err == nil {
			return env
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no env file %s after 60s", file)
	return nil
}

type ticketWatch struct {
	st      *state.Store
	gateway string
}

func newTicketWatch(t *testing.T, env map[string]string) *ticketWatch {
	t.Helper()
	cfg, err := awsconfig.Load(t.Context(), awsconfig.Options{Endpoint: env["AWS_ENDPOINT_URL"], StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	ddb := dynamodb.NewFromConfig(cfg)
	gws, err := registry.New(ddb, env[schema.EnvRegistryTable]).Gateways(t.Context())
	if err != nil || len(gws) != 1 {
		t.Fatalf("demo gateways = %v, %v; want one", gws, err)
	}
	return &ticketWatch{st: state.New(ddb, env[schema.EnvStateTable]), gateway: gws[0].ID}
}

// wait returns the record's ticket once it has a final status.
func (w *ticketWatch) wait(t *testing.T, sysID string, timeout time.Duration) state.Ticket {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		all, err := w.st.List(t.Context(), state.ListOptions{GatewayID: w.gateway})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range all {
			if tk.SysID == sysID && tk.Status != "" && tk.Status != state.StatusProcessing && tk.Status != state.StatusRetrying {
				return tk
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return state.Ticket{}
}

func simCreate(t *testing.T, env map[string]string, fields map[string]string) string {
	t.Helper()
	var out struct {
		Result struct {
			SysID string `json:"sys_id"`
		} `json:"result"`
	}
	body, _ := json.Marshal(fields)
	post(t, env[localrun.EnvSimURL]+"/api/now/table/incident", string(body), &out, env[localrun.EnvSimUser], env[localrun.EnvSimPassword])
	return out.Result.SysID
}

func get(t *testing.T, url string, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func post(t *testing.T, url, body string, out any, auth ...string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

// TestDevExternalEndpoint runs make dev against an emulator it did not start
// (moto, LocalStack): tables, queues, the simulator and the demo registry,
// no functions.
func TestDevExternalEndpoint(t *testing.T) {
	endpoint := awstest.URL(t)
	envFile := filepath.Join(t.TempDir(), "env")
	logs := localrun.NewLogs(testWriter{t}, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- localrun.Dev(ctx, localrun.DevConfig{
			Endpoint: endpoint, Region: awsconfig.LocalRegion, Prefix: awstest.UniqueName("ext") + "-",
			BuildDir: t.TempDir(), EnvFile: envFile, Out: testWriter{t}, Logs: logs,
		})
	}()
	env := waitEnv(t, envFile, done)
	if env["AWS_ENDPOINT_URL"] != endpoint || env[schema.EnvAPIURL] != "" || env[localrun.EnvSimURL] == "" {
		t.Errorf("env file: endpoint %q, API %q, simulator %q; want %q, none, set",
			env["AWS_ENDPOINT_URL"], env[schema.EnvAPIURL], env[localrun.EnvSimURL], endpoint)
	}
	newTicketWatch(t, env) // exactly one demo gateway
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Dev: %v", err)
	}
	if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env file after stop: %v, want it removed", err)
	}
}
