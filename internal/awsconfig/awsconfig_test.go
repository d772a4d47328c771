package awsconfig

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		opts         Options
		wantRegion   string
		wantEndpoint string
		wantErr      error
	}{
		{"region from the environment", map[string]string{"AWS_REGION": "eu-west-1"}, Options{}, "eu-west-1", "", nil},
		{"endpoint from the environment, no region: local default",
			map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, Options{}, LocalRegion, "http://127.0.0.1:4566", nil},
		{"explicit endpoint and region win", map[string]string{"AWS_REGION": "eu-west-1"},
			Options{Endpoint: "http://127.0.0.1:5000", Region: "ap-south-1"}, "ap-south-1", "http://127.0.0.1:5000", nil},
		{"real AWS without a region is an error", nil, Options{}, "", "", ErrNoRegion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A clean environment: no shared config files, no ambient settings.
			for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"} {
				t.Setenv(k, "")
			}
			t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(context.Background(), tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if cfg.Region != tc.wantRegion {
				t.Errorf("Region = %q, want %q", cfg.Region, tc.wantRegion)
			}
			if got := aws.ToString(cfg.BaseEndpoint); got != tc.wantEndpoint {
				t.Errorf("BaseEndpoint = %q, want %q", got, tc.wantEndpoint)
			}
		})
	}
}
