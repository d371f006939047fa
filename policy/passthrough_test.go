package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

func passGraphs() map[string]config.Graph {
	return map[string]config.Graph{"g": {
		Principals: []string{"key:bot"},
		Nodes: map[string]config.Node{
			"triage": {Passthrough: map[string]config.PassthroughPolicy{
				"crm": {Statements: []string{"read"}, Tables: []string{"customers", "orders", "audit.*"},
					Rules: []config.Rule{
						{When: "statement.command == 'SET' && statement.text.startsWith('SET application_name')", Effect: "allow"},
						{When: "'orders' in statement.tables && statement.class == 'write'", Effect: "approve", Approvers: []string{"group:ops"}},
						{When: "statement.text.contains('ssn')", Effect: "deny", Reason: "no SSNs"},
					}},
				"billing": {Methods: []string{"GET"}, Paths: []string{"/v1/invoices/*"}},
			}},
			"other": {},
		},
	}}
}

func TestDecideStatement(t *testing.T) {
	e, err := New(Config{Graphs: passGraphs(), Catalog: catalog{}})
	if err != nil {
		t.Fatal(err)
	}
	triage := broker.Caller{Principal: broker.Principal{Subject: "key:bot"}, Context: broker.Context{Graph: "g", Node: "triage"}}
	other := triage
	other.Node = "other"
	sql := func(class, cmd, text string, tables ...string) broker.Statement {
		return broker.Statement{Kind: broker.KindSQL, Class: class, Command: cmd, Text: text, Tables: tables}
	}
	for _, tc := range []struct {
		name   string
		caller broker.Caller
		target string
		st     broker.Statement
		effect broker.Effect
		reason string
	}{
		{"read allowed", triage, "crm", sql("read", "SELECT", "SELECT * FROM customers", "customers"), broker.EffectAllow, ""},
		{"public schema matches bare glob", triage, "crm", sql("read", "SELECT", "x", "public.customers"), broker.EffectAllow, ""},
		{"schema glob", triage, "crm", sql("read", "SELECT", "x", "audit.log"), broker.EffectAllow, ""},
		{"table outside list", triage, "crm", sql("read", "SELECT", "x", "secrets"), broker.EffectDeny, "table secrets"},
		{"other schema", triage, "crm", sql("read", "SELECT", "x", "evil.customers"), broker.EffectDeny, "table evil.customers"},
		{"write refused", triage, "crm", sql("write", "DELETE", "x", "customers"), broker.EffectDeny, "write statements"},
		{"other class refused", triage, "crm", sql("other", "SET", "SET search_path = x"), broker.EffectDeny, "other statements"},
		{"rule allows other", triage, "crm", sql("other", "SET", "SET application_name = 'x'"), broker.EffectAllow, ""},
		{"side effect refused", triage, "crm", broker.Statement{Kind: broker.KindSQL, Class: "read", Text: "x", Functions: []string{"set_config"}}, broker.EffectDeny, "set_config"},
		{"approve rule", triage, "crm", sql("write", "INSERT", "x", "orders"), broker.EffectApprove, ""},
		{"deny rule first", triage, "crm", sql("read", "SELECT", "SELECT ssn FROM customers", "customers"), broker.EffectDeny, "no SSNs"},
		{"no entry", other, "crm", sql("read", "SELECT", "x"), broker.EffectDeny, "no passthrough entry"},
		{"http allowed", triage, "billing", broker.Statement{Kind: broker.KindHTTP, Method: "GET", Path: "/v1/invoices/7"}, broker.EffectAllow, ""},
		{"http method", triage, "billing", broker.Statement{Kind: broker.KindHTTP, Method: "POST", Path: "/v1/invoices/7"}, broker.EffectDeny, "method POST"},
		{"http path", triage, "billing", broker.Statement{Kind: broker.KindHTTP, Method: "GET", Path: "/v1/admin"}, broker.EffectDeny, "path /v1/admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.DecideStatement(context.Background(), broker.StatementRequest{Caller: tc.caller, Target: tc.target, Statement: tc.st})
			if err != nil {
				t.Fatal(err)
			}
			if d.Effect != tc.effect || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("decision = %+v, want %s with %q", d, tc.effect, tc.reason)
			}
			if d.Effect == broker.EffectApprove && (d.MinApprovals != 1 || len(d.Approvers) != 1) {
				t.Fatalf("approve decision = %+v", d)
			}
		})
	}
	if !e.MayConnect(triage, "crm") || e.MayConnect(other, "crm") || e.MayConnect(triage, "nope") {
		t.Fatal("MayConnect is wrong")
	}
}

func TestPassthroughLoadProblems(t *testing.T) {
	g := passGraphs()
	n := g["g"].Nodes["triage"]
	n.Passthrough["crm"] = config.PassthroughPolicy{Statements: []string{"everything"}, Tables: []string{"[bad"},
		Rules: []config.Rule{{When: "statement.class +", Effect: "allow"}, {When: "1", Effect: "allow"}, {Effect: "maybe"}}}
	g["g"].Nodes["triage"] = n
	_, err := New(Config{Graphs: g, Catalog: catalog{}})
	if err == nil {
		t.Fatal("bad passthrough policy loaded")
	}
	for _, want := range []string{"statements", "tables[0]", "rules[0].when", "rules[1].when", "rules[2].effect"} {
		if !strings.Contains(err.Error(), "passthrough.crm."+want) {
			t.Errorf("problems %v do not name %s", err, want)
		}
	}
}
