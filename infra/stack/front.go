package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// Front is what receives ServiceNow's webhooks and invokes ingest with a
// payload format 2.0 event. Both fronts give the same base URL output
// (schema.OutputAPIURL): webhook URLs are <base>/api/webhooks/ingest/<path>.
type Front string

const (
	// FrontHTTPAPI is an API Gateway HTTP API with the single POST route,
	// stage throttling and access logs: the default, for AWS.
	FrontHTTPAPI Front = "http-api"
	// FrontFunctionURL is a Lambda function URL on ingest (auth NONE: the
	// webhook's secret or signature is the authentication, as behind the
	// HTTP API). It needs no API Gateway V2, which LocalStack offers only
	// on a paid plan; every path and method reaches ingest, which answers
	// them as it answers an unknown webhook.
	FrontFunctionURL Front = "function-url"
)

// Fronts lists the valid settings.
var Fronts = []Front{FrontHTTPAPI, FrontFunctionURL}

// ParseFront checks a setting; "" is the default, FrontHTTPAPI.
func ParseFront(s string) (Front, error) {
	if s == "" {
		return FrontHTTPAPI, nil
	}
	for _, f := range Fronts {
		if Front(s) == f {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown ingest front %q (want %s or %s)", s, FrontHTTPAPI, FrontFunctionURL)
}

// ingestFront is the built front: the base URL and the metrics the
// alarms and the dashboard read, whichever front it is.
type ingestFront struct {
	// baseURL has no trailing slash.
	baseURL *string
	// requests, serverErrors and clientErrors are counts (Sum); latency
	// and backendLatency take a statistic.
	requests, serverErrors, clientErrors func(*awscloudwatch.MetricOptions) awscloudwatch.Metric
	latency                              func(*awscloudwatch.MetricOptions) awscloudwatch.Metric
	// backendLatency is nil for a function URL: its latency is the function's.
	backendLatency func(*awscloudwatch.MetricOptions) awscloudwatch.Metric
}

func httpAPIFront(svc *Service) ingestFront {
	api := svc.API
	return ingestFront{
		baseURL:        api.ApiEndpoint(),
		requests:       api.MetricCount,
		serverErrors:   api.MetricServerError,
		clientErrors:   api.MetricClientError,
		latency:        api.MetricLatency,
		backendLatency: api.MetricIntegrationLatency,
	}
}

// Function URL metrics, in the AWS/Lambda namespace by FunctionName.
const (
	MetricURLRequests       = "UrlRequestCount"
	MetricURL4xx            = "Url4xxCount"
	MetricURL5xx            = "Url5xxCount"
	MetricURLLatency        = "UrlRequestLatency"
	lambdaNamespace         = "AWS/Lambda"
	lambdaFunctionDimension = "FunctionName"
)

func newFunctionURL(s awscdk.Stack, ingest awslambda.Function) (awslambda.FunctionUrl, ingestFront) {
	url := ingest.AddFunctionUrl(&awslambda.FunctionUrlOptions{
		AuthType:   awslambda.FunctionUrlAuthType_NONE,
		InvokeMode: awslambda.InvokeMode_BUFFERED,
	})
	// The URL ends with "/"; the output is a base URL without one, like
	// the HTTP API's endpoint. Scheme and host are kept as given, so that
	// LocalStack's http://…:4566 survives.
	parts := awscdk.Fn_Split(jsii.String("/"), url.Url(), nil)
	base := awscdk.Fn_Join(jsii.String(""), &[]*string{
		awscdk.Fn_Select(jsii.Number(0), parts), jsii.String("//"), awscdk.Fn_Select(jsii.Number(2), parts),
	})
	metric := func(name string) func(*awscloudwatch.MetricOptions) awscloudwatch.Metric {
		return func(o *awscloudwatch.MetricOptions) awscloudwatch.Metric {
			if o == nil {
				o = &awscloudwatch.MetricOptions{}
			}
			return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace:     jsii.String(lambdaNamespace),
				MetricName:    jsii.String(name),
				DimensionsMap: &map[string]*string{lambdaFunctionDimension: ingest.FunctionName()},
				Statistic:     o.Statistic,
				Period:        o.Period,
				Label:         o.Label,
			})
		}
	}
	return url, ingestFront{
		baseURL:      base,
		requests:     metric(MetricURLRequests),
		serverErrors: metric(MetricURL5xx),
		clientErrors: metric(MetricURL4xx),
		latency:      metric(MetricURLLatency),
	}
}
