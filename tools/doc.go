// Package tools holds toolgate's tool catalog: it loads the JSON tool
// declarations a platform team writes (one file per tool), checks every rule
// at load time, compiles their JSON Schemas (santhosh-tekuri/jsonschema/v6)
// and turns validated call arguments into the broker.Operation a connector
// executes.
//
// Load reads a folder of declarations and reports every problem it finds,
// each with file, line, JSON path and reason, so `toolgate check` can list
// them all at once; with problems it still returns the catalog of what
// loaded (broken files stand in with a Spec that refuses every call), for
// cross-reference checks only. A declaration may name the shipped JSON
// Schema (package tools/schema) in "$schema"; the loader ignores it. A Catalog is immutable after construction and satisfies
// broker.Catalog. Each tool's compiled Spec satisfies broker.ToolSpec:
// ValidateArgs refuses bad arguments with a broker.CodeInvalidArguments
// error listing every problem with its field, and Operation binds
// arguments. It also satisfies broker.PreviewPlanner: PreviewPlan binds a
// declared preview query or request (or the tool's own statement, for a
// dry run) and refuses, with preview_unavailable and the declared reason,
// a tool that opts out with "preview": false. A preview request is always
// a GET.
//
// The package must never splice an argument into SQL text: a statement is
// fixed at load, its placeholders are $1..$n, and arguments only ever travel
// as bound values. It must never let an argument (or a declaration) choose the
// host of an HTTP request: a declaration holds only a path relative to its
// target, path values are escaped one segment each, and dot segments are
// refused. It must never echo an argument's value in an error message, since
// values may be secrets, and it resolves no external JSON Schema reference
// (no file or network access while compiling a schema).
package tools
