package policy

import (
	"context"
	"reflect"
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
					Functions: []string{"util.slugify", `"MixedCase"`, "operator ~>", "current_user_tenant"},
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
	fn := func(funcs ...string) broker.Statement {
		return broker.Statement{Kind: broker.KindSQL, Class: "read", Command: "SELECT", Text: "x", Functions: funcs}
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
		{"side effect refused", triage, "crm", fn("set_config"), broker.EffectDeny, "it calls set_config, which toolgate does not know"},
		{"function off the list names the key", triage, "crm", fn("ts_stat", "txid_current"), broker.EffectDeny, "ts_stat, txid_current, which toolgate does not know to be free of side effects and of reads outside the grant (add a function that is to graphs.g.nodes.triage.passthrough.crm.functions"},
		{"functions admit", triage, "crm", fn("util.slugify", `"MixedCase"`, "operator ~>"), broker.EffectAllow, ""},
		{"functions match the schema", triage, "crm", fn("slugify"), broker.EffectDeny, "slugify"},
		{"functions admit only what they list", triage, "crm", fn("util.slugify", "evil"), broker.EffectDeny, "it calls evil,"},
		{"operator off the list", triage, "crm", fn("operator ===", "operator ~>"), broker.EffectDeny, "operator ==="},
		{"marker needs a rule", triage, "crm", fn("copy file or program"), broker.EffectDeny, "it uses copy file or program, which only an explicit allow rule admits"},
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
		Rules:     []config.Rule{{When: "statement.class +", Effect: "allow"}, {When: "1", Effect: "allow"}, {Effect: "maybe"}},
		Functions: []string{"ok_fn", "pg_read_file", "pg_catalog.pg_sleep_for", "Lower", `"lower"`, "operator ~>x", "a.b.c.d", "copy file or program", "dblink_exec", `"Odd""Name"`}}
	g["g"].Nodes["triage"] = n
	_, err := New(Config{Graphs: g, Catalog: catalog{}})
	if err == nil {
		t.Fatal("bad passthrough policy loaded")
	}
	for _, fine := range []string{"functions[0]", "functions[9]"} {
		if strings.Contains(err.Error(), "passthrough.crm."+fine) {
			t.Errorf("problems %v name the valid entry %s", err, fine)
		}
	}
	if !strings.Contains(err.Error(), "pg_read_file has side effects or reads outside the grant; admit the statements that call it with an allow rule instead") {
		t.Errorf("problems %v do not explain why pg_read_file is refused", err)
	}
	for _, want := range []string{"statements", "tables[0]", "rules[0].when", "rules[1].when", "rules[2].effect",
		"functions[1]", "functions[2]", "functions[3]", "functions[4]", "functions[5]", "functions[6]", "functions[7]", "functions[8]"} {
		if !strings.Contains(err.Error(), "passthrough.crm."+want) {
			t.Errorf("problems %v do not name %s", err, want)
		}
	}
}

func TestReadsOnlyFields(t *testing.T) {
	for cond, want := range map[string]bool{
		"":                                     true,
		"statement.class == 'write'":           true,
		"'orders' in statement.tables":         true,
		"statement.tables.exists(t, t == 'x')": true,
		"statement.text.contains('ssn')":       false,
		"statement['text'] == 'x'":             false,
		"statement .text == 'x'":               false,
		"'text' in statement":                  false,
		"statement.`text` == 'x'":              false,
		"[statement][0].text == 'x'":           false,
	} {
		if got := readsOnlyFields(cond); got != want {
			t.Errorf("readsOnlyFields(%q) = %v, want %v", cond, got, want)
		}
	}
}

// TestDecisionCacheMatchesEvaluation decides a sweep of statements twice
// with a text-free policy: the cached answers equal the first
// evaluation, and a policy with a text rule caches nothing.
func TestDecisionCacheMatchesEvaluation(t *testing.T) {
	graphs := map[string]config.Graph{"g": {
		Principals: []string{"key:bot"},
		Nodes: map[string]config.Node{
			"fields": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read"}, Tables: []string{"customers", "orders"},
				Rules: []config.Rule{
					{When: "statement.functions == ['pg_sleep']", Effect: "allow"},
					{When: "statement.tables.exists(t, t == 'orders') && statement.class == 'write'", Effect: "deny", Reason: "append-only"},
					{When: "run == 'r1' && statement.command == 'DELETE'", Effect: "approve", Approvers: []string{"group:ops"}},
				}}}},
		},
	}}
	e, err := New(Config{Graphs: graphs, Catalog: catalog{}})
	if err != nil {
		t.Fatal(err)
	}
	caller := broker.Caller{Principal: broker.Principal{Subject: "key:bot"}, Context: broker.Context{Graph: "g", Node: "fields"}}
	if pp := e.passFor(caller, "crm"); pp == nil || pp.decisions == nil {
		t.Fatal("a text-free policy has no decision cache")
	}
	var reqs []broker.StatementRequest
	for _, run := range []string{"", "r1"} {
		for _, class := range []string{"read", "write", "ddl", "other"} {
			for _, cmd := range []string{"SELECT", "DELETE"} {
				for _, tables := range [][]string{nil, {"customers"}, {"orders"}, {"customers", "orders"}, {"secrets"}} {
					for _, funcs := range [][]string{nil, {"pg_sleep"}, {"set_config"}} {
						c := caller
						c.Run = run
						reqs = append(reqs, broker.StatementRequest{Caller: c, Target: "crm", Statement: broker.Statement{
							Kind: broker.KindSQL, Class: class, Command: cmd, Tables: tables, Functions: funcs, Text: "x"}})
					}
				}
			}
		}
	}
	first := make([]broker.Decision, len(reqs))
	for i, r := range reqs {
		if first[i], err = e.DecideStatement(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range reqs {
		fresh, err := e.decideStatement(context.Background(), e.passFor(r.Caller, r.Target), r)
		if err != nil {
			t.Fatal(err)
		}
		cached, _ := e.DecideStatement(context.Background(), r)
		if !reflect.DeepEqual(cached, fresh) || !reflect.DeepEqual(first[i], fresh) {
			t.Fatalf("%+v: cached %+v, first %+v, evaluated %+v", r.Statement, cached, first[i], fresh)
		}
	}

	// passGraphs' triage node reads statement.text: nothing is cached and
	// the text decides.
	e2, err := New(Config{Graphs: passGraphs(), Catalog: catalog{}})
	if err != nil {
		t.Fatal(err)
	}
	triage := broker.Caller{Principal: broker.Principal{Subject: "key:bot"}, Context: broker.Context{Graph: "g", Node: "triage"}}
	if pp := e2.passFor(triage, "crm"); pp == nil || pp.decisions != nil {
		t.Fatal("a policy reading statement.text has a decision cache")
	}
	st := broker.Statement{Kind: broker.KindSQL, Class: "read", Command: "SELECT", Tables: []string{"customers"}}
	for text, want := range map[string]broker.Effect{"SELECT name FROM customers": broker.EffectAllow, "SELECT ssn FROM customers": broker.EffectDeny} {
		for i := 0; i < 2; i++ {
			st.Text = text
			d, err := e2.DecideStatement(context.Background(), broker.StatementRequest{Caller: triage, Target: "crm", Statement: st})
			if err != nil || d.Effect != want {
				t.Fatalf("%q: %v %v, want %s", text, d.Effect, err, want)
			}
		}
	}
}
