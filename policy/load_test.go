package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/internal/config"
)

// oneNode builds a graph "g" with one node "n" allowing tools and with the
// given node rules.
func oneNode(allow []string, rules ...config.Rule) map[string]config.Graph {
	return map[string]config.Graph{"g": {
		Principals: []string{"key:k"},
		Nodes:      map[string]config.Node{"n": {Allow: allow, Rules: rules}},
	}}
}

func TestLoadErrors(t *testing.T) {
	refundRule := func(when string) map[string]config.Graph {
		return oneNode([]string{"billing_refund"}, config.Rule{Tool: "billing_refund", When: when, Effect: "deny"})
	}
	tests := []struct {
		name   string
		graphs map[string]config.Graph
		path   string
		reason string
	}{
		{"syntax error", refundRule("args.amount >"), "graphs.g.nodes.n.rules[0].when", "syntax error"},
		{"unknown variable", refundRule("user.name == 'x'"), "graphs.g.nodes.n.rules[0].when", "undeclared reference to 'user'"},
		{"unknown caller field", refundRule("caller.nickname == 'x'"), "graphs.g.nodes.n.rules[0].when", "undeclared reference"},
		{"wrong type against schema", refundRule(`args.amount > "x"`), "graphs.g.nodes.n.rules[0].when", "no matching overload"},
		{"string property used as number", refundRule(`args.reason > 5`), "graphs.g.nodes.n.rules[0].when", "no matching overload"},
		{"non-bool result", refundRule("args.amount + 1.0"), "graphs.g.nodes.n.rules[0].when", "must be a bool, but it is a double"},
		{"unknown argument", refundRule("args.amont > 1"), "graphs.g.nodes.n.rules[0].when", "args.amont is not a property of the input schema of tool billing_refund"},
		{"unknown argument by index", refundRule(`args["amont"] > 1`), "graphs.g.nodes.n.rules[0].when", "args.amont is not a property"},
		{"unknown argument in has", refundRule(`has(args.amont)`), "graphs.g.nodes.n.rules[0].when", "args.amont is not a property"},
		{"rule names nonexistent tool", oneNode([]string{"billing_refund"}, config.Rule{Tool: "billing_refnd", Effect: "deny"}), "graphs.g.nodes.n.rules[0].tool", `"billing_refnd" matches no tool in the catalog`},
		{"rule outside allow list", oneNode([]string{"billing_refund"}, config.Rule{Tool: "crm_*", Effect: "allow"}), "graphs.g.nodes.n.rules[0].tool", "do not widen"},
		{"unknown effect", oneNode([]string{"billing_refund"}, config.Rule{Effect: "permit"}), "graphs.g.nodes.n.rules[0].effect", `unknown effect "permit"`},
		{"missing effect", oneNode([]string{"billing_refund"}, config.Rule{}), "graphs.g.nodes.n.rules[0].effect", "effect is required"},
		{"approve without approvers", oneNode([]string{"billing_refund"}, config.Rule{Effect: "approve"}), "graphs.g.nodes.n.rules[0].approvers", "at least one approver"},
		{"approvers on deny", oneNode([]string{"billing_refund"}, config.Rule{Effect: "deny", Approvers: []string{"group:x"}}), "graphs.g.nodes.n.rules[0]", "only to effect approve"},
		{"bad rule glob", oneNode([]string{"billing_refund"}, config.Rule{Tool: "[", Effect: "deny"}), "graphs.g.nodes.n.rules[0].tool", "not a valid glob"},
		{"allow names nothing", oneNode([]string{"nothing_*"}), "graphs.g.nodes.n.allow[0]", "matches no tool"},
		{"bad node glob", map[string]config.Graph{"g": {Nodes: map[string]config.Node{"a/[": {Allow: []string{"crm_*"}}}}}, "graphs.g.nodes.a/[", "not a valid glob"},
		{"graph rule unknown variable", map[string]config.Graph{"g": {Rules: []config.Rule{{When: "nope", Effect: "deny"}}}}, "graphs.g.rules[0].when", "undeclared reference to 'nope'"},
		{"unknown scope field", map[string]config.Graph{"g": {
			ScopeSchema: map[string]any{"properties": map[string]any{"customer_id": map[string]any{"type": "integer"}}},
			Rules:       []config.Rule{{Tool: "crm_find_customer", When: "scope.tenant == 'x'", Effect: "deny"}},
		}}, "graphs.g.rules[0].when", "scope.tenant is not a property of graphs.g.scope_schema"},
		{"scope typed by schema", map[string]config.Graph{"g": {
			ScopeSchema: map[string]any{"properties": map[string]any{"customer_id": map[string]any{"type": "integer"}}},
			Rules:       []config.Rule{{Tool: "crm_find_customer", When: "scope.customer_id == 'x'", Effect: "deny"}},
		}}, "graphs.g.rules[0].when", "no matching overload"},
		{"bind unknown tool", map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {Allow: []string{"billing_refund"}, Bind: map[string]map[string]string{"billing_refnd": {"customer_id": "scope.customer_id"}}}}}}, "graphs.g.nodes.n.bind.billing_refnd", "no tool named"},
		{"bind unknown argument", map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {Allow: []string{"billing_refund"}, Bind: map[string]map[string]string{"billing_refund": {"customer": "scope.customer_id"}}}}}}, "graphs.g.nodes.n.bind.billing_refund.customer", "not a property"},
		{"bind not from scope", map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {Allow: []string{"billing_refund"}, Bind: map[string]map[string]string{"billing_refund": {"customer_id": "args.x"}}}}}}, "graphs.g.nodes.n.bind.billing_refund.customer_id", "must name a scope field"},
		{"bind tool not allowed", map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {Allow: []string{"crm_*"}, Bind: map[string]map[string]string{"billing_refund": {"customer_id": "scope.customer_id"}}}}}}, "graphs.g.nodes.n.bind.billing_refund", "not in this node's allow list"},
		{"negative budget", map[string]config.Graph{"g": {Budgets: config.Budgets{CallsPerRun: -1}}}, "graphs.g.budgets.calls_per_run", "must not be negative"},
		{"budget tool names nothing", map[string]config.Graph{"g": {Budgets: config.Budgets{Tools: map[string]config.Budgets{"x_*": {CallsPerRun: 1}}}}}, "graphs.g.budgets.tools.x_*", "matches no tool"},
		{"budgets without counters", map[string]config.Graph{"g": {Budgets: config.Budgets{CallsPerRun: 3}}}, "graphs", "no budget counter store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(Config{Graphs: tt.graphs, Catalog: testCatalog()})
			var le *LoadError
			if !errors.As(err, &le) || e != nil {
				t.Fatalf("New = %v, %v; want a *LoadError", e, err)
			}
			for _, p := range le.Problems {
				if p.Path == tt.path && strings.Contains(p.Reason, tt.reason) {
					return
				}
			}
			t.Fatalf("no problem at %s containing %q in:\n%v", tt.path, tt.reason, err)
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	g := map[string]config.Graph{
		"a": {Nodes: map[string]config.Node{"n": {Allow: []string{"nothing"}, Rules: []config.Rule{{Effect: "maybe"}}}}},
		"b": {Rules: []config.Rule{{Tool: "billing_refund", When: "args.amount > 'x'", Effect: "deny"}, {Tool: "billing_refund", When: "1 +", Effect: "deny"}}},
	}
	_, err := New(Config{Graphs: g, Catalog: testCatalog()})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want *LoadError, got %v", err)
	}
	want := []string{"graphs.a.nodes.n.allow[0]", "graphs.a.nodes.n.rules[0].effect", "graphs.a.nodes.n.rules[0].tool", "graphs.b.rules[0].when", "graphs.b.rules[1].when"}
	var got []string
	for _, p := range le.Problems {
		got = append(got, p.Path)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("problems at %v, want %v\n%v", got, want, err)
	}
}

func TestLoadAcceptsMultiToolRule(t *testing.T) {
	// A rule over several tools may read an argument only some declare,
	// guarded by has().
	g := map[string]config.Graph{"g": {Rules: []config.Rule{{Tool: "crm_*", When: "has(args.customer_id) && args.customer_id == 7", Effect: "deny"}}}}
	if _, err := New(Config{Graphs: g, Catalog: testCatalog()}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadWithoutCatalog(t *testing.T) {
	_, err := New(Config{Graphs: supportBot()})
	var le *LoadError
	if !errors.As(err, &le) || le.Problems[0].Path != "tools" {
		t.Fatalf("want a problem at tools, got %v", err)
	}
}
