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

func TestDecide(t *testing.T) {
	e := newEngine(t, supportBot(), nil)
	const g = "support-bot"
	tests := []struct {
		name       string
		caller     broker.Caller
		tool, args string
		effect     broker.Effect
		rule       string
	}{
		{"allow list glob admits tool", caller(g, "triage", "r1"), "crm_list_orders", `{"customer_id": 7}`, broker.EffectAllow, "graphs.support-bot.nodes.triage.allow[0]"},
		{"tool outside allow list is default deny", caller(g, "triage", "r1"), "billing_refund", `{"amount": 5}`, broker.EffectDeny, "default"},
		{"no graph can call nothing", caller("", "", ""), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
		{"unknown graph", caller("other", "triage", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
		{"unknown node path", caller(g, "a/b", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
		{"small refund allowed by allow entry", caller(g, "refund", "r1"), "billing_refund", `{"amount": 40}`, broker.EffectAllow, "graphs.support-bot.nodes.refund.allow[0]"},
		{"refund over 100 needs approval", caller(g, "refund", "r1"), "billing_refund", `{"amount": 250.5}`, broker.EffectApprove, "graphs.support-bot.nodes.refund.rules[0]"},
		{"refund exactly 100 allowed", caller(g, "refund", "r1"), "billing_refund", `{"amount": 100}`, broker.EffectAllow, "graphs.support-bot.nodes.refund.allow[0]"},
		{"deny beats approve when both match", caller(g, "refund", "r1"), "billing_refund", `{"amount": 5000}`, broker.EffectDeny, "graphs.support-bot.nodes.refund.rules[1]"},
		{"allow rule names itself", caller(g, "refund", "r1"), "crm_find_customer", `{"email": "ann@example.com"}`, broker.EffectAllow, "graphs.support-bot.nodes.refund.rules[2]"},
		{"deny beats allow on the same call", caller(g, "refund", "r1"), "crm_find_customer", `{"email": "ceo@example.com"}`, broker.EffectDeny, "graphs.support-bot.nodes.refund.rules[3]"},
		{"no rule matches: allow entry", caller(g, "refund", "r1"), "crm_find_customer", `{"email": "x@elsewhere.org"}`, broker.EffectAllow, "graphs.support-bot.nodes.refund.allow[1]"},
		{"graph rule denies in every node", caller(g, "voider", "r1"), "billing_void", `{"order_id": "o1"}`, broker.EffectDeny, "graphs.support-bot.rules[0]"},
		{"graph rule leaves other tools", caller(g, "voider", "r1"), "billing_refund", `{"amount": 1}`, broker.EffectAllow, "graphs.support-bot.nodes.voider.allow[0]"},
		{"exact node beats glob", caller(g, "supervisor/research", "r1"), "crm_list_orders", `{}`, broker.EffectAllow, "graphs.support-bot.nodes.supervisor/research.allow[0]"},
		{"exact node does not inherit glob allow", caller(g, "supervisor/research", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
		{"glob node", caller(g, "supervisor/writer", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectAllow, "graphs.support-bot.nodes.supervisor/*.allow[0]"},
		{"longest glob wins", caller(g, "trial", "r1"), "crm_list_orders", `{}`, broker.EffectAllow, "graphs.support-bot.nodes.tri*.allow[0]"},
		{"longest glob wins, shorter glob's tools denied", caller(g, "trial", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
		{"catch-all glob", caller(g, "anything", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectAllow, "graphs.support-bot.nodes.*.allow[0]"},
		{"glob does not cross slash", caller(g, "x/y/z", "r1"), "crm_find_customer", `{"email": "a@b.c"}`, broker.EffectDeny, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), request(t, tt.caller, tt.tool, tt.args))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Effect != tt.effect || d.Rule != tt.rule {
				t.Fatalf("got %s by %s (%s), want %s by %s", d.Effect, d.Rule, d.Reason, tt.effect, tt.rule)
			}
			if d.PolicyVersion != e.PolicyVersion() || len(d.PolicyVersion) != 12 {
				t.Fatalf("policy version %q, want %q", d.PolicyVersion, e.PolicyVersion())
			}
		})
	}
}

func TestDecideApproveCarriesApprovers(t *testing.T) {
	g := supportBot()
	n := g["support-bot"].Nodes["refund"]
	n.Rules = append(n.Rules, config.Rule{Tool: "crm_find_customer", Effect: "approve", Approvers: []string{"user:a@x.io"}})
	g["support-bot"].Nodes["refund"] = n
	e := newEngine(t, g, nil)
	d, err := e.Decide(context.Background(), request(t, caller("support-bot", "refund", "r1"), "billing_refund", `{"amount": 101}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Effect != broker.EffectApprove || d.MinApprovals != 2 || d.Timeout != 10*time.Minute || strings.Join(d.Approvers, ",") != "group:finance" {
		t.Fatalf("decision %+v", d)
	}
	d, err = e.Decide(context.Background(), request(t, caller("support-bot", "refund", "r1"), "crm_find_customer", `{"email": "zed@other.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Effect != broker.EffectApprove || d.MinApprovals != 1 || d.Rule != "graphs.support-bot.nodes.refund.rules[4]" {
		t.Fatalf("min_approvals should default to 1: %+v", d)
	}
}

func TestVisible(t *testing.T) {
	e := newEngine(t, supportBot(), nil)
	cat := testCatalog()
	tests := []struct {
		node, tool string
		want       bool
	}{
		{"triage", "crm_find_customer", true},
		{"triage", "crm_list_orders", true},
		{"triage", "billing_refund", false},
		// Conditional rules do not hide a tool.
		{"refund", "billing_refund", true},
		// An unconditional deny rule hides it.
		{"voider", "billing_void", false},
		{"voider", "billing_refund", true},
		{"supervisor/x", "crm_find_customer", true},
		{"nowhere/x", "crm_find_customer", false},
	}
	for _, tt := range tests {
		tl, _ := cat.Lookup(tt.tool)
		if got := e.Visible(e.Node(caller("support-bot", tt.node, "r1")), tl); got != tt.want {
			t.Errorf("Visible(%s, %s) = %v, want %v", tt.node, tt.tool, got, tt.want)
		}
	}
	tl, _ := cat.Lookup("crm_find_customer")
	if e.Visible(e.Node(caller("", "", "")), tl) {
		t.Error("a caller with no graph must see nothing")
	}
}

func TestMayActAs(t *testing.T) {
	e := newEngine(t, supportBot(), nil)
	tests := []struct {
		p     broker.Principal
		graph string
		want  bool
	}{
		{broker.Principal{Subject: "key:support-bot"}, "support-bot", true},
		{broker.Principal{Subject: "user:ann@x.io", Groups: []string{"langgraph-operators"}}, "support-bot", true},
		{broker.Principal{Subject: "user:ann@x.io", Groups: []string{"finance"}}, "support-bot", false},
		{broker.Principal{Subject: "key:support-bot"}, "other", false},
		{broker.Principal{Subject: "key:support-bot"}, "", false},
	}
	for _, tt := range tests {
		if got := e.MayActAs(tt.p, tt.graph); got != tt.want {
			t.Errorf("MayActAs(%v, %q) = %v, want %v", tt.p.Names(), tt.graph, got, tt.want)
		}
	}
}

func TestBound(t *testing.T) {
	e := newEngine(t, supportBot(), nil)
	refund, _ := testCatalog().Lookup("billing_refund")
	find, _ := testCatalog().Lookup("crm_find_customer")
	withScope := func(scope map[string]any) broker.Caller {
		c := caller("support-bot", "refund", "r1")
		c.Binding = &broker.Binding{GrantID: "g1", Graph: "support-bot", Node: "refund", Run: "r1", Scope: scope}
		return c
	}
	t.Run("present", func(t *testing.T) {
		got, err := e.Bound(nil, withScope(map[string]any{"customer_id": int64(42)}), refund)
		if err != nil || len(got) != 1 || got["customer_id"] != int64(42) {
			t.Fatalf("Bound = %v, %v", got, err)
		}
	})
	t.Run("tool without bind", func(t *testing.T) {
		got, err := e.Bound(nil, withScope(nil), find)
		if err != nil || got != nil {
			t.Fatalf("Bound = %v, %v", got, err)
		}
	})
	for name, c := range map[string]broker.Caller{
		"no grant":      caller("support-bot", "refund", "r1"),
		"field missing": withScope(map[string]any{"region": "eu"}),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := e.Bound(e.Node(c), c, refund)
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != broker.CodeForbidden || be.Field != "customer_id" || got != nil {
				t.Fatalf("Bound = %v, %v; want forbidden on customer_id", got, err)
			}
			for _, want := range []string{`argument "customer_id"`, "scope.customer_id", "grant"} {
				if !strings.Contains(be.Message, want) {
					t.Errorf("message %q lacks %q", be.Message, want)
				}
			}
		})
	}
	t.Run("nested scope path", func(t *testing.T) {
		g := supportBot()
		g["support-bot"] = func(gr config.Graph) config.Graph {
			gr.ScopeSchema = nil
			n := gr.Nodes["refund"]
			n.Bind = map[string]map[string]string{"billing_refund": {"customer_id": "scope.customer.id"}}
			gr.Nodes["refund"] = n
			return gr
		}(g["support-bot"])
		e := newEngine(t, g, nil)
		got, err := e.Bound(nil, withScope(map[string]any{"customer": map[string]any{"id": "c-9"}}), refund)
		if err != nil || got["customer_id"] != "c-9" {
			t.Fatalf("Bound = %v, %v", got, err)
		}
	})
}

func TestPolicyVersion(t *testing.T) {
	a, b := supportBot(), supportBot()
	if Version(a) != Version(b) {
		t.Fatal("the same config must give the same version")
	}
	n := b["support-bot"].Nodes["triage"]
	n.Allow = []string{"crm_find_customer"}
	b["support-bot"].Nodes["triage"] = n
	if Version(a) == Version(b) {
		t.Fatal("a changed config must give another version")
	}
}
