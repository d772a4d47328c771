package stack

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/internal/schema"
)

// Edge puts CloudFront with AWS WAF in front of the HTTP API. API Gateway
// HTTP APIs take no web ACL, so WAF goes on a CloudFront distribution whose
// origin is the API; CloudFront adds schema.OriginHeader with a secret the
// stack generates, and ingest refuses requests without it (the API's own
// endpoint stays up, but answers 401 to whoever calls it directly). A web
// ACL for CloudFront must be created in us-east-1: it lives in a stack of
// its own there, <name>-edge (EdgeSuffix), whose ARN the service stack
// reads through CDK's cross-region references.
type Edge struct {
	// RateLimit is how many requests one address may send in 5 minutes
	// before WAF blocks it for a while; 0 is DefaultEdgeRateLimit.
	RateLimit int
	// AllowIPs, when not empty, are the only addresses let through (CIDR
	// blocks, IPv4 or IPv6): the ServiceNow instance's egress addresses.
	AllowIPs []string
}

// EdgeSuffix turns the service stack's name into the edge stack's.
const EdgeSuffix = "-edge"

// EdgeRegion is where CloudFront's web ACLs live.
const EdgeRegion = "us-east-1"

// DefaultEdgeRateLimit: a busy instance sends its webhooks from a few
// egress addresses, so the per-address limit sits well above its peak (20
// requests a second, against the HTTP API's ThrottleRateLimit of 100 for
// all callers) and only stops a flood.
const DefaultEdgeRateLimit = 6000

// Edge construct ids and metric names, the tests look them up.
const (
	EdgeRuleRateLimit = "RateLimitPerAddress"
	EdgeRuleAllowList = "OnlyTheInstance"
)

// ParseEdge reads the settings: mode "" or "none" (no edge) or "cloudfront";
// rateLimit "" or a number of requests per 5 minutes; allowIPs a
// comma-separated list of CIDR blocks or addresses.
func ParseEdge(mode, rateLimit, allowIPs string) (*Edge, error) {
	switch mode {
	case "", "none":
		if rateLimit != "" || allowIPs != "" {
			return nil, fmt.Errorf("edgeRateLimit and edgeAllowIPs need edge=cloudfront")
		}
		return nil, nil
	case "cloudfront":
	default:
		return nil, fmt.Errorf("unknown edge %q (want none or cloudfront)", mode)
	}
	e := &Edge{}
	if rateLimit != "" {
		if _, err := fmt.Sscanf(rateLimit, "%d", &e.RateLimit); err != nil || fmt.Sprint(e.RateLimit) != rateLimit {
			return nil, fmt.Errorf("edgeRateLimit %q: want a number", rateLimit)
		}
	}
	for _, s := range strings.Split(allowIPs, ",") {
		if s = strings.TrimSpace(s); s != "" {
			e.AllowIPs = append(e.AllowIPs, s)
		}
	}
	return e, e.check()
}

func (e *Edge) rateLimit() int {
	if e.RateLimit == 0 {
		return DefaultEdgeRateLimit
	}
	return e.RateLimit
}

// check validates the settings. WAF takes a rate limit of 10 to 2e9.
func (e *Edge) check() error {
	if n := e.rateLimit(); n < 10 || n > 2_000_000_000 {
		return fmt.Errorf("edge rate limit %d: want 10 to 2000000000 requests per 5 minutes", n)
	}
	for _, s := range e.AllowIPs {
		if _, err := parsePrefix(s); err != nil {
			return err
		}
	}
	return nil
}

// parsePrefix reads a CIDR block, or an address as its one-address block.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("edge allow-list %q: host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("edge allow-list %q: not an address or CIDR block", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// NewEdgeStack builds the edge stack in EdgeRegion: the web ACL and its
// IP sets. Build calls it when Config.Edge is set.
func NewEdgeStack(scope constructs.Construct, id string, env *awscdk.Environment, e *Edge) (awscdk.Stack, awswafv2.CfnWebACL) {
	s := awscdk.NewStack(scope, &id, &awscdk.StackProps{
		Env:                   &awscdk.Environment{Account: env.Account, Region: jsii.String(EdgeRegion)},
		Description:           jsii.String("snowgate edge: the AWS WAF web ACL of the ingest CloudFront distribution (us-east-1, as CloudFront requires)"),
		CrossRegionReferences: jsii.Bool(true),
	})
	visibility := func(name string) *awswafv2.CfnWebACL_VisibilityConfigProperty {
		return &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true),
			MetricName:               jsii.String(name),
			SampledRequestsEnabled:   jsii.Bool(true),
		}
	}
	block := &awswafv2.CfnWebACL_RuleActionProperty{Block: &awswafv2.CfnWebACL_BlockActionProperty{}}
	var rules []interface{}
	if len(e.AllowIPs) > 0 {
		byVersion := map[string][]*string{}
		for _, a := range e.AllowIPs {
			p, _ := parsePrefix(a) // checked by ParseEdge
			v := "IPV4"
			if p.Addr().Is6() {
				v = "IPV6"
			}
			byVersion[v] = append(byVersion[v], jsii.String(p.String()))
		}
		var refs []interface{}
		for _, v := range []string{"IPV4", "IPV6"} {
			addrs := byVersion[v]
			if len(addrs) == 0 {
				continue
			}
			set := awswafv2.NewCfnIPSet(s, jsii.String("InstanceAddresses"+v), &awswafv2.CfnIPSetProps{
				Scope:            jsii.String("CLOUDFRONT"),
				IpAddressVersion: jsii.String(v),
				Addresses:        &addrs,
				Description:      jsii.String("the ServiceNow instance egress addresses"),
			})
			refs = append(refs, &awswafv2.CfnWebACL_StatementProperty{
				IpSetReferenceStatement: &awswafv2.CfnWebACL_IPSetReferenceStatementProperty{Arn: set.AttrArn()},
			})
		}
		from := refs[0]
		if len(refs) > 1 {
			from = &awswafv2.CfnWebACL_StatementProperty{OrStatement: &awswafv2.CfnWebACL_OrStatementProperty{Statements: &refs}}
		}
		rules = append(rules, &awswafv2.CfnWebACL_RuleProperty{
			Name:             jsii.String(EdgeRuleAllowList),
			Priority:         jsii.Number(len(rules)),
			Action:           block,
			VisibilityConfig: visibility(EdgeRuleAllowList),
			Statement: &awswafv2.CfnWebACL_StatementProperty{
				NotStatement: &awswafv2.CfnWebACL_NotStatementProperty{Statement: from},
			},
		})
	}
	rules = append(rules, &awswafv2.CfnWebACL_RuleProperty{
		Name:             jsii.String(EdgeRuleRateLimit),
		Priority:         jsii.Number(len(rules)),
		Action:           block,
		VisibilityConfig: visibility(EdgeRuleRateLimit),
		Statement: &awswafv2.CfnWebACL_StatementProperty{
			RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
				Limit:               jsii.Number(e.rateLimit()),
				AggregateKeyType:    jsii.String("IP"),
				EvaluationWindowSec: jsii.Number(300),
			},
		},
	})
	acl := awswafv2.NewCfnWebACL(s, jsii.String("WebACL"), &awswafv2.CfnWebACLProps{
		Scope:            jsii.String("CLOUDFRONT"),
		Description:      jsii.String("snowgate ingest, a rate limit per address and, when listed, only the instance egress addresses"),
		DefaultAction:    &awswafv2.CfnWebACL_DefaultActionProperty{Allow: &awswafv2.CfnWebACL_AllowActionProperty{}},
		VisibilityConfig: visibility("snowgate-ingest"),
		Rules:            &rules,
	})
	return s, acl
}

// newDistribution puts CloudFront in front of the HTTP API, with the web
// ACL, and returns the base URL webhooks are to use and the origin secret
// ingest checks.
func newDistribution(s awscdk.Stack, svc *Service, webACLArn *string) (baseURL, originSecret *string) {
	secret := awssecretsmanager.NewSecret(s, jsii.String("EdgeOriginSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("snowgate: the value CloudFront sends ingest in " + schema.OriginHeader + " (rotate: put a new value, redeploy)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(48),
			ExcludePunctuation: jsii.Bool(true),
		},
	})
	// Resolved by CloudFormation at deploy time, into the distribution's
	// origin header and ingest's environment: no function reads it.
	originSecret = secret.SecretValue().UnsafeUnwrap()
	host := awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), svc.API.ApiEndpoint(), nil))
	dist := awscloudfront.NewDistribution(s, jsii.String("Edge"), &awscloudfront.DistributionProps{
		Comment: jsii.String("snowgate ingest edge: " + *s.StackName()),
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin: awscloudfrontorigins.NewHttpOrigin(host, &awscloudfrontorigins.HttpOriginProps{
				ProtocolPolicy: awscloudfront.OriginProtocolPolicy_HTTPS_ONLY,
				CustomHeaders:  &map[string]*string{schema.OriginHeader: originSecret},
			}),
			AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_ALL(),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
			CachePolicy:          awscloudfront.CachePolicy_CACHING_DISABLED(),
			// API Gateway routes by its own Host; the rest of the request
			// (the webhook's secret or signature headers) goes through.
			OriginRequestPolicy: awscloudfront.OriginRequestPolicy_ALL_VIEWER_EXCEPT_HOST_HEADER(),
		},
		WebAclId:   webACLArn,
		PriceClass: awscloudfront.PriceClass_PRICE_CLASS_100,
	})
	return jsii.String("https://" + *dist.DistributionDomainName()), originSecret
}
