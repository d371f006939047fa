package tools

import "encoding/json"

// CompileSchemas compiles the input schema and, when present, the output
// schema of a tool that is not declared in a file here, such as an upstream
// MCP server's tool, by the rules Load applies to a declaration's schemas:
// well-formed JSON without duplicate keys or deep nesting, a JSON Schema
// object of "type": "object" (draft 2020-12 unless $schema says otherwise),
// format assertions on, unknown keywords refused and no external reference
// resolved. source names the tool in problems.
//
// The Spec it returns validates arguments and results; it has no operation
// of its own, so its Operation method refuses. On any problem it returns a
// *LoadError listing them all.
func CompileSchemas(source string, input, output json.RawMessage) (*Spec, error) {
	ps := &problems{file: source, lines: map[string]int{}}
	sp := &Spec{}
	if len(input) == 0 {
		ps.addf("/input_schema", "is required: a tool's arguments are described by a JSON Schema with \"type\": \"object\"")
	} else if schemaSyntax(ps, input, "/input_schema") {
		if in := compileSchema(ps, input, "/input_schema", "tool arguments are a JSON object"); in != nil {
			sp.input, sp.ints = in.schema, in.ints
		}
	}
	if len(output) > 0 && schemaSyntax(ps, output, "/output_schema") {
		if out := compileSchema(ps, output, "/output_schema", "MCP structured results are JSON objects"); out != nil {
			sp.output = out.schema
		}
	}
	if len(ps.list) > 0 {
		for i := range ps.list {
			ps.list[i].Line = 0 // the schema is not a file a person edits
		}
		return nil, &LoadError{Problems: ps.list}
	}
	return sp, nil
}

// schemaSyntax runs checkSyntax on a schema document and reports its
// problems under path.
func schemaSyntax(ps *problems, raw json.RawMessage, path string) bool {
	sub := &problems{file: ps.file, lines: map[string]int{}}
	ok := checkSyntax(sub, raw)
	for _, p := range sub.list {
		p.Path = path + p.Path
		ps.list = append(ps.list, p)
	}
	return ok && len(sub.list) == 0
}
