package tools

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no declaration, however malformed, panics Parse,
// and that a declaration Parse accepts yields a usable tool whose Spec
// survives arbitrary arguments.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/load/*/*.json")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"name": "a"}`, `{"sql": {"statement": "$"}}`,
		`{"name": "crm_x", "target": "crm", "input_schema": {"type": "object", "properties": {"a": {}}}, "sql": {"statement": "SELECT $1 /*", "args": ["a"]}}`,
		`{"name": "billing_x", "target": "billing", "input_schema": {"type": "object", "properties": {"a": {}}, "required": ["a"]}, "http": {"method": "POST", "path": "/{a}/{a}", "body": {"x": ["/a/0/~1", {"const": {}}]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tool, problems := Parse("fuzz.json", data, testTargets)
		if (tool == nil) == (len(problems) == 0) {
			t.Fatalf("Parse returned tool=%v with %d problems", tool != nil, len(problems))
		}
		for _, p := range problems {
			if p.File != "fuzz.json" || p.Reason == "" {
				t.Fatalf("malformed problem %#v", p)
			}
		}
		if tool == nil {
			return
		}
		if tool.Spec == nil || !namePattern.MatchString(tool.Name) {
			t.Fatalf("accepted tool %q without spec or with a bad name", tool.Name)
		}
		for _, args := range []map[string]any{nil, {}, {"a": "..", "id": "x/y", "order_id": []any{map[string]any{}}}} {
			_ = tool.Spec.ValidateArgs(args)
			op, err := tool.Spec.Operation(args)
			if err == nil && op.HTTP != nil && (len(op.HTTP.Path) < 1 || op.HTTP.Path[0] != '/' || (len(op.HTTP.Path) > 1 && op.HTTP.Path[1] == '/')) {
				t.Fatalf("operation path %q is not relative to the target", op.HTTP.Path)
			}
			plan, err := tool.Spec.(*Spec).PreviewPlan(args)
			if h := plan.Op.HTTP; err == nil && h != nil && (h.Method != "GET" || h.Body != nil || len(h.Path) < 1 || h.Path[0] != '/' || (len(h.Path) > 1 && h.Path[1] == '/')) {
				t.Fatalf("preview request %s %q is not a GET relative to the target", h.Method, h.Path)
			}
		}
	})
}
