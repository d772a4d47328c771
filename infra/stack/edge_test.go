package stack_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/schema"
)

func TestParseEdge(t *testing.T) {
	tests := []struct {
		mode, rate, ips string
		want            *stack.Edge
		wantErr         bool
	}{
		{"", "", "", nil, false},
		{"none", "", "", nil, false},
		{"cloudfront", "", "", &stack.Edge{}, false},
		{"cloudfront", "500", "203.0.113.0/24, 198.51.100.7,2001:db8::/48", &stack.Edge{RateLimit: 500, AllowIPs: []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/48"}}, false},
		{"CloudFront", "", "", nil, true},
		{"waf", "", "", nil, true},
		{"", "500", "", nil, true},                      // settings of an edge that is off
		{"", "", "203.0.113.0/24", nil, true},           // likewise
		{"cloudfront", "5", "", nil, true},              // WAF's least limit is 10
		{"cloudfront", "1e3", "", nil, true},            // not a whole number
		{"cloudfront", "", "203.0.113.7/24", nil, true}, // host bits set
		{"cloudfront", "", "instance.example", nil, true},
	}
	for _, tt := range tests {
		got, err := stack.ParseEdge(tt.mode, tt.rate, tt.ips)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !cmp.Equal(tt.want, got)) {
			t.Errorf("ParseEdge(%q, %q, %q) = %+v, %v; want %+v, error %v", tt.mode, tt.rate, tt.ips, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCheckEdge(t *testing.T) {
	region := &awscdk.Environment{Region: jsii.String("eu-west-1")}
	tests := []struct {
		name string
		c    stack.Config
		ok   bool
	}{
		{"off", stack.Config{}, true},
		{"on", stack.Config{Env: region, Edge: &stack.Edge{}}, true},
		{"no region", stack.Config{Edge: &stack.Edge{}}, false},
		{"function URL front", stack.Config{Env: region, Front: stack.FrontFunctionURL, Edge: &stack.Edge{}}, false},
	}
	for _, tt := range tests {
		if err := stack.CheckEdge(tt.c); (err == nil) != tt.ok {
			t.Errorf("%s: CheckEdge = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// edgeTypes are the resource types the edge brings, on either side.
var edgeTypes = []string{"AWS::CloudFront::Distribution", "AWS::WAFv2::WebACL", "AWS::WAFv2::IPSet",
	"AWS::SecretsManager::Secret", "Custom::CrossRegionExportReader", "Custom::CrossRegionExportWriter"}

// Off (the default): no edge stack, no CloudFront, WAF, origin secret or
// cross-region machinery, ingest checks no origin header, and ApiUrl is the
// API's own.
func TestEdgeOff(t *testing.T) {
	if fx.defaultEdge != nil {
		t.Errorf("the default build has an edge stack")
	}
	for _, f := range fronts() {
		for _, typ := range edgeTypes {
			if n := len(f.d.resources(typ)); n != 0 {
				t.Errorf("%s front: %d %s resources, want none", f.front, n, typ)
			}
		}
		for id, fn := range f.d.resources("AWS::Lambda::Function") {
			if _, ok := envVars(fn)[schema.EnvOriginSecret]; ok {
				t.Errorf("%s front: function %s has %s", f.front, id, schema.EnvOriginSecret)
			}
		}
	}
	outputs, _ := fx.svcDoc["Outputs"].(map[string]any)
	if v := fmt.Sprint(outputs[schema.OutputAPIURL]); !strings.Contains(v, "ApiEndpoint") || strings.Contains(v, "DomainName") {
		t.Errorf("ApiUrl = %s, want the HTTP API's endpoint", v)
	}
}

// On: a distribution in front of the HTTP API, with the web ACL of the edge
// stack, passing every method and header but Host, caching nothing, and
// adding the origin header whose value ingest is given too; ApiUrl is the
// distribution's, so the CLI prints webhook URLs through the edge.
func TestEdgeOn(t *testing.T) {
	_, dist := fx.altSvcDoc.only(t, "AWS::CloudFront::Distribution")
	cfg := props(dist)["DistributionConfig"].(map[string]any)
	origins := list(cfg["Origins"])
	if len(origins) != 1 {
		t.Fatalf("%d origins, want 1", len(origins))
	}
	origin := origins[0].(map[string]any)
	apiID, _ := fx.altSvcDoc.only(t, "AWS::ApiGatewayV2::Api")
	wantDomain := map[string]any{"Fn::Select": []any{2.0, map[string]any{"Fn::Split": []any{"/", map[string]any{"Fn::GetAtt": []any{apiID, "ApiEndpoint"}}}}}}
	if diff := cmp.Diff(wantDomain, origin["DomainName"]); diff != "" {
		t.Errorf("origin domain (-want +got):\n%s", diff)
	}
	if p := origin["CustomOriginConfig"].(map[string]any)["OriginProtocolPolicy"]; p != "https-only" {
		t.Errorf("origin protocol %v, want https-only", p)
	}
	headers := list(origin["OriginCustomHeaders"])
	if len(headers) != 1 || headers[0].(map[string]any)["HeaderName"] != schema.OriginHeader {
		t.Fatalf("origin headers %v, want %s only", headers, schema.OriginHeader)
	}
	secretID, _ := fx.altSvcDoc.only(t, "AWS::SecretsManager::Secret")
	value := headers[0].(map[string]any)["HeaderValue"]
	if v := fmt.Sprint(value); !strings.Contains(v, "{{resolve:secretsmanager:") || !strings.Contains(v, secretID) {
		t.Errorf("origin header value %s, want a dynamic reference to %s", v, secretID)
	}
	var ingestEnv map[string]any
	for id, fn := range fx.altSvcDoc.resources("AWS::Lambda::Function") {
		vars := envVars(fn)
		if strings.HasPrefix(id, stack.Ingest) {
			ingestEnv = vars
		} else if _, ok := vars[schema.EnvOriginSecret]; ok {
			t.Errorf("function %s has %s; only ingest checks it", id, schema.EnvOriginSecret)
		}
	}
	if diff := cmp.Diff(value, ingestEnv[schema.EnvOriginSecret]); diff != "" {
		t.Errorf("ingest's %s differs from the header CloudFront sends (-header +ingest):\n%s", schema.EnvOriginSecret, diff)
	}
	behavior := cfg["DefaultCacheBehavior"].(map[string]any)
	got := map[string]any{
		"ViewerProtocolPolicy": behavior["ViewerProtocolPolicy"], "CachePolicyId": behavior["CachePolicyId"],
		"OriginRequestPolicyId": behavior["OriginRequestPolicyId"], "AllowsPOST": strings.Contains(fmt.Sprint(behavior["AllowedMethods"]), "POST"),
	}
	want := map[string]any{
		"ViewerProtocolPolicy": "https-only",
		// AWS's managed policies CachingDisabled and AllViewerExceptHostHeader.
		"CachePolicyId":         "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
		"OriginRequestPolicyId": "b689b0a8-53d0-40ab-baf2-68738e2966ac",
		"AllowsPOST":            true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default behavior (-want +got):\n%s", diff)
	}
	if acl := fmt.Sprint(cfg["WebACLId"]); !strings.Contains(acl, "ExportsReader") || !strings.Contains(acl, "WebACLArn") {
		t.Errorf("WebACLId = %s, want the edge stack's web ACL through the cross-region reader", acl)
	}
	outputs, _ := fx.altSvcDoc["Outputs"].(map[string]any)
	wantURL := map[string]any{"Fn::Join": []any{"", []any{"https://", map[string]any{"Fn::GetAtt": []any{onlyIDOf(t, fx.altSvcDoc, "AWS::CloudFront::Distribution"), "DomainName"}}}}}
	if diff := cmp.Diff(wantURL, outputs[schema.OutputAPIURL].(map[string]any)["Value"]); diff != "" {
		t.Errorf("ApiUrl (-want +got):\n%s", diff)
	}
	check(t, "distribution count", func() {
		fx.altSvc.ResourceCountIs(jsii.String("AWS::CloudFront::Distribution"), jsii.Number(1))
	})
}

// envVars are a function's environment variables (none for CDK's own).
func envVars(fn map[string]any) map[string]any {
	env, _ := props(fn)["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	return vars
}

func onlyIDOf(t *testing.T, d doc, typ string) string {
	t.Helper()
	id, _ := d.only(t, typ)
	return id
}

// The edge stack is in us-east-1 and holds the web ACL (scope CLOUDFRONT):
// first, only the listed addresses, IPv4 and IPv6 in a set each; then a
// per-address rate limit. Anything else is allowed.
func TestEdgeStack(t *testing.T) {
	if fx.edgeRegion != stack.EdgeRegion || fx.edgeName != "snowgate"+stack.EdgeSuffix {
		t.Errorf("edge stack %s in %s, want snowgate%s in %s", fx.edgeName, fx.edgeRegion, stack.EdgeSuffix, stack.EdgeRegion)
	}
	sets := map[string]any{}
	for id, r := range fx.edgeDoc.resources("AWS::WAFv2::IPSet") {
		p := props(r)
		if p["Scope"] != "CLOUDFRONT" {
			t.Errorf("IP set %s scope %v", id, p["Scope"])
		}
		sets[fmt.Sprint(p["IPAddressVersion"])] = p["Addresses"]
	}
	if diff := cmp.Diff(map[string]any{"IPV4": []any{"203.0.113.0/28", "198.51.100.7/32"}, "IPV6": []any{"2001:db8::/64"}}, sets); diff != "" {
		t.Errorf("IP sets (-want +got):\n%s", diff)
	}
	_, acl := fx.edgeDoc.only(t, "AWS::WAFv2::WebACL")
	p := props(acl)
	if p["Scope"] != "CLOUDFRONT" || fmt.Sprint(p["DefaultAction"]) != "map[Allow:map[]]" {
		t.Errorf("web ACL scope %v, default action %v; want CLOUDFRONT, Allow", p["Scope"], p["DefaultAction"])
	}
	rules := list(p["Rules"])
	if len(rules) != 2 {
		t.Fatalf("%d rules, want 2", len(rules))
	}
	allow, rate := rules[0].(map[string]any), rules[1].(map[string]any)
	if allow["Name"] != stack.EdgeRuleAllowList || allow["Priority"] != 0.0 || fmt.Sprint(allow["Action"]) != "map[Block:map[]]" {
		t.Errorf("first rule %v, want %s blocking, priority 0", allow, stack.EdgeRuleAllowList)
	}
	stmt := fmt.Sprint(allow["Statement"])
	for _, w := range []string{"NotStatement", "OrStatement", "InstanceAddressesIPV4", "InstanceAddressesIPV6"} {
		if !strings.Contains(stmt, w) {
			t.Errorf("allow-list statement %s lacks %s", stmt, w)
		}
	}
	wantRate := map[string]any{"AggregateKeyType": "IP", "EvaluationWindowSec": 300.0, "Limit": float64(altSettings.Edge.RateLimit)}
	if diff := cmp.Diff(wantRate, rate["Statement"].(map[string]any)["RateBasedStatement"]); diff != "" || rate["Name"] != stack.EdgeRuleRateLimit ||
		rate["Priority"] != 1.0 || fmt.Sprint(rate["Action"]) != "map[Block:map[]]" {
		t.Errorf("rate rule %v (-want +got):\n%s", rate, diff)
	}
}

// Without an allow-list, the web ACL has the rate limit only, at its
// default, and no IP set.
func TestEdgeStackWithoutAllowList(t *testing.T) {
	app := awscdk.NewApp(nil)
	s, _ := stack.NewEdgeStack(app, "e"+stack.EdgeSuffix, &awscdk.Environment{Region: jsii.String("eu-west-1")}, &stack.Edge{})
	d := toDoc(assertions.Template_FromStack(s, nil))
	if n := len(d.resources("AWS::WAFv2::IPSet")); n != 0 {
		t.Errorf("%d IP sets, want none", n)
	}
	_, acl := d.only(t, "AWS::WAFv2::WebACL")
	rules := list(props(acl)["Rules"])
	if len(rules) != 1 {
		t.Fatalf("%d rules, want the rate limit only", len(rules))
	}
	r := rules[0].(map[string]any)
	if r["Name"] != stack.EdgeRuleRateLimit || fmt.Sprint(r["Statement"]) != fmt.Sprintf("map[RateBasedStatement:map[AggregateKeyType:IP EvaluationWindowSec:300 Limit:%d]]", stack.DefaultEdgeRateLimit) {
		t.Errorf("rule %v, want the rate limit at %d", r, stack.DefaultEdgeRateLimit)
	}
}
