package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaURL is the location each declaration schema is compiled under. It
// resolves to nothing: a schema may only reference itself.
const schemaURL = "toolgate:///schema.json"

// compiledSchema is an input or output schema checked at load.
type compiledSchema struct {
	schema   *jsonschema.Schema
	props    map[string]bool
	required map[string]bool
	// ints marks the integer-typed places (valueProblems).
	ints *intShape
}

// noLoader refuses every external schema reference, so compiling a
// declaration never reads a file or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("toolgate resolves no external schema references")
}

// compileSchema compiles raw (JSON Schema draft 2020-12 unless it says
// otherwise, with format assertions on) and checks that it describes an
// object. why says why it must be an object.
func compileSchema(ps *problems, raw json.RawMessage, path, why string) *compiledSchema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		ps.addf(path, "is not valid JSON: %v", err)
		return nil
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		ps.addf(path, "must be a JSON Schema object with \"type\": \"object\", got %s", jsonKind(raw))
		return nil
	}
	ok = true
	if t, present := obj["type"]; !present {
		ps.addf(pointer(path, "type"), "is required and must be \"object\": %s", why)
		ok = false
	} else if t != "object" {
		ps.addf(pointer(path, "type"), "must be \"object\": %s", why)
		ok = false
	}
	before := len(ps.list)
	checkKeywords(ps, obj, path, 0)
	if len(ps.list) > before {
		ok = false
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		ps.addf(path, "cannot be compiled: %s", cleanSchemaError(err.Error()))
		return nil
	}
	sch, err := compile(c)
	if err != nil {
		reportCompileError(ps, path, err)
		return nil
	}
	if !ok {
		return nil
	}
	out := &compiledSchema{schema: sch, props: map[string]bool{}, required: map[string]bool{}, ints: intShapeOf(obj, 0)}
	if props, isObj := obj["properties"].(map[string]any); isObj {
		for name := range props {
			out.props[name] = true
		}
	}
	if req, isArr := obj["required"].([]any); isArr {
		for _, r := range req {
			if name, isStr := r.(string); isStr {
				out.required[name] = true
			}
		}
	}
	return out
}

// compile runs the compiler, turning a panic inside the library on a
// hostile schema into an error: a declaration must never crash the broker.
func compile(c *jsonschema.Compiler) (sch *jsonschema.Schema, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the schema could not be compiled (%v)", r)
		}
	}()
	return c.Compile(schemaURL)
}

// reportCompileError turns a compile error into problems at precise paths.
func reportCompileError(ps *problems, path string, err error) {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			// The library walks maps, so its order varies: report the first
			// problem per location, sorted by location.
			reasons := map[string]string{}
			p := message.NewPrinter(language.English)
			for _, leaf := range leaves(ve) {
				at := path + jsonPointer(leaf.InstanceLocation)
				if _, seen := reasons[at]; !seen {
					reasons[at] = leaf.ErrorKind.LocalizedString(p)
				}
			}
			for _, at := range slices.Sorted(maps.Keys(reasons)) {
				ps.addf(at, "is not valid JSON Schema: %s", reasons[at])
			}
			return
		}
	}
	var lue *jsonschema.LoadURLError
	if errors.As(err, &lue) {
		ps.addf(path, "references %q, which cannot be resolved: toolgate loads no external schemas, so inline it under $defs", cleanSchemaError(lue.URL))
		return
	}
	ps.addf(path, "cannot be compiled: %s", cleanSchemaError(err.Error()))
}

// cleanSchemaError removes the internal schema URL from library messages.
func cleanSchemaError(s string) string {
	s = strings.ReplaceAll(s, schemaURL+"#", "#")
	return strings.ReplaceAll(s, schemaURL, "the schema")
}

// leaves returns the innermost errors of a validation error tree, in order.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// jsonPointer joins tokens into a JSON pointer ("" for none).
func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerToken(t))
	}
	return b.String()
}
