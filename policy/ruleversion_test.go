package policy

import (
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// TestRuleVersion: an approve decision carries a version of its governing
// rule alone. Edits elsewhere in the policy (another graph's principals, a
// rule added after it, a new node) change the policy version but not the
// rule version, so approvals survive them; changing the rule's condition,
// approvers or min_approvals changes it, so its approvals go stale.
func TestRuleVersion(t *testing.T) {
	decide := func(t *testing.T, edit func(g map[string]config.Graph)) broker.Decision {
		t.Helper()
		g := supportBot()
		if edit != nil {
			edit(g)
		}
		d, err := newEngine(t, g, NewMemoryCounters()).Decide(bgCtx(), request(t, caller("support-bot", "refund", "r1"), "billing_refund", `{"amount": 500, "customer_id": 1}`))
		if err != nil || d.Effect != broker.EffectApprove || d.RuleVersion == "" {
			t.Fatalf("decision = %+v, %v; want approve with a rule version", d, err)
		}
		return d
	}
	rule := func(g map[string]config.Graph) *config.Rule {
		return &g["support-bot"].Nodes["refund"].Rules[0]
	}
	base := decide(t, nil)
	for _, tc := range []struct {
		name  string
		edit  func(g map[string]config.Graph)
		stale bool
	}{
		{"another principal", func(g map[string]config.Graph) {
			sb := g["support-bot"]
			sb.Principals = append(sb.Principals, "key:other")
			g["support-bot"] = sb
		}, false},
		{"a rule added after it", func(g map[string]config.Graph) {
			n := g["support-bot"].Nodes["refund"]
			n.Rules = append(n.Rules, config.Rule{Tool: "crm_find_customer", Effect: "allow"})
			g["support-bot"].Nodes["refund"] = n
		}, false},
		{"approvers respelled", func(g map[string]config.Graph) { rule(g).Approvers = []string{"GROUP:finance "} }, false},
		{"timeout", func(g map[string]config.Graph) { rule(g).Timeout = config.Duration(20 * 60 * 1e9) }, false},
		{"approvers", func(g map[string]config.Graph) {
			rule(g).Approvers = []string{"user:bob@example.com", "user:carol@example.com"}
		}, true},
		{"min_approvals", func(g map[string]config.Graph) { rule(g).MinApprovals = 3 }, true},
		{"condition", func(g map[string]config.Graph) { rule(g).When = "args.amount > 200" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(t, tc.edit)
			if d.PolicyVersion == base.PolicyVersion {
				t.Errorf("the policy version did not change")
			}
			if (d.RuleVersion != base.RuleVersion) != tc.stale {
				t.Errorf("rule version %s → %s; want changed = %v", base.RuleVersion, d.RuleVersion, tc.stale)
			}
		})
	}
}
