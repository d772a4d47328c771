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
//
//	secretPrefix       SNOWGATE_STACK_SECRET_PREFIX  where the stack's secrets live and
//	                                                 what the functions may read
//	                                                 (default snowgate/<stack>/)
//	legacySecretPrefix SNOWGATE_LEGACY_SECRET_PREFIX also readable, for secrets made
//	                                                 before the per-stack prefix:
//	                                                 snowgate/ (default none)
//	ingestConcurrency  SNOWGATE_INGEST_CONCURRENCY   ingest's reserved concurrency
//	                                                 (default 50)
//	edge               SNOWGATE_EDGE                 none (default) or cloudfront:
//	                                                 CloudFront with AWS WAF in front of
//	                                                 the HTTP API, its web ACL in a stack
//	                                                 <stack>-edge in us-east-1
//	edgeRateLimit      SNOWGATE_EDGE_RATE_LIMIT      requests per address per 5 minutes
//	                                                 before WAF blocks it (default 6000)
//	edgeAllowIPs       SNOWGATE_EDGE_ALLOW_IPS       comma-separated CIDR blocks: only
//	                                                 these pass the edge (default: any)
//
// See docs/deploying.md.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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
	secretPrefix := setting(app, "secretPrefix", "SNOWGATE_STACK_SECRET_PREFIX", "")
	legacyPrefix := setting(app, "legacySecretPrefix", "SNOWGATE_LEGACY_SECRET_PREFIX", "")
	for _, p := range []string{secretPrefix, legacyPrefix} {
		if err := schema.CheckSecretPrefix(p); p != "" && err != nil {
			fmt.Fprintf(os.Stderr, "infra: %v\n", err)
			os.Exit(1)
		}
	}
	ingestConcurrency := 0
	if v := setting(app, "ingestConcurrency", "SNOWGATE_INGEST_CONCURRENCY", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			err = stack.CheckIngestConcurrency(n)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "infra: ingestConcurrency %q: %v\n", v, err)
			os.Exit(1)
		}
		ingestConcurrency = n
	}
	env := &awscdk.Environment{
		Account: optional(os.Getenv("CDK_DEFAULT_ACCOUNT")),
		Region:  optional(os.Getenv("CDK_DEFAULT_REGION")),
	}
	edge, err := stack.ParseEdge(setting(app, "edge", "SNOWGATE_EDGE", ""),
		setting(app, "edgeRateLimit", "SNOWGATE_EDGE_RATE_LIMIT", ""), setting(app, "edgeAllowIPs", "SNOWGATE_EDGE_ALLOW_IPS", ""))
	if err == nil {
		err = stack.CheckEdge(stack.Config{Env: env, Front: front, Edge: edge})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		os.Exit(1)
	}
	stack.Build(app, stack.Config{
		Name:       name,
		Env:        env,
		AssetDir:   assets,
		AlarmEmail: setting(app, "alarmEmail", "SNOWGATE_ALARM_EMAIL", ""),
		Front:      front,

		SecretPrefix:       secretPrefix,
		LegacySecretPrefix: legacyPrefix,
		IngestConcurrency:  ingestConcurrency,
		Edge:               edge,
	})
	app.Synth(nil)
}

// setting reads a context value, then an environment variable, then the
// default.
func setting(app awscdk.App, key, envVar, def string) string {
	switch v := app.Node().TryGetContext(jsii.String(key)).(type) {
	case string:
		if v != "" {
			return v
		}
	case float64: // -c key=50 in cdk.json or a context file is a number
		return strconv.FormatFloat(v, 'f', -1, 64)
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
