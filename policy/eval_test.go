package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// refundPolicy is one node "n" of graph "g" that allows billing_refund and
// carries rules.
func refundPolicy(rules ...config.Rule) map[string]config.Graph {
	return oneNode([]string{"billing_refund", "crm_find_customer"}, rules...)
}

func TestDecideFailsClosedOnEvaluationError(t *testing.T) {
	tests := []struct {
		name  string
		rules []config.Rule
		args  string
		rule  string
		cause string
	}{
		{
			// amount is optional: a deny rule that cannot be evaluated
			// must refuse, never be skipped.
			name:  "missing argument in deny rule",
			rules: []config.Rule{{Tool: "billing_refund", When: "args.amount > 10", Effect: "deny"}},
			args:  `{"reason": "late"}`,
			rule:  "graphs.g.nodes.n.rules[0]",
			cause: "no such attribute",
		},
		{
			name:  "missing argument in allow rule",
			rules: []config.Rule{{Tool: "billing_refund", When: "args.amount < 10", Effect: "allow"}},
			args:  `{}`,
			rule:  "graphs.g.nodes.n.rules[0]",
		},
		{
			name:  "runaway cost",
			rules: []config.Rule{{Tool: "billing_refund", When: "args.items.all(x, args.items.all(y, x == y || x != y))", Effect: "deny"}},
			args:  `{"items": [` + strings.Repeat(`"a",`, 2000) + `"a"]}`,
			rule:  "graphs.g.nodes.n.rules[0]",
			cause: "cost limit exceeded",
		},
		{
			name:  "runaway cost from a list built at evaluation time",
			rules: []config.Rule{{Tool: "billing_refund", When: "args.items.map(x, args.items.map(y, x + y)).size() > 0", Effect: "allow"}},
			args:  `{"items": [` + strings.Repeat(`"ab",`, 1000) + `"a"]}`,
			rule:  "graphs.g.nodes.n.rules[0]",
			cause: "cost limit exceeded",
		},
		{
			name:  "division by zero",
			rules: []config.Rule{{Tool: "billing_refund", When: "args.amount / 0.0 > 1.0 && 1 / (size(args.reason) - 4) > 0", Effect: "deny"}},
			args:  `{"amount": 1, "reason": "late"}`,
			rule:  "graphs.g.nodes.n.rules[0]",
			cause: "division by zero",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, refundPolicy(tt.rules...), nil)
			d, err := e.Decide(context.Background(), request(t, caller("g", "n", "r1"), "billing_refund", tt.args))
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != broker.CodeForbidden {
				t.Fatalf("Decide = %+v, %v; want a forbidden error", d, err)
			}
			if d.Effect != "" {
				t.Fatalf("an error must come with no decision, got %+v", d)
			}
			if tt.cause != "" && (be.Cause == nil || !strings.Contains(be.Cause.Error(), tt.cause)) {
				t.Fatalf("cause %v, want %q", be.Cause, tt.cause)
			}
			if !strings.Contains(be.Message, tt.rule) {
				t.Fatalf("message %q does not name %s", be.Message, tt.rule)
			}
			if x := e.Explain(request(t, caller("g", "n", "r1"), "billing_refund", tt.args)); x.Err == nil {
				t.Fatalf("Explain must report the error too: %+v", x)
			}
		})
	}
}

func TestDecideCancelledContext(t *testing.T) {
	e := newEngine(t, refundPolicy(config.Rule{Tool: "billing_refund", When: "args.items.all(x, x != 'z')", Effect: "deny"}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Decide(ctx, request(t, caller("g", "n", "r1"), "billing_refund", `{"items": [`+strings.Repeat(`"a",`, 500)+`"a"]}`))
	if broker.CodeOf(err) != broker.CodeForbidden {
		t.Fatalf("Decide with a cancelled context = %v, want forbidden", err)
	}
}

func TestConditionVariables(t *testing.T) {
	c := caller("g", "n", "r7")
	c.Principal.Email = "bot@x.io"
	c.Thread = "t1"
	c.Binding = &broker.Binding{Scope: map[string]any{"customer_id": float64(42), "tier": "gold"}}
	tests := []struct {
		when, tool, args string
		want             bool
	}{
		{`caller.principal == "key:support-bot"`, "billing_refund", `{}`, true},
		{`"langgraph-operators" in caller.groups`, "billing_refund", `{}`, true},
		{`caller.auth_method == "api_key" && caller.email == "bot@x.io"`, "billing_refund", `{}`, true},
		{`graph == "g" && node == "n" && run == "r7" && thread == "t1"`, "billing_refund", `{}`, true},
		{`scope.customer_id == 42 && scope["tier"] == "gold"`, "billing_refund", `{}`, true},
		{`args.customer_id == scope.customer_id`, "billing_refund", `{"customer_id": 42}`, true},
		{`args.customer_id == scope.customer_id`, "billing_refund", `{"customer_id": 43}`, false},
		{`args.customer_id == 42`, "billing_refund", `{"customer_id": 42.0}`, true},
		{`args.customer_id == 1000`, "billing_refund", `{"customer_id": 1e3}`, true},
		{`args.customer_id == 9223372036854775000`, "billing_refund", `{"customer_id": 9.223372036854775e18}`, true},
		{`args.customer_id == 9007199254740993`, "billing_refund", `{"customer_id": 9007199254740993.0}`, true},
		{`tool.name == "billing_refund" && tool.target == "billing"`, "billing_refund", `{}`, true},
		{`now > timestamp("2026-01-01T00:00:00Z") && now.getHours("UTC") == 15`, "billing_refund", `{}`, true},
		{`args.amount >= 99.5 && args.amount < 100`, "billing_refund", `{"amount": 99.5}`, true},
		{`args.amount > 100`, "billing_refund", `{"amount": 100000000000}`, true},
		{`size(args.items) == 2 && args.items[1] == 3`, "billing_refund", `{"items": ["a", 3]}`, true},
		{`"amount" in args && args["amount"] == 5`, "billing_refund", `{"amount": 5}`, true},
		{`has(args.amount)`, "billing_refund", `{}`, false},
		{`args.email.matches("^[a-z]+@example[.]com$")`, "crm_find_customer", `{"email": "ann@example.com"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			g := map[string]config.Graph{"g": {Nodes: map[string]config.Node{"n": {
				Allow: []string{tt.tool},
				Rules: []config.Rule{{Tool: tt.tool, When: tt.when, Effect: "deny"}},
			}}}}
			e := newEngine(t, g, nil)
			d, err := e.Decide(context.Background(), request(t, c, tt.tool, tt.args))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got := d.Effect == broker.EffectDeny; got != tt.want {
				t.Fatalf("condition was %v, want %v (%+v)", got, tt.want, d)
			}
		})
	}
}

func TestToolAnnotationsInConditions(t *testing.T) {
	g := map[string]config.Graph{"g": {
		Rules: []config.Rule{{When: `has(tool.annotations.destructiveHint) && tool.annotations.destructiveHint`, Effect: "approve", Approvers: []string{"group:ops"}}},
		Nodes: map[string]config.Node{"n": {Allow: []string{"billing_*"}}},
	}}
	e := newEngine(t, g, nil)
	for tl, want := range map[string]broker.Effect{"billing_void": broker.EffectApprove, "billing_refund": broker.EffectAllow} {
		d, err := e.Decide(context.Background(), request(t, caller("g", "n", "r"), tl, `{}`))
		if err != nil || d.Effect != want {
			t.Errorf("%s: %+v, %v; want %s", tl, d, err, want)
		}
	}
}

func TestNowComesFromRequest(t *testing.T) {
	e := newEngine(t, refundPolicy(config.Rule{Tool: "billing_refund", When: `now.getHours("UTC") >= 18`, Effect: "deny", Reason: "after hours"}), nil)
	req := request(t, caller("g", "n", "r"), "billing_refund", `{}`)
	for h, want := range map[int]broker.Effect{9: broker.EffectAllow, 19: broker.EffectDeny} {
		req.Now = time.Date(2026, 1, 2, h, 0, 0, 0, time.UTC)
		if d, err := e.Decide(context.Background(), req); err != nil || d.Effect != want {
			t.Errorf("at %d:00: %+v, %v; want %s", h, d, err, want)
		}
	}
}

func TestCostLimitWithoutComprehension(t *testing.T) {
	// With a tiny limit even a loop-free condition cannot be proven cheap,
	// so it runs with the cost tracker and is cut off.
	g := refundPolicy(config.Rule{Tool: "billing_refund", When: `args.reason.contains("fraud") || args.reason.startsWith("x")`, Effect: "deny"})
	e, err := New(Config{Graphs: g, Catalog: testCatalog(), CostLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Decide(context.Background(), request(t, caller("g", "n", "r"), "billing_refund", `{"reason": "`+strings.Repeat("late ", 2000)+`"}`))
	if broker.CodeOf(err) != broker.CodeForbidden || !strings.Contains(errors.Unwrap(err).Error(), "cost limit") {
		t.Fatalf("Decide = %v (cause %v), want refused for cost", err, errors.Unwrap(err))
	}
}
