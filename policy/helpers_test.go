package policy

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// nopSpec is a trivial ToolSpec: policy never validates or runs anything.
type nopSpec struct{}

func (nopSpec) ValidateArgs(map[string]any) error { return nil }
func (nopSpec) Operation(map[string]any) (broker.Operation, error) {
	return broker.Operation{}, nil
}

// catalog is a fake broker.Catalog built from tool literals.
type catalog map[string]*broker.Tool

func (c catalog) Lookup(name string) (*broker.Tool, bool) { t, ok := c[name]; return t, ok }
func (c catalog) Tools() []*broker.Tool {
	out := make([]*broker.Tool, 0, len(c))
	for _, t := range c {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func tool(name, target, schema string) *broker.Tool {
	return &broker.Tool{Name: name, Target: target, InputSchema: json.RawMessage(schema), Spec: nopSpec{}}
}

func yes() *bool { b := true; return &b }

func testCatalog() catalog {
	void := tool("billing_void", "billing", `{"type":"object","properties":{"order_id":{"type":"string"}}}`)
	void.Annotations.DestructiveHint = yes()
	c := catalog{}
	for _, t := range []*broker.Tool{
		tool("crm_find_customer", "crm", `{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}`),
		tool("crm_list_orders", "crm", `{"type":"object","properties":{"customer_id":{"type":"integer"},"limit":{"type":"integer"}}}`),
		tool("billing_refund", "billing", `{"type":"object","properties":{"customer_id":{"type":"integer"},"amount":{"type":"number"},"reason":{"type":"string"},"items":{"type":"array"}}}`),
		void,
	} {
		c[t.Name] = t
	}
	return c
}

// supportBot is the policy most tests use.
func supportBot() map[string]config.Graph {
	return map[string]config.Graph{
		"support-bot": {
			Principals:  []string{"key:support-bot", "group:langgraph-operators"},
			ScopeSchema: map[string]any{"type": "object", "properties": map[string]any{"customer_id": map[string]any{"type": "integer"}}},
			Rules: []config.Rule{
				{Tool: "billing_void", Effect: "deny", Reason: "voids are done by people"},
			},
			Nodes: map[string]config.Node{
				"triage": {Allow: []string{"crm_*"}},
				"refund": {
					Allow: []string{"billing_refund", "crm_find_customer"},
					Bind:  map[string]map[string]string{"billing_refund": {"customer_id": "scope.customer_id"}},
					Rules: []config.Rule{
						{Tool: "billing_refund", When: "args.amount > 100", Effect: "approve", Approvers: []string{"group:finance"}, MinApprovals: 2, Timeout: config.Duration(10 * time.Minute)},
						{Tool: "billing_refund", When: "args.amount > 1000", Effect: "deny", Reason: "refunds over 1000 go through finance"},
						{Tool: "crm_find_customer", When: `args.email.endsWith("@example.com")`, Effect: "allow"},
						{Tool: "crm_find_customer", When: `args.email == "ceo@example.com"`, Effect: "deny", Reason: "not the CEO"},
					},
				},
				"voider":              {Allow: []string{"billing_*"}},
				"*":                   {Allow: []string{"crm_find_customer"}},
				"tri*":                {Allow: []string{"crm_list_orders"}},
				"supervisor/*":        {Allow: []string{"crm_find_customer"}},
				"supervisor/research": {Allow: []string{"crm_list_orders"}},
			},
		},
	}
}

func newEngine(t testing.TB, graphs map[string]config.Graph, counters Counters) *Engine {
	t.Helper()
	e, err := New(Config{Graphs: graphs, Catalog: testCatalog(), Counters: counters})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func caller(graph, node, run string) broker.Caller {
	return broker.Caller{
		Principal: broker.Principal{Subject: "key:support-bot", Method: broker.AuthAPIKey, Groups: []string{"langgraph-operators"}},
		Context:   broker.Context{Graph: graph, Node: node, Run: run},
	}
}

// args decodes JSON the way the broker does: numbers as json.Number.
func args(t testing.TB, s string) map[string]any {
	t.Helper()
	if s == "" {
		return map[string]any{}
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("args %s: %v", s, err)
	}
	return m
}

var testNow = time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)

func request(t testing.TB, c broker.Caller, toolName, argJSON string) broker.Request {
	t.Helper()
	tl, ok := testCatalog().Lookup(toolName)
	if !ok {
		tl = tool(toolName, "nowhere", `{}`)
	}
	return broker.Request{Caller: c, Tool: tl, Args: args(t, argJSON), Now: testNow}
}

type (
	contextT  = context.Context
	durationT = time.Duration
)

func bgCtx() context.Context { return context.Background() }
