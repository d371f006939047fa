package broker

import (
	"context"
	"encoding/json"
	"net/url"
)

// Annotations are MCP tool annotations (hints for clients and policy).
type Annotations struct {
	Title           string `json:"title,omitempty"`
	ReadOnlyHint    *bool  `json:"readOnlyHint,omitempty"`
	DestructiveHint *bool  `json:"destructiveHint,omitempty"`
	IdempotentHint  *bool  `json:"idempotentHint,omitempty"`
	OpenWorldHint   *bool  `json:"openWorldHint,omitempty"`
}

// Tool is a declared, loaded tool: the unit a platform team writes.
type Tool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	Target       string          `json:"target"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	Annotations  Annotations     `json:"annotations"`
	// Mask maps gjson paths in the result to masking actions.
	Mask map[string]string `json:"mask,omitempty"`
	// Detectors switches masking detectors on or off for this tool's
	// results ("email": true turns the email detector on).
	Detectors map[string]bool `json:"detectors,omitempty"`
	// Source is the file the tool was declared in, for error messages.
	Source string `json:"-"`
	// Blocks is set for a tool whose result document is an MCP tool
	// result, {"content": [...], "structuredContent": {...}}: an upstream
	// MCP server's tool. The MCP door answers with its content blocks and
	// structured content rather than with the document as text.
	Blocks bool `json:"-"`

	// Spec validates arguments and turns them into an Operation. It is
	// provided by the tools package.
	Spec ToolSpec `json:"-"`
}

// ToolSpec is the compiled half of a tool declaration.
type ToolSpec interface {
	// ValidateArgs checks decoded arguments against the input schema and
	// returns an *Error with CodeInvalidArguments naming the field.
	ValidateArgs(args map[string]any) error
	// Operation binds validated arguments into the operation to execute.
	Operation(args map[string]any) (Operation, error)
}

// OutputChecker is an optional ability of a ToolSpec: the tool declares
// an output schema, and a connector's result must match it. The broker
// checks the result as the connector returned it, before masking (a mask
// may change a value's type: last4 or hash turn a number into a string),
// and a result that does not match is an internal failure: it is withheld
// and logged under an incident id.
type OutputChecker interface {
	// CheckOutput reports how doc breaks the output schema; nil when it
	// matches or the tool declares none.
	CheckOutput(doc json.RawMessage) error
}

// Catalog resolves tools by name.
type Catalog interface {
	Lookup(name string) (*Tool, bool)
	// Tools returns every tool, sorted by name.
	Tools() []*Tool
}

// Operation is what a connector executes: exactly one of SQL, HTTP or MCP
// is set.
type Operation struct {
	Target string
	SQL    *SQLOperation
	HTTP   *HTTPOperation
	MCP    *MCPOperation
	// Comment is context to attach to the operation for the target's own
	// logs (e.g. an SQLCommenter comment); connectors may ignore it.
	Comment map[string]string
}

// SQLOperation is a parameterized statement: arguments are bound, never
// spliced into the text.
type SQLOperation struct {
	Statement string
	Args      []any
	// MaxRows caps the rows returned; 0 means the target's default.
	MaxRows int
}

// HTTPOperation is a request relative to the target's base URL. The host
// always comes from the target.
type HTTPOperation struct {
	Method string
	// Path is already escaped and starts with "/".
	Path  string
	Query url.Values
	// Body is the JSON body, nil for none.
	Body json.RawMessage
}

// MCPOperation calls one tool of an upstream MCP server.
type MCPOperation struct {
	// Tool is the tool's name on the upstream server, before any prefix or
	// rename gave it its catalog name.
	Tool string
	// Args is the JSON object of arguments, validated against the tool's
	// input schema.
	Args json.RawMessage
}

// Output is what a connector returns.
type Output struct {
	// Value is the result document: {"rows": [...], "row_count": n,
	// "truncated": b} for SQL, {"status": code, "body": ...} for HTTP.
	Value json.RawMessage
	Rows  int
	Bytes int
}

// Executor runs operations against one target.
type Executor interface {
	Execute(ctx context.Context, op Operation) (Output, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, op Operation) (Output, error)

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, op Operation) (Output, error) { return f(ctx, op) }
