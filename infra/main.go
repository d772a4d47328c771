// Command infra is the CDK app that deploys snowgate: the data stack
// (<name>-data: tables and queues) and the service stack (<name>: functions,
// the ingest front, schedule, alarms, dashboard). The CDK CLI runs it (see cdk.json).
//
// Context values (cdk -c key=value) and their environment fallbacks:
//
//	stack       SNOWGATE_STACK       service stack name (default "snowgate")
//	assetDir    SNOWGATE_ASSET_DIR   directory holding <function>.zip (default ../build)
//	alarmEmail  SNOWGATE_ALARM_EMAIL address subscribed to the alarm topic (optional)
//	ingestFront SNOWGATE_INGEST_FRONT what receives the webhooks: http-api (default, an
//	                                  API Gateway HTTP API) or function-url (a Lambda
//	                                  function URL on ingest: no API Gateway needed)
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/schema"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	name := setting(app, "stack", schema.EnvStack, schema.DefaultStackName)
	assets := setting(app, "assetDir", "SNOWGATE_ASSET_DIR", filepath.Join("..", "build"))
	for _, fn := range stack.Functions {
		if _, err := os.Stat(filepath.Join(assets, fn+".zip")); err != nil {
			fmt.Fprintf(os.Stderr, "infra: function bundle missing (%v); run `make build` first or set assetDir\n", err)
			os.Exit(1)
		}
	}
	front, err := stack.ParseFront(setting(app, "ingestFront", "SNOWGATE_INGEST_FRONT", ""))
	if err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		os.Exit(1)
	}
	env := &awscdk.Environment{
		Account: optional(os.Getenv("CDK_DEFAULT_ACCOUNT")),
		Region:  optional(os.Getenv("CDK_DEFAULT_REGION")),
	}
	stack.Build(app, stack.Config{
		Name:       name,
		Env:        env,
		AssetDir:   assets,
		AlarmEmail: setting(app, "alarmEmail", "SNOWGATE_ALARM_EMAIL", ""),
		Front:      front,
	})
	app.Synth(nil)
}

// setting reads a context value, then an environment variable, then the default.
func setting(app awscdk.App, key, envVar, def string) string {
	if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok && v != "" {
		return v
	}
	if v := os.Getenv(envVar); v != "" {
		return v
	}
	return def
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
