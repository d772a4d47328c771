package startup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/startup"
)

func TestBuild(t *testing.T) {
	errLoad := errors.New("no region")
	errWire := errors.New("SNOWGATE_REGISTRY_TABLE is not set")
	okLoad := func(context.Context, awsconfig.Options) (aws.Config, error) {
		return aws.Config{Region: "eu-west-1"}, nil
	}
	badLoad := func(context.Context, awsconfig.Options) (aws.Config, error) { return aws.Config{}, errLoad }
	getenv := func(k string) string { return map[string]string{"NAME": "ingest"}[k] }
	handler := func(context.Context) error { return nil }

	tests := []struct {
		name    string
		load    func(context.Context, awsconfig.Options) (aws.Config, error)
		wire    startup.Wire
		wantErr error
	}{
		{"wired", okLoad, func(_ context.Context, k startup.Kit) (any, error) {
			if k.AWS.Region != "eu-west-1" || k.Getenv("NAME") != "ingest" || k.Logger == nil || k.Stdout == nil {
				return nil, errors.New("kit incomplete")
			}
			return handler, nil
		}, nil},
		{"AWS configuration fails", badLoad, func(context.Context, startup.Kit) (any, error) {
			t.Error("wire called without an AWS configuration")
			return handler, nil
		}, errLoad},
		{"settings missing", okLoad, func(context.Context, startup.Kit) (any, error) { return nil, errWire }, errWire},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewJSONHandler(io.Discard, nil))
			h, err := startup.Build(context.Background(), getenv, &out, log, tt.load, tt.wire)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Build() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && h == nil {
				t.Fatal("Build() returned no handler")
			}
		})
	}
}
