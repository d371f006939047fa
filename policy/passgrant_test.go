package policy

import (
	"reflect"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// TestPassthroughAccess: the database lock sees the resolved node's entry
// (exact key before glob) with its declared role, and nothing for a node
// or target without one.
func TestPassthroughAccess(t *testing.T) {
	role := &config.PassthroughRole{User: "crm_reader", Password: "pw"}
	e := newEngine(t, map[string]config.Graph{"g": {Nodes: map[string]config.Node{
		"research/*": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"write", "read"}}}},
		"research/x": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read"}, Tables: []string{"Customers", "sales.*"}, Role: role}}},
	}}}, nil)
	caller := func(node string) broker.Caller { return broker.Caller{Context: broker.Context{Graph: "g", Node: node}} }
	got, ok := e.PassthroughAccess(caller("research/x"), "crm")
	want := PassAccess{Statements: []string{"read"}, Tables: []string{"customers", "sales.*"}, Role: role}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("exact node: %+v, %v", got, ok)
	}
	got, ok = e.PassthroughAccess(caller("research/y"), "crm")
	if !ok || !reflect.DeepEqual(got, PassAccess{Statements: []string{"read", "write"}}) || got.Tables != nil {
		t.Errorf("glob node: %+v, %v", got, ok)
	}
	if _, ok := e.PassthroughAccess(caller("research/y"), "billing"); ok {
		t.Error("access to a target the node has no entry for")
	}
	if _, ok := e.PassthroughAccess(caller("other"), "crm"); ok {
		t.Error("access for a node the graph does not declare")
	}
}
