package policy

import (
	"errors"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

func TestGraphInfo(t *testing.T) {
	e, err := New(Config{Catalog: testCatalog(), Counters: NewMemoryCounters(), Graphs: map[string]config.Graph{
		"g": {
			ScopeSchema: map[string]any{"type": "object", "properties": map[string]any{"customer_id": map[string]any{"type": "integer"}}, "additionalProperties": false, "required": []any{"customer_id"}},
			Nodes:       map[string]config.Node{"refund": {}, "supervisor/*": {}},
		},
		"plain": {Nodes: map[string]config.Node{"n": {}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		graph, node string
		want        bool
	}{{"g", "refund", true}, {"g", "supervisor/research", true}, {"g", "triage", false}, {"g", "", false}, {"nope", "refund", false}} {
		if got := e.HasNode(c.graph, c.node); got != c.want {
			t.Errorf("HasNode(%s, %s) = %v", c.graph, c.node, got)
		}
	}
	if err := e.ValidateScope("g", map[string]any{"customer_id": 42}); err != nil {
		t.Errorf("valid scope refused: %v", err)
	}
	for name, c := range map[string]struct {
		graph string
		scope map[string]any
		field string
	}{
		"wrong type":      {"g", map[string]any{"customer_id": "42"}, "scope.customer_id"},
		"extra field":     {"g", map[string]any{"customer_id": 1, "tenant": "x"}, "scope"},
		"missing field":   {"g", map[string]any{}, "scope"},
		"no scope_schema": {"plain", map[string]any{"a": 1}, "scope"},
	} {
		err := e.ValidateScope(c.graph, c.scope)
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodeInvalidArguments || be.Field != c.field {
			t.Errorf("%s: err = %#v, want invalid_arguments on %s", name, err, c.field)
		}
	}
	if err := e.ValidateScope("plain", nil); err != nil {
		t.Errorf("empty scope on a graph without scope_schema: %v", err)
	}
}
