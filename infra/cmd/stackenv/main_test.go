package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEveryOutputHasAVariable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../../internal/schema/outputs.go", nil, 0)
	if err != nil {
		t.Fatalf("parse schema outputs: %v", err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			lit, ok := vs.Values[i].(*ast.BasicLit)
			if !strings.HasPrefix(name.Name, "Output") || !ok {
				continue
			}
			n++
			key, _ := strconv.Unquote(lit.Value)
			if envFor[key] == "" {
				t.Errorf("output %s (%s) has no environment variable", key, name.Name)
			}
		}
		return true
	})
	if n != len(envFor) {
		t.Errorf("schema has %d outputs, envFor maps %d", n, len(envFor))
	}
}

func TestRun(t *testing.T) {
	const outputs = `{"snowgate-data":{"X":"y"},"snowgate":{
		"ApiUrl":"https://abc.execute-api.localhost.localstack.cloud:4566","RegistryTableName":"reg","StateTableName":"st",
		"IntakeQueueUrl":"http://q/i","IntakeDLQUrl":"http://q/id","DispatchQueueUrl":"http://q/d","DispatchDLQUrl":"http://q/dd",
		"ResultsQueueUrl":"http://q/r","ResultsDLQUrl":"http://q/rd",
		"SecretPrefix":"snowgate/","AlarmTopicArn":"arn:aws:sns:us-east-1:000000000000:t"}}`
	tests := []struct {
		name    string
		stack   string
		want    string
		wantErr string
	}{
		{
			name:  "service stack",
			stack: "snowgate",
			want: `AWS_ENDPOINT_URL=http://localhost:4566
SNOWGATE_STACK=snowgate
SNOWGATE_API_URL=https://abc.execute-api.localhost.localstack.cloud:4566
SNOWGATE_DISPATCH_DLQ_URL=http://q/dd
SNOWGATE_DISPATCH_QUEUE_URL=http://q/d
SNOWGATE_INTAKE_DLQ_URL=http://q/id
SNOWGATE_INTAKE_QUEUE_URL=http://q/i
SNOWGATE_REGISTRY_TABLE=reg
SNOWGATE_RESULTS_DLQ_URL=http://q/rd
SNOWGATE_RESULTS_QUEUE_URL=http://q/r
SNOWGATE_SECRET_PREFIX=snowgate/
SNOWGATE_STATE_TABLE=st
`,
		},
		{name: "unknown stack", stack: "other", wantErr: `no outputs for stack "other"`},
		{name: "stack lacking outputs", stack: "snowgate-data", wantErr: "has no output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := run(strings.NewReader(outputs), &out, tt.stack, []string{"AWS_ENDPOINT_URL=http://localhost:4566"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run(%q) error = %v, want %q", tt.stack, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run(%q): %v", tt.stack, err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("run(%q) (-want +got):\n%s", tt.stack, diff)
			}
		})
	}
}
