package tools_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/tools"
)

func TestCompileSchemas(t *testing.T) {
	sp, err := tools.CompileSchemas("upstream tool echo",
		json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`),
		json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.ValidateArgs(map[string]any{"message": "hi"}); err != nil {
		t.Errorf("valid arguments refused: %v", err)
	}
	if err := sp.ValidateArgs(map[string]any{}); !errors.Is(err, broker.ErrInvalidArguments) {
		t.Errorf("missing argument: got %v, want invalid_arguments", err)
	}
	if err := sp.ValidateOutput(map[string]any{"n": "x"}); err == nil {
		t.Error("output that breaks the output schema was accepted")
	}
	if _, err := sp.Operation(map[string]any{"message": "hi"}); broker.CodeOf(err) != broker.CodeInternal {
		t.Errorf("Operation on a schema-only spec: got %v, want an internal refusal", err)
	}
}

func TestCompileSchemasProblems(t *testing.T) {
	for _, c := range []struct {
		name          string
		input, output string
		want          string
	}{
		{"missing input", ``, `{"type":"object"}`, "/input_schema: is required"},
		{"not an object schema", `{"type":"string"}`, ``, "/input_schema/type: must be \"object\""},
		{"unknown keyword", `{"type":"object","additionalProperty":false}`, ``, "/input_schema/additionalProperty: unknown JSON Schema keyword"},
		{"duplicate key", `{"type":"object","type":"object"}`, ``, "/input_schema/type: duplicate key"},
		{"external reference", `{"type":"object","properties":{"a":{"$ref":"http://example.com/s.json"}}}`, ``, "cannot be resolved"},
		{"bad output", `{"type":"object"}`, `{"type":"object","properties":{"a":{"type":"nope"}}}`, "/output_schema"},
		{"too deep", `{"type":"object","properties":` + strings.Repeat(`{"a":`, 70) + `{}` + strings.Repeat(`}`, 70) + `}`, ``, "nested more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp, err := tools.CompileSchemas("upstream tool t", json.RawMessage(c.input), json.RawMessage(c.output))
			var le *tools.LoadError
			if !errors.As(err, &le) || sp != nil {
				t.Fatalf("got %v, %v; want a *LoadError", sp, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "upstream tool t: /") {
				t.Errorf("error %q does not contain %q and the source (without a line)", err, c.want)
			}
		})
	}
}
