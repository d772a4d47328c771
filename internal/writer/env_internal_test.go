package writer

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestEnvFromGetenv(t *testing.T) {
	defaults := redelivery.Policy{Horizon: schema.RetryHorizon, Base: schema.RetryBase, Cap: schema.RetryCap}
	full := map[string]string{
		schema.EnvRegistryTable: "reg", schema.EnvStateTable: "st", schema.EnvResultsQueueURL: " https://sqs.example/q ",
	}
	tests := []struct {
		name    string
		unset   []string
		set     map[string]string
		want    Env
		wantErr []string
	}{
		{name: "complete", want: Env{RegistryTable: "reg", StateTable: "st", ResultsQueueURL: "https://sqs.example/q", Retry: defaults}},
		{name: "shorter horizon", set: map[string]string{redelivery.EnvHorizon: "2h"},
			want: Env{RegistryTable: "reg", StateTable: "st", ResultsQueueURL: "https://sqs.example/q", Retry: redelivery.Policy{Horizon: 2 * time.Hour, Base: schema.RetryBase, Cap: schema.RetryCap}}},
		{name: "horizon beyond the redrive count", set: map[string]string{redelivery.EnvHorizon: "25h"}, wantErr: []string{redelivery.EnvHorizon}},
		{name: "missing settings named", unset: []string{schema.EnvStateTable, schema.EnvResultsQueueURL},
			wantErr: []string{schema.EnvStateTable + " is not set", schema.EnvResultsQueueURL + " is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range full {
				vars[k] = v
			}
			for _, k := range tt.unset {
				delete(vars, k)
			}
			for k, v := range tt.set {
				vars[k] = v
			}
			got, err := EnvFromGetenv(func(k string) string { return vars[k] })
			if len(tt.wantErr) == 0 {
				if err != nil || !cmp.Equal(got, tt.want) {
					t.Errorf("EnvFromGetenv() = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("EnvFromGetenv() error = %v, want it to say %q", err, w)
				}
			}
		})
	}
}
