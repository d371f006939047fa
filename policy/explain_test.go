package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestExplainGolden(t *testing.T) {
	g := supportBot()
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{CallsPerRun: 200}
	n := sb.Nodes["refund"]
	n.Rules = append(n.Rules, config.Rule{Tool: "billing_refund", When: "args.reason.startsWith('fraud')", Effect: "deny", Reason: "fraud goes to the fraud team"})
	sb.Nodes["refund"] = n
	g["support-bot"] = sb
	e := newEngine(t, g, NewMemoryCounters())
	grant := caller("support-bot", "refund", "r1")
	grant.Binding = &broker.Binding{Scope: map[string]any{"customer_id": 42}}
	tests := []struct {
		name   string
		caller broker.Caller
		tool   string
		args   string
	}{
		{"allow_entry", caller("support-bot", "triage", "r1"), "crm_find_customer", `{"email": "a@b.c"}`},
		{"approve", grant, "billing_refund", `{"amount": 250, "reason": "late"}`},
		{"allow_and_deny_same_call", caller("support-bot", "refund", "r1"), "crm_find_customer", `{"email": "ceo@example.com"}`},
		{"deny_over_approve", grant, "billing_refund", `{"amount": 5000, "reason": "late"}`},
		{"eval_error", grant, "billing_refund", `{"amount": 5}`},
		{"not_in_allow_list", caller("support-bot", "triage", "r1"), "billing_refund", `{"amount": 5}`},
		{"unknown_node", caller("support-bot", "nowhere/deep", "r1"), "crm_find_customer", `{}`},
		{"no_graph", caller("", "", ""), "crm_find_customer", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := e.Explain(request(t, tt.caller, tt.tool, tt.args))
			var buf bytes.Buffer
			if err := x.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(buf.String(), e.PolicyVersion(), "<version>")
			file := filepath.Join("testdata", "explain", tt.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("explain output differs from %s:\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

func TestExplainAgreesWithDecideAndChargesNothing(t *testing.T) {
	var adds int
	counting := CountersFunc(func(_ contextT, _ string, _ int64, _ durationT) (int64, error) { adds++; return 0, nil })
	g := supportBot()
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{CallsPerRun: 1}
	g["support-bot"] = sb
	e := newEngine(t, g, counting)
	for _, a := range []string{`{"amount": 5}`, `{"amount": 500}`, `{"amount": 5000}`} {
		req := request(t, caller("support-bot", "refund", "r1"), "billing_refund", a)
		x := e.Explain(req)
		if adds != 0 {
			t.Fatal("Explain charged a budget")
		}
		d, err := e.Decide(bgCtx(), req)
		if err != nil || d.Effect != x.Decision.Effect || d.Rule != x.Decision.Rule {
			t.Fatalf("Decide %+v %v; Explain %+v", d, err, x.Decision)
		}
		adds = 0
	}
}
