package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

func TestEnvFromGetenv(t *testing.T) {
	defaults := redelivery.Policy{Horizon: schema.RetryHorizon, Base: schema.RetryBase, Cap: schema.RetryCap}
	full := map[string]string{
		schema.EnvRegistryTable:    "reg",
		schema.EnvStateTable:       "state",
		schema.EnvDispatchQueueURL: "http://q/dispatch",
		schema.EnvIntakeQueueURL:   "http://q/intake",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    Env
		wantErr string
	}{
		{name: "defaults", env: full, want: Env{RegistryTable: "reg", StateTable: "state", DispatchQueueURL: "http://q/dispatch", IntakeQueueURL: "http://q/intake", Retry: defaults, TicketTTL: state.DefaultTicketTTL}},
		{name: "max pause", env: with(connect.EnvMaxPause, "30s"), want: Env{RegistryTable: "reg", StateTable: "state", DispatchQueueURL: "http://q/dispatch", IntakeQueueURL: "http://q/intake", MaxPause: 30 * time.Second, Retry: redelivery.Policy{Horizon: schema.RetryHorizon, Base: schema.RetryBase, Cap: schema.RetryCap, MaxWait: schema.RetryCap}, TicketTTL: state.DefaultTicketTTL}},
		{name: "shorter horizon", env: with(redelivery.EnvHorizon, "90m"), want: Env{RegistryTable: "reg", StateTable: "state", DispatchQueueURL: "http://q/dispatch", IntakeQueueURL: "http://q/intake", Retry: redelivery.Policy{Horizon: 90 * time.Minute, Base: schema.RetryBase, Cap: schema.RetryCap}, TicketTTL: state.DefaultTicketTTL}},
		{name: "horizon beyond the redrive count", env: with(redelivery.EnvHorizon, "48h"), wantErr: redelivery.EnvHorizon},
		{name: "missing intake queue", env: with(schema.EnvIntakeQueueURL, ""), wantErr: schema.EnvIntakeQueueURL + " is not set"},
		{name: "bad max pause", env: with(connect.EnvMaxPause, "0s"), wantErr: connect.EnvMaxPause},
		{name: "ticket TTL", env: with(EnvTicketTTL, "720h"), want: Env{RegistryTable: "reg", StateTable: "state", DispatchQueueURL: "http://q/dispatch", IntakeQueueURL: "http://q/intake", Retry: defaults, TicketTTL: 30 * 24 * time.Hour}},
		{name: "tickets kept forever", env: with(EnvTicketTTL, "0"), want: Env{RegistryTable: "reg", StateTable: "state", DispatchQueueURL: "http://q/dispatch", IntakeQueueURL: "http://q/intake", Retry: defaults}},
		{name: "ticket TTL too short", env: with(EnvTicketTTL, "1h"), wantErr: EnvTicketTTL},
		{name: "ticket TTL not a duration", env: with(EnvTicketTTL, "90d"), wantErr: EnvTicketTTL},
		{name: "missing table", env: with(schema.EnvStateTable, ""), wantErr: schema.EnvStateTable + " is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EnvFromGetenv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EnvFromGetenv = %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EnvFromGetenv (-want +got):\n%s", diff)
			}
		})
	}
}
