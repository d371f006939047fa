package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// passPolicy is a Policy with the passthrough ability: node "triage" may
// connect to "db"; writes are denied, "approve" statements need approval,
// "explode" fails.
type passPolicy struct{ fakePolicy }

func (passPolicy) MayConnect(c Caller, target string) bool {
	return c.Node == "triage" && target == "db"
}
func (passPolicy) DecideStatement(_ context.Context, r StatementRequest) (Decision, error) {
	switch {
	case strings.Contains(r.Statement.Text, "explode"):
		return Decision{}, errors.New("cel blew up")
	case strings.Contains(r.Statement.Text, "approve"):
		return Decision{Effect: EffectApprove, Rule: "rules[0]"}, nil
	case r.Statement.Class == ClassWrite:
		return Decision{Effect: EffectDeny, Rule: "passthrough.db", Reason: "write statements are not in statements [read]"}, nil
	}
	return Decision{Effect: EffectAllow, Rule: "passthrough.db"}, nil
}

func passEnv(t *testing.T, mod func(*Config)) *env {
	return newEnv(t, func(c *Config) {
		c.Live.Policy = passPolicy{}
		if mod != nil {
			mod(c)
		}
	})
}

func sqlStmt(class, text string) Statement {
	return Statement{Kind: KindSQL, Class: class, Text: text}
}

func TestStatementAllowedIsRecordedFirst(t *testing.T) {
	e := passEnv(t, nil)
	c := e.caller(t, "tgk_good", "triage")
	d, err := e.b.Statement(context.Background(), StatementCall{Caller: c, Door: "pgwire", Target: "db", Statement: sqlStmt(ClassRead, "SELECT '4242424242424242'")})
	if err != nil {
		t.Fatal(err)
	}
	ev := e.rec.last(t)
	if ev.ID != d.ID || ev.Kind != EventStatement || ev.Decision != "allow" || ev.Tool != "pg:db" || ev.Node != "triage" {
		t.Fatalf("record = %+v", ev)
	}
	if s, _ := ev.Detail["statement"].(string); strings.Contains(s, "4242424242424242") {
		t.Fatalf("statement recorded unmasked: %s", s)
	}
	e.b.StatementDone(context.Background(), StatementOutcome{ID: d.ID, Caller: c, Door: "pgwire", Target: "db", Rows: 3})
	if ev := e.rec.last(t); ev.Rows != 3 || ev.Detail["statement_id"] != d.ID || ev.Status != StatusOK {
		t.Fatalf("outcome record = %+v", ev)
	}
}

func TestStatementRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		node   string
		st     Statement
		code   Code
		unver  bool
		target string
	}{
		{name: "write denied", node: "triage", st: sqlStmt(ClassWrite, "DELETE FROM t"), code: CodeForbidden},
		{name: "unclassified", node: "triage", st: Statement{Kind: KindSQL, Text: "SELEC", Unclassified: "syntax error"}, code: CodeForbidden},
		{name: "policy error fails closed", node: "triage", st: sqlStmt(ClassRead, "explode"), code: CodeForbidden},
		{name: "node without passthrough", node: "refund", st: sqlStmt(ClassRead, "SELECT 1"), code: CodeForbidden},
		{name: "other target", node: "triage", target: "other", st: sqlStmt(ClassRead, "SELECT 1"), code: CodeForbidden},
		{name: "unverified caller", unver: true, st: sqlStmt(ClassRead, "SELECT 1"), code: CodeUnauthenticated},
		{name: "approval without channel", node: "triage", st: sqlStmt(ClassWrite, "approve"), code: CodeForbidden},
		{name: "approval pending", node: "triage", st: sqlStmt(ClassWrite, "approve"), code: CodeApprovalPending,
			mod: func(c *Config) {
				c.Approvals = fakeApprovals{out: ApprovalOutcome{ID: "ap_1", Status: ApprovalPending}}
			}},
		{name: "approval denied", node: "triage", st: sqlStmt(ClassWrite, "approve"), code: CodeApprovalDenied,
			mod: func(c *Config) { c.Approvals = fakeApprovals{out: ApprovalOutcome{ID: "ap_1", Status: ApprovalDenied}} }},
		{name: "no passthrough ability", node: "triage", st: sqlStmt(ClassRead, "SELECT 1"), code: CodeForbidden,
			mod: func(c *Config) { c.Live.Policy = fakePolicy{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := passEnv(t, tc.mod)
			var c Caller
			if !tc.unver {
				c = e.caller(t, "tgk_good", tc.node)
			}
			target := tc.target
			if target == "" {
				target = "db"
			}
			_, err := e.b.Statement(context.Background(), StatementCall{Caller: c, Door: "pgwire", Target: target, Statement: tc.st})
			if CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			ev := e.rec.last(t)
			if ev.Kind != EventStatement || (ev.Status != StatusDenied && ev.Status != StatusPending) {
				t.Fatalf("refusal not recorded as denied: %+v", ev)
			}
		})
	}
}

func TestStatementApproved(t *testing.T) {
	e := passEnv(t, func(c *Config) {
		c.Approvals = fakeApprovals{out: ApprovalOutcome{ID: "ap_1", Status: ApprovalApproved}}
	})
	_, err := e.b.Statement(context.Background(), StatementCall{Caller: e.caller(t, "tgk_good", "triage"), Door: "pgwire", Target: "db", Statement: sqlStmt(ClassWrite, "approve")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.rec.last(t); ev.ApprovalID != "ap_1" || ev.Decision != "approve" {
		t.Fatalf("record = %+v", ev)
	}
}

func TestStatementAuditDownFailsClosed(t *testing.T) {
	e := passEnv(t, nil)
	c := e.caller(t, "tgk_good", "triage")
	e.rec.fail = true
	if _, err := e.b.Statement(context.Background(), StatementCall{Caller: c, Door: "pgwire", Target: "db", Statement: sqlStmt(ClassRead, "SELECT 1")}); CodeOf(err) != CodeAuditUnavailable {
		t.Fatalf("statement: %v, want audit_unavailable", err)
	}
	if _, err := e.b.OpenSession(context.Background(), Session{Caller: c, Door: "pgwire", Target: "db"}); CodeOf(err) != CodeAuditUnavailable {
		t.Fatalf("session: %v, want audit_unavailable", err)
	}
}

func TestOpenSession(t *testing.T) {
	e := passEnv(t, nil)
	id, err := e.b.OpenSession(context.Background(), Session{Caller: e.caller(t, "tgk_good", "triage"), Door: "pgwire", Target: "db", Remote: "127.0.0.1:1"})
	if err != nil || id == "" {
		t.Fatalf("open: %q, %v", id, err)
	}
	if ev := e.rec.last(t); ev.Kind != EventSessionOpened || ev.Status != StatusOK {
		t.Fatalf("record = %+v", ev)
	}
	if _, err := e.b.OpenSession(context.Background(), Session{Caller: e.caller(t, "tgk_good", "refund"), Door: "pgwire", Target: "db"}); CodeOf(err) != CodeForbidden {
		t.Fatalf("node without passthrough: %v", err)
	}
	if ev := e.rec.last(t); ev.Kind != EventSessionOpened || ev.Status != StatusDenied {
		t.Fatalf("refused session record = %+v", ev)
	}
}

func TestArgsJSONMatchesMarshal(t *testing.T) {
	for _, st := range []Statement{
		{Kind: KindSQL, Text: "SELECT abalance FROM pgbench_accounts WHERE aid = 1"},
		{Kind: KindSQL, Text: ""},
		{Kind: KindSQL, Text: "SELECT '<a&b>' \"q\" \\ \u2028 \x00 \xff é"},
		{Kind: KindHTTP, Method: "GET", Path: "/v1/<x>"},
	} {
		want, _ := json.Marshal(statementArgs(st))
		if got := argsJSON(st); string(got) != string(want) {
			t.Errorf("argsJSON = %s, want %s", got, want)
		}
	}
}
