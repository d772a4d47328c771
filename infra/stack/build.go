package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Config names a deployment.
type Config struct {
	// Name is the service stack's name; the data stack is Name + DataSuffix.
	Name string
	Env  *awscdk.Environment
	// AssetDir holds <function>.zip for every function.
	AssetDir   string
	AlarmEmail string
	// Front is what receives the webhooks; "" is FrontHTTPAPI.
	Front Front
	// SecretPrefix is where the CLI creates the stack's secrets; ""
	// is schema.SecretPrefix(Name). LegacySecretPrefix, when set, is
	// read too (see ServiceProps).
	SecretPrefix, LegacySecretPrefix string
	// IngestConcurrency is ingest's reserved concurrency; 0 is
	// DefaultIngestConcurrency.
	IngestConcurrency int
}

// DataSuffix turns the service stack's name into the data stack's.
const DataSuffix = "-data"

// Build adds both stacks to scope (the app), tagged app=snowgate.
func Build(scope constructs.Construct, c Config) (*Data, *Service) {
	// Strong references (CloudFormation exports) keep the data stack from
	// dropping a table or queue the service stack still uses. Said
	// explicitly, as CDK asks, and before any construct exists.
	const refs = "@aws-cdk/core:defaultCrossStackReferences"
	if scope.Node().TryGetContext(jsii.String(refs)) == nil {
		scope.Node().SetContext(jsii.String(refs), "strong")
	}
	data := NewData(scope, c.Name+DataSuffix, &DataProps{StackProps: awscdk.StackProps{Env: c.Env}})
	svc := NewService(scope, c.Name, &ServiceProps{
		StackProps: awscdk.StackProps{Env: c.Env},
		Data:       data,
		AssetDir:   c.AssetDir,
		AlarmEmail: c.AlarmEmail,
		Front:      c.Front,

		SecretPrefix:       c.SecretPrefix,
		LegacySecretPrefix: c.LegacySecretPrefix,
		IngestConcurrency:  c.IngestConcurrency,
	})
	for _, s := range []awscdk.Stack{data.Stack, svc.Stack} {
		// CloudFormation takes no tags on a dashboard.
		awscdk.Tags_Of(s).Add(jsii.String("app"), jsii.String("snowgate"), &awscdk.TagProps{
			ExcludeResourceTypes: jsii.Strings("AWS::CloudWatch::Dashboard"),
		})
	}
	return data, svc
}
