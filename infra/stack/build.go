package stack

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
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
	// Edge, when set, puts CloudFront with AWS WAF in front of the HTTP
	// API (a third stack, Name + EdgeSuffix, in us-east-1). It needs the
	// HTTP API front and an Env with a region.
	Edge *Edge
}

// DataSuffix turns the service stack's name into the data stack's.
const DataSuffix = "-data"

// CheckEdge reports why a configuration cannot have its edge: the edge
// fronts the HTTP API, and its web ACL's stack in us-east-1 is reached by
// cross-region references, which need the service stack's region.
func CheckEdge(c Config) error {
	if c.Edge == nil {
		return nil
	}
	front, err := ParseFront(string(c.Front))
	if err != nil {
		return err
	}
	if front != FrontHTTPAPI {
		return fmt.Errorf("the edge fronts the %s ingest front, not %s", FrontHTTPAPI, front)
	}
	if c.Env == nil || c.Env.Region == nil || *c.Env.Region == "" {
		return errors.New("the edge needs the deployment's region (CDK_DEFAULT_REGION, set by cdk from the AWS profile or AWS_REGION)")
	}
	return c.Edge.check()
}

// Build adds the stacks to scope (the app), tagged app=snowgate: data and
// service, and with c.Edge the edge stack.
func Build(scope constructs.Construct, c Config) (*Data, *Service) {
	// Strong references (CloudFormation exports) keep the data stack from
	// dropping a table or queue the service stack still uses. Said
	// explicitly, as CDK asks, and before any construct exists.
	const refs = "@aws-cdk/core:defaultCrossStackReferences"
	if scope.Node().TryGetContext(jsii.String(refs)) == nil {
		scope.Node().SetContext(jsii.String(refs), "strong")
	}
	data := NewData(scope, c.Name+DataSuffix, &DataProps{StackProps: awscdk.StackProps{Env: c.Env}})
	var edge awscdk.Stack
	var webACL *string
	if c.Edge != nil {
		if err := CheckEdge(c); err != nil {
			panic(err) // a programming error: the app validates its settings first
		}
		var acl awswafv2.CfnWebACL
		edge, acl = NewEdgeStack(scope, c.Name+EdgeSuffix, c.Env, c.Edge)
		webACL = acl.AttrArn()
	}
	svc := NewService(scope, c.Name, &ServiceProps{
		StackProps: awscdk.StackProps{Env: c.Env, CrossRegionReferences: jsii.Bool(c.Edge != nil)},
		Data:       data,
		AssetDir:   c.AssetDir,
		AlarmEmail: c.AlarmEmail,
		Front:      c.Front,

		SecretPrefix:       c.SecretPrefix,
		LegacySecretPrefix: c.LegacySecretPrefix,
		IngestConcurrency:  c.IngestConcurrency,
		EdgeWebACLArn:      webACL,
	})
	stacks := []awscdk.Stack{data.Stack, svc.Stack}
	if edge != nil {
		svc.EdgeStack = edge
		stacks = append(stacks, edge)
	}
	for _, s := range stacks {
		// CloudFormation takes no tags on a dashboard.
		awscdk.Tags_Of(s).Add(jsii.String("app"), jsii.String("snowgate"), &awscdk.TagProps{
			ExcludeResourceTypes: jsii.Strings("AWS::CloudWatch::Dashboard"),
		})
	}
	return data, svc
}
