// Package awsconfig builds the one aws.Config every snowgate program uses:
// the CLI, the three functions, make dev and the tests.
//
// It is the SDK's default chain (environment, shared config, IAM role), so the
// standard settings apply unchanged: AWS_REGION, AWS_PROFILE, the credential
// variables and AWS_ENDPOINT_URL (plus AWS_ENDPOINT_URL_<SERVICE>), which is
// how the same binaries talk to AWS, LocalStack, moto or the embedded emulator.
//
// Its HTTP client hands net/http request bodies that the SDK cannot close
// under a request still being written (see bodyOwner): without it a
// response is now and then cut off, and the SDK sends a request the
// service has already executed a second time.
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// LocalRegion is the region assumed when an endpoint override is set but no
// region is: emulators accept any region, and a default keeps `make dev` and
// the tests free of boilerplate.
const LocalRegion = "us-east-1"

// ErrNoRegion is returned when no region is configured for real AWS.
var ErrNoRegion = errors.New("no AWS region configured: set AWS_REGION (or a profile with a region)")

// Options adjust Load for callers that know better than the environment.
type Options struct {
	// Endpoint overrides AWS_ENDPOINT_URL for every service (tests, make dev).
	Endpoint string
	// Region overrides AWS_REGION.
	Region string
	// StaticCredentials uses fixed dummy credentials; for emulators only.
	StaticCredentials bool
}

// Load returns the AWS configuration for a program.
func Load(ctx context.Context, opts Options) (aws.Config, error) {
	var loaders []func(*config.LoadOptions) error
	if opts.Region != "" {
		loaders = append(loaders, config.WithRegion(opts.Region))
	}
	if opts.Endpoint != "" {
		loaders = append(loaders, config.WithBaseEndpoint(opts.Endpoint))
	}
	if opts.StaticCredentials {
		loaders = append(loaders, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	cfg.HTTPClient = ownBodies(cfg.HTTPClient)
	local := cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	if cfg.Region == "" {
		if !local {
			return aws.Config{}, ErrNoRegion
		}
		cfg.Region = LocalRegion
	}
	return cfg, nil
}
