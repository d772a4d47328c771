package stack_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/infra/stack"
)

// statements returns the statements of a policy document.
func statements(policyDoc any) []map[string]any {
	d, _ := policyDoc.(map[string]any)
	var out []map[string]any
	switch st := d["Statement"].(type) {
	case []any:
		for _, s := range st {
			if m, ok := s.(map[string]any); ok {
				out = append(out, m)
			}
		}
	case map[string]any:
		out = append(out, st)
	}
	return out
}

func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

// resourceWildcardOK lists actions that support no resource-level
// permission, for which "*" is the narrowest resource. None is used today.
var resourceWildcardOK = map[string]bool{}

// wildcardProblems reports why an Allow statement grants more than named
// actions on named resources.
func wildcardProblems(st map[string]any) []string {
	if st["Effect"] != "Allow" {
		// Deny statements (the TLS-only queue policies) may be broad.
		return nil
	}
	var problems []string
	if st["NotAction"] != nil || st["NotResource"] != nil {
		problems = append(problems, "NotAction/NotResource in an Allow statement")
	}
	actions := list(st["Action"])
	allNeedStar := len(actions) > 0
	for _, a := range actions {
		s, _ := a.(string)
		if strings.Contains(s, "*") {
			problems = append(problems, fmt.Sprintf("wildcard action %q", s))
		}
		if !resourceWildcardOK[s] {
			allNeedStar = false
		}
	}
	for _, r := range list(st["Resource"]) {
		if r == "*" && !allNeedStar {
			problems = append(problems, fmt.Sprintf("resource \"*\" for %v", actions))
		}
	}
	return problems
}

func TestWildcardCheckerCatches(t *testing.T) {
	tests := []struct {
		name string
		st   map[string]any
		want int
	}{
		{"named action on an ARN", map[string]any{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:eu-west-1:1:q"}, 0},
		{"service wildcard", map[string]any{"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:eu-west-1:1:q"}, 1},
		{"full wildcard in a list", map[string]any{"Effect": "Allow", "Action": []any{"sqs:SendMessage", "*"}, "Resource": "arn:x"}, 1},
		{"resource star", map[string]any{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}, 1},
		{"resource star in a list", map[string]any{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": []any{"arn:x", "*"}}, 1},
		{"prefix wildcard", map[string]any{"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": "arn:x"}, 1},
		{"not action", map[string]any{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:x"}, 1},
		{"deny may be broad", map[string]any{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wildcardProblems(tt.st); len(got) != tt.want {
				t.Errorf("wildcardProblems(%v) = %q, want %d problem(s)", tt.st, got, tt.want)
			}
		})
	}
}

// Every policy in both stacks, identity and resource policies alike.
func TestNoWildcardPermissions(t *testing.T) {
	checked := 0
	for _, tmpl := range []struct {
		name string
		d    doc
	}{{"data", fx.dataDoc}, {"service", fx.svcDoc}, {"service (function URL)", fx.urlSvcDoc}, {"service (other settings)", fx.altSvcDoc}, {"edge", fx.edgeDoc}} {
		for id, r := range tmpl.d.resources("") {
			p := props(r)
			var docs []any
			switch r["Type"] {
			case "AWS::IAM::Policy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy":
				docs = append(docs, p["PolicyDocument"])
			case "AWS::IAM::Role":
				docs = append(docs, p["AssumeRolePolicyDocument"])
				for _, inline := range list(p["Policies"]) {
					docs = append(docs, inline.(map[string]any)["PolicyDocument"])
				}
				if m := list(p["ManagedPolicyArns"]); len(m) > 0 && !cdkCrossRegionRole(id, m) {
					t.Errorf("%s %s: managed policies %v (grant what is needed instead)", tmpl.name, id, m)
				}
			case "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group":
				t.Errorf("%s %s: unexpected %s", tmpl.name, id, r["Type"])
			case "AWS::Lambda::Permission":
				for _, problem := range permissionProblems(p) {
					t.Errorf("%s %s: %s", tmpl.name, id, problem)
				}
			}
			for _, d := range docs {
				for _, st := range statements(d) {
					checked++
					for _, problem := range wildcardProblems(st) {
						t.Errorf("%s %s: %s", tmpl.name, id, problem)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no policy statement found: the walker is broken")
	}
}

// cdkCrossRegionRole reports whether a role is the one CDK gives the
// custom resources behind a cross-region reference (the edge's web ACL,
// read from us-east-1), with only the basic execution policy CDK attaches
// to it; its inline statements are checked like every other.
func cdkCrossRegionRole(id string, managed []any) bool {
	return strings.HasPrefix(id, "CustomCrossRegionExport") && len(managed) == 1 &&
		strings.HasSuffix(fmt.Sprint(managed[0]), ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]")
}

// permissionProblems reports why a Lambda resource policy statement grants
// more than invoking a function from a named service, or through its
// function URL. Anyone may call a function URL with auth NONE (the webhook
// secret is the authentication), but only through the URL: the public
// lambda:InvokeFunction must carry lambda:InvokedViaFunctionUrl.
func permissionProblems(p map[string]any) []string {
	principal := fmt.Sprint(p["Principal"])
	switch a := fmt.Sprint(p["Action"]); {
	case a == "lambda:InvokeFunctionUrl":
		if p["FunctionUrlAuthType"] != "NONE" {
			return []string{fmt.Sprintf("InvokeFunctionUrl with auth type %v", p["FunctionUrlAuthType"])}
		}
	case a != "lambda:InvokeFunction":
		return []string{"lambda permission " + a}
	case principal == "*" && p["InvokedViaFunctionUrl"] != true:
		return []string{"lambda:InvokeFunction for everyone, not only through the function URL"}
	case principal == "*":
	case !strings.HasSuffix(principal, ".amazonaws.com"):
		return []string{"lambda:InvokeFunction for " + principal + ", not an AWS service"}
	}
	return nil
}

func TestPermissionCheckerCatches(t *testing.T) {
	tests := []struct {
		name string
		p    map[string]any
		want int
	}{
		{"API Gateway invokes", map[string]any{"Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com"}, 0},
		{"function URL, auth NONE", map[string]any{"Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"}, 0},
		{"invoke only through the URL", map[string]any{"Action": "lambda:InvokeFunction", "Principal": "*", "InvokedViaFunctionUrl": true}, 0},
		{"public invoke", map[string]any{"Action": "lambda:InvokeFunction", "Principal": "*"}, 1},
		{"another account", map[string]any{"Action": "lambda:InvokeFunction", "Principal": "123456789012"}, 1},
		{"function URL, IAM auth", map[string]any{"Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "AWS_IAM"}, 1},
		{"other action", map[string]any{"Action": "lambda:*", "Principal": "*"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := permissionProblems(tt.p); len(got) != tt.want {
				t.Errorf("permissionProblems(%v) = %q, want %d problem(s)", tt.p, got, tt.want)
			}
		})
	}
}

// The exact actions each function may perform, on top of writing its logs,
// whichever front receives the webhooks.
func TestFunctionPermissions(t *testing.T) {
	logs := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	sendQueue := []string{"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"}
	state := []string{"dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	want := map[string][]string{
		stack.Ingest: concat(logs, []string{"dynamodb:GetItem", "dynamodb:PutItem", "secretsmanager:GetSecretValue"}, sendQueue),
		stack.Processor: concat(logs, []string{"dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue"}, state, sendQueue,
			[]string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"}),
		stack.Reconciler: concat(logs, []string{"dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue"}, state, sendQueue),
		stack.Writer: concat(logs, []string{"secretsmanager:GetSecretValue"},
			[]string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
			[]string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}),
	}
	for _, f := range fronts() {
		for _, fn := range stack.Functions {
			t.Run(string(f.front)+"/"+fn, func(t *testing.T) {
				checkActions(t, f.d, fn, want[fn])
			})
		}
	}
}

// The writer's grants, statement by statement: which actions on which
// resource. It consumes the results queue and nothing else (no intake or
// dispatch queue, no SendMessage anywhere), reads the registry, reads and
// writes the state table, and reads the gateway credentials.
func TestWriterPermissionsExact(t *testing.T) {
	want := map[string][]string{
		"ResultsQueue Arn":  {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
		"RegistryTable Arn": {"dynamodb:GetItem"},
		"StateTable Arn":    {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
		// Of an index only a query means anything.
		"StateTable Arn/index/*":              {"dynamodb:Query"},
		"secret:snowgate/snowgate/gateways/*": {"secretsmanager:GetSecretValue"},
		"writerLogs Arn":                      {"logs:CreateLogStream", "logs:PutLogEvents"},
	}
	for _, f := range fronts() {
		t.Run(string(f.front), func(t *testing.T) {
			got := map[string][]string{}
			for _, pol := range f.d.resources("AWS::IAM::Policy") {
				if !strings.Contains(fmt.Sprint(props(pol)["Roles"]), stack.Writer+"Role") {
					continue
				}
				for _, st := range statements(props(pol)["PolicyDocument"]) {
					if st["Effect"] != "Allow" {
						t.Errorf("writer statement %v is not an Allow", st)
					}
					for _, r := range list(st["Resource"]) {
						key := resourceName(r)
						for _, a := range list(st["Action"]) {
							got[key] = uniqueSorted(append(got[key], a.(string)))
						}
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("writer grants by resource (-want +got):\n%s", diff)
			}
		})
	}
}

// resourceName reduces a policy resource (an ARN, an import of one, or a
// Fn::Join around either) to a readable key: "ResultsQueue Arn",
// "StateTable Arn/index/*", "secret:snowgate/snowgate/gateways/*".
func resourceName(r any) string {
	switch v := r.(type) {
	case string:
		if i := strings.Index(v, ":secret:"); i >= 0 {
			return v[i+1:]
		}
		return v
	case map[string]any:
		if imp, ok := v["Fn::ImportValue"]; ok {
			s := fmt.Sprint(imp)
			for _, name := range []string{"ResultsQueue", "ResultsDLQ", "DispatchQueue", "DispatchDLQ", "IntakeQueue", "IntakeDLQ", "RegistryTable", "StateTable"} {
				if strings.Contains(s, "FnGetAtt"+name+"Arn") {
					return name + " Arn"
				}
			}
			return s
		}
		if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			id := fmt.Sprint(ga[0])
			if strings.HasPrefix(id, stack.Writer+"Logs") {
				id = stack.Writer + "Logs"
			}
			return id + " " + fmt.Sprint(ga[1])
		}
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			var parts []string
			for _, part := range list(j[1]) {
				parts = append(parts, resourceName(part))
			}
			s := strings.Join(parts, fmt.Sprint(j[0]))
			if i := strings.LastIndex(s, "secret:"); i >= 0 && strings.Contains(fmt.Sprint(j[1]), ":secretsmanager:") {
				return s[i:]
			}
			return s
		}
	}
	return fmt.Sprint(r)
}

func checkActions(t *testing.T, d doc, fn string, want []string) {
	t.Helper()
	got := map[string]bool{}
	for _, pol := range d.resources("AWS::IAM::Policy") {
		if !strings.Contains(fmt.Sprint(props(pol)["Roles"]), fn+"Role") {
			continue
		}
		for _, st := range statements(props(pol)["PolicyDocument"]) {
			for _, a := range list(st["Action"]) {
				got[a.(string)] = true
			}
		}
	}
	gotList := make([]string, 0, len(got))
	for a := range got {
		gotList = append(gotList, a)
	}
	if diff := cmp.Diff(uniqueSorted(want), uniqueSorted(gotList)); diff != "" {
		t.Errorf("%s actions (-want +got):\n%s", fn, diff)
	}
}

// Each function reads one kind of secret, of its own stack: ingest the
// webhooks' signing keys, the others the gateways' credentials; and no
// other statement of any policy names Secrets Manager at all.
func TestSecretReadsExact(t *testing.T) {
	tests := []struct {
		name string
		d    doc
		keys []string // ingest's
		gws  []string // processor's, reconciler's and writer's
	}{
		{"default", fx.svcDoc, []string{"secret:snowgate/snowgate/webhooks/*"}, []string{"secret:snowgate/snowgate/gateways/*"}},
		{"function URL", fx.urlSvcDoc, []string{"secret:snowgate/snowgate/webhooks/*"}, []string{"secret:snowgate/snowgate/gateways/*"}},
		{"own and legacy prefix", fx.altSvcDoc,
			[]string{"secret:team-a/snowgate/webhooks/*", "secret:snowgate/webhooks/*"},
			[]string{"secret:team-a/snowgate/gateways/*", "secret:snowgate/gateways/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[string]map[string][]string{
				stack.Ingest:     {"secretsmanager:GetSecretValue": uniqueSorted(tt.keys)},
				stack.Processor:  {"secretsmanager:GetSecretValue": uniqueSorted(tt.gws)},
				stack.Reconciler: {"secretsmanager:GetSecretValue": uniqueSorted(tt.gws)},
				stack.Writer:     {"secretsmanager:GetSecretValue": uniqueSorted(tt.gws)},
			}
			if diff := cmp.Diff(want, secretGrants(t, tt.d)); diff != "" {
				t.Errorf("Secrets Manager grants by role, action and resource (-want +got):\n%s", diff)
			}
		})
	}
}

// secretGrants collects every statement of every policy in the template
// that names Secrets Manager, in an action or a resource: role (by
// function name, or the policy's logical id) → action → resources.
func secretGrants(t *testing.T, d doc) map[string]map[string][]string {
	t.Helper()
	got := map[string]map[string][]string{}
	for id, r := range d.resources("") {
		p := props(r)
		var docs []any
		switch r["Type"] {
		case "AWS::IAM::Policy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::SecretsManager::ResourcePolicy":
			docs = append(docs, p["PolicyDocument"], p["ResourcePolicy"])
		case "AWS::IAM::Role":
			for _, inline := range list(p["Policies"]) {
				docs = append(docs, inline.(map[string]any)["PolicyDocument"])
			}
		}
		owner := id
		for _, fn := range stack.Functions {
			if strings.Contains(fmt.Sprint(p["Roles"]), fn+"Role") {
				owner = fn
			}
		}
		for _, pd := range docs {
			for _, st := range statements(pd) {
				names := strings.Contains(fmt.Sprint(st["Action"], st["NotAction"]), "secretsmanager") ||
					strings.Contains(fmt.Sprint(st["Resource"], st["NotResource"]), ":secretsmanager:")
				if !names {
					continue
				}
				if st["Effect"] != "Allow" || st["NotAction"] != nil || st["NotResource"] != nil {
					t.Errorf("%s: unexpected Secrets Manager statement %v", id, st)
				}
				if got[owner] == nil {
					got[owner] = map[string][]string{}
				}
				for _, a := range list(st["Action"]) {
					for _, res := range list(st["Resource"]) {
						got[owner][a.(string)] = uniqueSorted(append(got[owner][a.(string)], resourceName(res)))
					}
				}
			}
		}
	}
	return got
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func uniqueSorted(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Lambda checks the role's permissions when CloudFormation creates an
// event source mapping, so the writer's policy must exist first: the
// mapping refers to the function, which depends on its role's policy.
func TestWriterPolicyBeforeItsEventSource(t *testing.T) {
	fn := function(t, stack.Writer)
	deps := fmt.Sprint(fn["DependsOn"])
	policy := ""
	for id, pol := range fx.svcDoc.resources("AWS::IAM::Policy") {
		if strings.Contains(fmt.Sprint(props(pol)["Roles"]), stack.Writer+"Role") {
			policy = id
		}
	}
	if policy == "" || !strings.Contains(deps, policy) {
		t.Errorf("writer function depends on %s, want its role's policy %q", deps, policy)
	}
}
