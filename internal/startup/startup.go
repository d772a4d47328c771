// Package startup is what every snowgate Lambda function does at cold
// start, in one place: a JSON logger on stdout, the AWS configuration (which
// honours AWS_ENDPOINT_URL), the function's own wiring, then lambda.Start.
// A function's main is one call:
//
//	func main() {
//		startup.Main(func(ctx context.Context, k startup.Kit) (any, error) {
//			env, err := ingest.EnvFromGetenv(k.Getenv)
//			if err != nil {
//				return nil, err
//			}
//			…
//			return h.HandleAPIGateway, nil
//		})
//	}
//
// A missing setting or an unloadable AWS configuration stops the function at
// start with one log line ("cannot start", key "error"), never on the
// request path.
package startup

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/snowgate/snowgate/internal/awsconfig"
)

// Kit is what a function's wiring gets at cold start.
type Kit struct {
	// Getenv reads the function's settings (os.Getenv).
	Getenv func(string) string
	// AWS is the SDK configuration every client is built from.
	AWS aws.Config
	// Logger writes JSON lines on stdout.
	Logger *slog.Logger
	// Stdout is where metrics (CloudWatch embedded metric format) go.
	Stdout io.Writer
}

// Wire builds a function's handler from its Kit: it parses the settings,
// builds the clients and returns what lambda.Start takes.
type Wire func(ctx context.Context, k Kit) (handler any, err error)

// Main wires the function and hands its handler to the Lambda runtime. It
// does not return.
func Main(wire Wire) {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	handler, err := Build(context.Background(), os.Getenv, os.Stdout, log, awsconfig.Load, wire)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler)
}

// Build is Main without the runtime: it loads the AWS configuration and
// calls wire. Tests call it to check a function's wiring.
func Build(ctx context.Context, getenv func(string) string, stdout io.Writer, log *slog.Logger,
	load func(context.Context, awsconfig.Options) (aws.Config, error), wire Wire) (any, error) {
	cfg, err := load(ctx, awsconfig.Options{})
	if err != nil {
		return nil, err
	}
	return wire(ctx, Kit{Getenv: getenv, AWS: cfg, Logger: log, Stdout: stdout})
}
