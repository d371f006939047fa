package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/toolgate/toolgate/broker"
)

// HasGraph reports whether graph is declared (broker.GraphIndex).
func (e *Engine) HasGraph(graph string) bool { return e.graphs[graph] != nil }

// NodeKeys returns graph's node keys, exact paths and globs, sorted
// (broker.GraphIndex); nil for an undeclared graph.
func (e *Engine) NodeKeys(graph string) []string {
	gp := e.graphs[graph]
	if gp == nil {
		return nil
	}
	keys := slices.Collect(maps.Keys(gp.exact))
	for _, np := range gp.globs {
		keys = append(keys, np.key)
	}
	slices.Sort(keys)
	return keys
}

// HasNode reports whether graph has a node entry matching node, exactly or
// by glob. Grants can be minted only for such nodes.
func (e *Engine) HasNode(graph, node string) bool {
	gp := e.graphs[graph]
	if gp == nil || node == "" {
		return false
	}
	if gp.exact[node] != nil {
		return true
	}
	for _, np := range gp.globs {
		if ok, _ := path.Match(np.key, node); ok {
			return true
		}
	}
	return false
}

// ValidateScope checks a grant scope against the graph's scope_schema. A
// graph without a scope_schema accepts only an empty scope, so a scope is
// never trusted without a declaration. The error is invalid_arguments
// naming the first offending field as "scope.<field>".
func (e *Engine) ValidateScope(graph string, scope map[string]any) error {
	gp := e.graphs[graph]
	if gp == nil {
		return broker.Errorf(broker.CodeForbidden, "no graph named %q", graph)
	}
	if gp.scopeSchema == nil {
		if len(scope) > 0 {
			return &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope", Message: fmt.Sprintf("graph %s declares no scope_schema, so grants for it cannot carry a scope", graph)}
		}
		return nil
	}
	if scope == nil {
		scope = map[string]any{}
	}
	// Validate the JSON form, so numbers are checked as JSON numbers.
	raw, err := json.Marshal(scope)
	if err != nil {
		return &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope", Message: "the scope is not representable as JSON"}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope", Message: "the scope is not valid JSON"}
	}
	err = gp.scopeSchema.Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil {
		return nil
	}
	if !errors.As(err, &ve) {
		return &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope", Message: "the scope does not match the graph's scope_schema"}
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	field := "scope"
	if len(ve.InstanceLocation) > 0 {
		field += "." + strings.Join(ve.InstanceLocation, ".")
	}
	return &broker.Error{Code: broker.CodeInvalidArguments, Field: field, Message: fmt.Sprintf("%s: %s (graphs.%s.scope_schema)", field, ve.ErrorKind.LocalizedString(message.NewPrinter(language.English)), graph)}
}

func compileScopeSchema(schema map[string]any) (*jsonschema.Schema, error) {
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("scope.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("scope.json")
}
