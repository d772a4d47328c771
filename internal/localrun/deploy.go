package localrun

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// IngestRoute is the HTTP API route of the ingest function.
const IngestRoute = "POST /api/webhooks/ingest/{path}"

// localRole is the execution role ARN given to the emulator, which requires
// one but enforces nothing.
const localRole = "arn:aws:iam::000000000000:role/snowgate-local"

// Register creates the function in the emulator (or updates its
// configuration when it exists), as CDK would: provided.al2023, arm64, the
// timeout and environment of fn. It returns the function's ARN. The code is
// an empty bundle: the emulator does not run code itself, a Supervisor does.
func Register(ctx context.Context, lc *lambda.Client, fn Function) (string, error) {
	timeout := int32(fn.Timeout.Seconds())
	if timeout <= 0 {
		timeout = 3
	}
	env := &lambdatypes.Environment{Variables: fn.Env}
	out, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName:  aws.String(fn.Name),
		Runtime:       lambdatypes.RuntimeProvidedal2023,
		Architectures: []lambdatypes.Architecture{lambdatypes.ArchitectureArm64},
		Handler:       aws.String("bootstrap"),
		Role:          aws.String(localRole),
		Timeout:       aws.Int32(timeout),
		MemorySize:    aws.Int32(int32(memoryMB(fn))),
		Environment:   env,
		Code:          &lambdatypes.FunctionCode{ZipFile: emptyZip()},
	})
	var conflict *lambdatypes.ResourceConflictException
	switch {
	case errors.As(err, &conflict):
		upd, err := lc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String(fn.Name),
			Timeout:      aws.Int32(timeout),
			MemorySize:   aws.Int32(int32(memoryMB(fn))),
			Environment:  env,
		})
		if err != nil {
			return "", fmt.Errorf("update function %s: %w", fn.Name, err)
		}
		return aws.ToString(upd.FunctionArn), nil
	case err != nil:
		return "", fmt.Errorf("create function %s: %w", fn.Name, err)
	}
	return aws.ToString(out.FunctionArn), nil
}

func emptyZip() []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	_ = zw.Close()
	return b.Bytes()
}

// CreateHTTPAPI creates an HTTP API named name whose route (for example
// IngestRoute) proxies to the function at functionARN with payload format
// 2.0, served by an auto-deployed $default stage; it returns the API id.
func CreateHTTPAPI(ctx context.Context, ac *apigatewayv2.Client, name, route, functionARN string) (string, error) {
	api, err := ac.CreateApi(ctx, &apigatewayv2.CreateApiInput{
		Name:         aws.String(name),
		ProtocolType: apitypes.ProtocolTypeHttp,
	})
	if err != nil {
		return "", fmt.Errorf("create HTTP API %s: %w", name, err)
	}
	id := api.ApiId
	integ, err := ac.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{
		ApiId:                id,
		IntegrationType:      apitypes.IntegrationTypeAwsProxy,
		IntegrationUri:       aws.String(functionARN),
		PayloadFormatVersion: aws.String("2.0"),
	})
	if err != nil {
		return "", fmt.Errorf("create integration of %s: %w", name, err)
	}
	if _, err := ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{
		ApiId:    id,
		RouteKey: aws.String(route),
		Target:   aws.String("integrations/" + aws.ToString(integ.IntegrationId)),
	}); err != nil {
		return "", fmt.Errorf("create route %q of %s: %w", route, name, err)
	}
	if _, err := ac.CreateStage(ctx, &apigatewayv2.CreateStageInput{
		ApiId:      id,
		StageName:  aws.String("$default"),
		AutoDeploy: aws.Bool(true),
	}); err != nil {
		return "", fmt.Errorf("create $default stage of %s: %w", name, err)
	}
	return aws.ToString(id), nil
}
