package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// upstreamFiles is an upstream MCP server whose tools are named files_*,
// with files_read pinned and not listed now (its server is down).
var upstreamFiles = []UpstreamTools{{Names: []string{"files_read"}, Prefix: "files_"}}

// TestUpstreamNamesMayJoin: a policy naming upstream tools that are not in
// the catalog now loads when the names may be theirs, and still reports a
// name that cannot be.
func TestUpstreamNamesMayJoin(t *testing.T) {
	node := func(n config.Node) map[string]config.Graph {
		return map[string]config.Graph{"g": {Principals: []string{"key:k"}, Nodes: map[string]config.Node{"n": n}}}
	}
	ok := []struct {
		name   string
		graphs map[string]config.Graph
	}{
		{"allow glob", node(config.Node{Allow: []string{"files_*"}})},
		{"allow pinned name", node(config.Node{Allow: []string{"files_read"}})},
		{"rule over pinned name", node(config.Node{Allow: []string{"files_*"}, Rules: []config.Rule{{Tool: "files_read", When: "args.path.startsWith('/etc')", Effect: "deny"}}})},
		{"bind pinned name", node(config.Node{Allow: []string{"files_read"}, Bind: map[string]map[string]string{"files_read": {"path": "scope.folder"}}})},
		{"budget glob", map[string]config.Graph{"g": {Budgets: config.Budgets{Tools: map[string]config.Budgets{"files_*": {CallsPerRun: 3}}}}}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{Graphs: tt.graphs, Catalog: testCatalog(), Upstream: upstreamFiles, Counters: NewMemoryCounters()}); err != nil {
				t.Fatal(err)
			}
		})
	}
	bad := []struct {
		name   string
		graphs map[string]config.Graph
		path   string
		reason string
	}{
		{"unpinned exact name", node(config.Node{Allow: []string{"files_raed"}}), "graphs.g.nodes.n.allow[0]", "matches no tool"},
		{"glob outside the prefix", node(config.Node{Allow: []string{"fils_*"}}), "graphs.g.nodes.n.allow[0]", "matches no tool"},
		{"rule outside the allow list", node(config.Node{Allow: []string{"crm_*"}, Rules: []config.Rule{{Tool: "files_read", Effect: "deny"}}}), "graphs.g.nodes.n.rules[0].tool", "do not widen"},
		{"bind unpinned name", node(config.Node{Allow: []string{"files_*"}, Bind: map[string]map[string]string{"files_raed": {"path": "scope.folder"}}}), "graphs.g.nodes.n.bind.files_raed", "no tool named"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Graphs: tt.graphs, Catalog: testCatalog(), Upstream: upstreamFiles})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("New = %v; want a *LoadError", err)
			}
			for _, p := range le.Problems {
				if p.Path == tt.path && strings.Contains(p.Reason, tt.reason) {
					return
				}
			}
			t.Fatalf("no problem at %s containing %q in:\n%v", tt.path, tt.reason, err)
		})
	}
	// expose: all: any name under the prefix may join.
	open := []UpstreamTools{{Prefix: "files_", Open: true}}
	if _, err := New(Config{Graphs: node(config.Node{Allow: []string{"files_raed"}}), Catalog: testCatalog(), Upstream: open}); err != nil {
		t.Errorf("an exact name under an open upstream's prefix: %v", err)
	}
}

// TestUpstreamRulesApplyWhenJoined: compiled again with the upstream tool
// in the catalog, the rule over its arguments decides its calls, and
// Allows answers for it by name while it is withheld.
func TestUpstreamRulesApplyWhenJoined(t *testing.T) {
	graphs := map[string]config.Graph{"g": {Principals: []string{"key:k"}, Nodes: map[string]config.Node{
		"n":    {Allow: []string{"files_*"}, Rules: []config.Rule{{Tool: "files_read", When: "args.path.startsWith('/etc')", Effect: "deny", Reason: "system files"}}},
		"deny": {Allow: []string{"files_*"}, Rules: []config.Rule{{Tool: "files_read", Effect: "deny"}}},
		"none": {Allow: []string{"crm_*"}},
	}}}
	down, err := New(Config{Graphs: graphs, Catalog: testCatalog(), Upstream: upstreamFiles})
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]bool{"n": true, "deny": false, "none": false} {
		if got := down.Allows(down.Node(caller("g", node, "r")), "files_read"); got != want {
			t.Errorf("Allows(%s, files_read) = %v, want %v", node, got, want)
		}
	}
	cat := testCatalog()
	cat["files_read"] = tool("files_read", "files", `{"type":"object","properties":{"path":{"type":"string"}}}`)
	up, err := New(Config{Graphs: graphs, Catalog: cat, Upstream: upstreamFiles})
	if err != nil {
		t.Fatal(err)
	}
	c := caller("g", "n", "r")
	dec, err := up.Decide(bgCtx(), broker.Request{Caller: c, Tool: cat["files_read"], Args: map[string]any{"path": "/etc/passwd"}})
	if err != nil || dec.Effect != broker.EffectDeny || dec.Rule != "graphs.g.nodes.n.rules[0]" {
		t.Fatalf("decision = %+v, %v; want the rule's deny", dec, err)
	}
	dec, err = up.Decide(bgCtx(), broker.Request{Caller: c, Tool: cat["files_read"], Args: map[string]any{"path": "/srv/a"}})
	if err != nil || dec.Effect != broker.EffectAllow {
		t.Fatalf("decision = %+v, %v; want allow", dec, err)
	}
	// The rule is typed by the tool's schema once it joins.
	bad := map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {Allow: []string{"files_*"}, Rules: []config.Rule{{Tool: "files_read", When: "args.path > 3", Effect: "deny"}}}}}}
	if _, err := New(Config{Graphs: bad, Catalog: testCatalog(), Upstream: upstreamFiles}); err != nil {
		t.Fatalf("before it joins: %v", err)
	}
	if _, err := New(Config{Graphs: bad, Catalog: cat, Upstream: upstreamFiles}); err == nil || !strings.Contains(err.Error(), "no matching overload") {
		t.Fatalf("after it joins: %v, want a type error", err)
	}
}
