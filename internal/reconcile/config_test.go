package reconcile_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestEnvFromGetenv(t *testing.T) {
	base := map[string]string{
		schema.EnvRegistryTable:  "reg",
		schema.EnvStateTable:     "state",
		schema.EnvIntakeQueueURL: "http://q",
	}
	tests := []struct {
		name    string
		extra   map[string]string
		drop    string
		want    reconcile.Config
		wantErr string
	}{
		{name: "defaults", want: reconcile.Config{Overlap: 2 * time.Minute, PageSize: 1000,
			DeadlineMargin: 10 * time.Second, GatewayTimeout: time.Minute, Concurrency: 4,
			QueuedFor: 10 * time.Minute, StuckLimit: 1000}},
		{name: "overrides", extra: map[string]string{reconcile.EnvOverlap: "5m", reconcile.EnvPageSize: "200",
			reconcile.EnvGatewayTimeout: "30s", reconcile.EnvConcurrency: "2"},
			want: reconcile.Config{Overlap: 5 * time.Minute, PageSize: 200,
				DeadlineMargin: 10 * time.Second, GatewayTimeout: 30 * time.Second, Concurrency: 2,
				QueuedFor: 10 * time.Minute, StuckLimit: 1000}},
		{name: "bad overlap", extra: map[string]string{reconcile.EnvOverlap: "soon"}, wantErr: reconcile.EnvOverlap},
		{name: "page size too large", extra: map[string]string{reconcile.EnvPageSize: "20000"}, wantErr: reconcile.EnvPageSize},
		{name: "missing state table", drop: schema.EnvStateTable, wantErr: schema.EnvStateTable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range base {
				if k != tc.drop {
					vars[k] = v
				}
			}
			for k, v := range tc.extra {
				vars[k] = v
			}
			env, err := reconcile.EnvFromGetenv(func(k string) string { return vars[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("EnvFromGetenv() error = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnvFromGetenv(): %v", err)
			}
			if diff := cmp.Diff(tc.want, env.Config); diff != "" {
				t.Errorf("Config (-want +got):\n%s", diff)
			}
		})
	}
}

// The scheduled event goes through the handler the way the runtime calls it.
func TestHandleScheduledEvent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.SetOutbound(false)
	id := e.insert(nil)
	e.clk.add(2 * time.Minute)
	payload, err := os.ReadFile("testdata/scheduled-event.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lambda.NewHandler(e.reconciler(reconcile.Config{}).Handle).Invoke(t.Context(), payload); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if diff := cmp.Diff(map[string]int{id: 1}, bySysID(t, e.drain())); diff != "" {
		t.Errorf("enqueued (-want +got):\n%s", diff)
	}
}
