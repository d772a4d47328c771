package contract_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/docs"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
)

// schemaDoc reads a contract schema as plain JSON.
func schemaDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := docs.Contracts.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// resolve follows a local $ref ("#/$defs/ticket") within root.
func resolve(root, s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	v := any(root)
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		v = v.(map[string]any)[tok]
	}
	return v.(map[string]any)
}

var timeType = reflect.TypeFor[time.Time]()

// TestGoTypesMatchSchemas compares the Go types of the contracts with the
// schemas field by field: every json field is a property of the same JSON
// type, required exactly when it is not omitempty, and every property is a
// field. Nested types are compared where the schema refers to them, so
// the structs and the published files cannot drift apart.
func TestGoTypesMatchSchemas(t *testing.T) {
	events := schemaDoc(t, docs.EventSchema)
	results := schemaDoc(t, docs.ResultSchema)
	compareStruct(t, "job-event", events, events, reflect.TypeFor[queue.JobEvent]())
	compareStruct(t, "job-result", results, results, reflect.TypeFor[queue.JobResult]())
}

func compareStruct(t *testing.T, where string, root, s map[string]any, typ reflect.Type) {
	t.Helper()
	s = resolve(root, s)
	if s["type"] != "object" || s["additionalProperties"] != false {
		t.Errorf("%s: type %v, additionalProperties %v; want a closed object", where, s["type"], s["additionalProperties"])
	}
	props, _ := s["properties"].(map[string]any)
	var required []string
	for _, r := range s["required"].([]any) {
		required = append(required, r.(string))
	}
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		seen[name] = true
		at := where + "." + name
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s (Go %s.%s) is not in the schema", at, typ.Name(), f.Name)
			continue
		}
		if p["description"] == nil && resolve(root, p)["description"] == nil {
			t.Errorf("%s has no description", at)
		}
		omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
		if isRequired := slices.Contains(required, name); isRequired == omitempty {
			t.Errorf("%s: required = %v, but the Go field is omitempty = %v", at, isRequired, omitempty)
		}
		compareValue(t, at, root, p, f.Type)
	}
	for name := range props {
		if !seen[name] {
			t.Errorf("%s.%s is in the schema but not a field of Go %s", where, name, typ.Name())
		}
	}
}

func compareValue(t *testing.T, at string, root, p map[string]any, typ reflect.Type) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	p = resolve(root, p)
	jsonType := p["type"]
	if jsonType == nil {
		// An enum or a const: its values say the type.
		values, _ := p["enum"].([]any)
		if c, ok := p["const"]; ok {
			values = []any{c}
		}
		if len(values) == 0 {
			t.Errorf("%s has neither a type nor values", at)
			return
		}
		switch values[0].(type) {
		case string:
			jsonType = "string"
		case float64:
			jsonType = "integer"
		}
	}
	switch {
	case typ == timeType:
		if jsonType != "string" || p["format"] != "date-time" {
			t.Errorf("%s: schema type %v format %v, want a date-time string (Go time.Time)", at, jsonType, p["format"])
		}
	case typ.Kind() == reflect.String:
		if jsonType != "string" {
			t.Errorf("%s: schema type %v, want string (Go %s)", at, jsonType, typ)
		}
	case typ.Kind() == reflect.Int:
		if jsonType != "integer" {
			t.Errorf("%s: schema type %v, want integer (Go %s)", at, jsonType, typ)
		}
	case typ.Kind() == reflect.Bool:
		if jsonType != "boolean" {
			t.Errorf("%s: schema type %v, want boolean (Go %s)", at, jsonType, typ)
		}
	case typ.Kind() == reflect.Slice:
		if jsonType != "array" {
			t.Errorf("%s: schema type %v, want array (Go %s)", at, jsonType, typ)
			return
		}
		compareValue(t, at+"[]", root, p["items"].(map[string]any), typ.Elem())
	case typ.Kind() == reflect.Struct:
		compareStruct(t, at, root, p, typ)
	default:
		t.Errorf("%s: Go type %s has no rule in this test", at, typ)
	}
}

// TestSchemaValuesMatchGo compares the schemas' enums, constants and
// limits with the Go constants they stand for.
func TestSchemaValuesMatchGo(t *testing.T) {
	events := schemaDoc(t, docs.EventSchema)
	results := schemaDoc(t, docs.ResultSchema)
	props := func(s map[string]any) map[string]any { return s["properties"].(map[string]any) }
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	ev, res := props(events), props(results)

	// The reasons a job is created, as the then of job.created lists them.
	var createdReasons []string
	for _, branch := range events["allOf"].([]any) {
		b := branch.(map[string]any)
		ifProps := b["if"].(map[string]any)["properties"].(map[string]any)
		thenProps, _ := b["then"].(map[string]any)["properties"].(map[string]any)
		if ifProps["type"].(map[string]any)["const"] != queue.EventJobCreated || len(ifProps) != 1 {
			continue
		}
		if r, ok := thenProps["reason"].(map[string]any); ok {
			createdReasons = strs(r["enum"])
		}
	}
	tests := []struct {
		name         string
		schema, want any
	}{
		{"event types", strs(ev["type"].(map[string]any)["enum"]), queue.EventTypes},
		{"schema version", ev["schema_version"].(map[string]any)["const"], float64(queue.EventSchemaVersion)},
		{"tables", strs(ev["table"].(map[string]any)["enum"]), registry.EventTypes},
		{"sources", strs(ev["source"].(map[string]any)["enum"]),
			[]string{queue.SourceWebhook, queue.SourceReconcile, queue.SourceDeferred, queue.SourceCLI}},
		{"created reasons", createdReasons, []string{queue.ReasonNewRecord, queue.ReasonWindowOpened, queue.ReasonMention,
			queue.ReasonReopened, queue.ReasonReapproved, queue.ReasonUnlinked}},
		{"result statuses", strs(res["status"].(map[string]any)["enum"]), queue.ResultStatuses},
	}
	for _, f := range []string{"job_id", "result_id", "summary", "work_note", "public_comment", "close_code"} {
		tests = append(tests, struct {
			name         string
			schema, want any
		}{"maxLength of " + f, res[f].(map[string]any)["maxLength"], float64(queue.MaxResultText)})
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, tc.schema); diff != "" {
			t.Errorf("%s: schema differs from Go (-go +schema):\n%s", tc.name, diff)
		}
	}
}

// TestSchemaHeaders: both are draft 2020-12 and say, for engines, what
// becomes of fields a reader does not know.
func TestSchemaHeaders(t *testing.T) {
	for _, path := range []string{docs.EventSchema, docs.ResultSchema} {
		doc := schemaDoc(t, path)
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", path, doc["$schema"])
		}
		if d, _ := doc["description"].(string); !strings.Contains(d, "unknown") && !strings.Contains(d, "does not know") {
			t.Errorf("%s: the description does not say what happens to unknown fields", path)
		}
	}
}
