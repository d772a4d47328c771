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
	}{{"data", fx.dataDoc}, {"service", fx.svcDoc}} {
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
				if m := list(p["ManagedPolicyArns"]); len(m) > 0 {
					t.Errorf("%s %s: managed policies %v (grant what is needed instead)", tmpl.name, id, m)
				}
			case "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group":
				t.Errorf("%s %s: unexpected %s", tmpl.name, id, r["Type"])
			case "AWS::Lambda::Permission":
				if a := fmt.Sprint(p["Action"]); a != "lambda:InvokeFunction" {
					t.Errorf("%s %s: lambda permission %s", tmpl.name, id, a)
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

// The exact actions each function may perform, on top of writing its logs.
func TestFunctionPermissions(t *testing.T) {
	logs := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	sendQueue := []string{"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"}
	state := []string{"dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	want := map[string][]string{
		stack.Ingest: concat(logs, []string{"dynamodb:GetItem", "secretsmanager:GetSecretValue"}, sendQueue),
		stack.Processor: concat(logs, []string{"dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue"}, state, sendQueue,
			[]string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"}),
		stack.Reconciler: concat(logs, []string{"dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue"}, state, sendQueue),
	}
	for _, fn := range stack.Functions {
		t.Run(fn, func(t *testing.T) {
			got := map[string]bool{}
			for id, pol := range fx.svcDoc.resources("AWS::IAM::Policy") {
				if !strings.Contains(fmt.Sprint(props(pol)["Roles"]), fn+"Role") {
					continue
				}
				for _, st := range statements(props(pol)["PolicyDocument"]) {
					for _, a := range list(st["Action"]) {
						got[a.(string)] = true
					}
				}
				_ = id
			}
			gotList := make([]string, 0, len(got))
			for a := range got {
				gotList = append(gotList, a)
			}
			if diff := cmp.Diff(uniqueSorted(want[fn]), uniqueSorted(gotList)); diff != "" {
				t.Errorf("%s actions (-want +got):\n%s", fn, diff)
			}
		})
	}
}

func TestSecretsScopedToPrefix(t *testing.T) {
	found := 0
	for id, pol := range fx.svcDoc.resources("AWS::IAM::Policy") {
		for _, st := range statements(props(pol)["PolicyDocument"]) {
			if fmt.Sprint(st["Action"]) != "secretsmanager:GetSecretValue" {
				continue
			}
			found++
			if r := fmt.Sprint(st["Resource"]); !strings.Contains(r, ":secret:snowgate/*") {
				t.Errorf("%s: GetSecretValue on %s, want the snowgate/ prefix only", id, r)
			}
		}
	}
	if found != len(stack.Functions) {
		t.Errorf("%d GetSecretValue statements, want one per function (%d)", found, len(stack.Functions))
	}
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
