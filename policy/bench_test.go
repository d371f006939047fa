package policy

import (
	"context"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// threeRuleRefund returns an engine whose refund node has three CEL rules
// over typed arguments, and a refund call that matches none of them (so all
// three are evaluated and the call is allowed).
func threeRuleRefund(tb testing.TB) (*Engine, broker.Request) {
	tb.Helper()
	g := map[string]config.Graph{"support-bot": {Nodes: map[string]config.Node{"refund": {
		Allow: []string{"billing_refund"},
		Rules: []config.Rule{
			{Tool: "billing_refund", When: "args.amount > 1000.0", Effect: "deny"},
			{Tool: "billing_refund", When: "args.amount > 100 && args.customer_id != 7", Effect: "approve", Approvers: []string{"group:finance"}},
			{Tool: "billing_refund", When: `args.reason == "fraud"`, Effect: "allow"},
		},
	}}}}
	e := newEngine(tb, g, nil)
	req := request(tb, caller("support-bot", "refund", "r1"), "billing_refund", `{"amount": 40.5, "customer_id": 42, "reason": "late"}`)
	return e, req
}

// BenchmarkDecide decides a refund call against three CEL rules over typed
// arguments (none matches, so all three are evaluated).
func BenchmarkDecide(b *testing.B) {
	e, req := threeRuleRefund(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := e.Decide(ctx, req)
		if err != nil || d.Effect != broker.EffectAllow {
			b.Fatal(d, err)
		}
	}
}

// TestDecideAllocations pins the per-call allocations of a decision with
// three conditions, so a change that builds maps per call shows up.
func TestDecideAllocations(t *testing.T) {
	e, req := threeRuleRefund(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := e.Decide(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 8 {
		t.Fatalf("Decide allocates %.0f times per call, want at most 8", allocs)
	}
}
