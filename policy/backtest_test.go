package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy/mask"
)

// recorder builds audit events the way the broker records them: the args
// hash over the canonical arguments, the arguments masked by the real
// masker.
type recorder struct {
	t    testing.TB
	m    *mask.Masker
	at   time.Time
	n    int
	auth broker.AuthMethod
}

func newRecorder(t testing.TB) *recorder {
	m, err := mask.New(mask.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, m: m, at: testNow, auth: broker.AuthAPIKey}
}

// call records a tool call. args "" records none (a call refused before
// its arguments were read).
func (r *recorder) call(node, toolName, argJSON string, d broker.Decision) broker.Event {
	r.n++
	ev := broker.Event{ID: "call_" + strings.Repeat("0", 3) + string(rune('a'+r.n)), Time: r.at.Add(time.Duration(r.n) * time.Second),
		Kind: broker.EventToolCall, Principal: "key:support-bot", AuthMethod: string(r.auth), Graph: "support-bot", Node: node, Run: "r1",
		Tool: toolName, Decision: string(d.Effect), Rule: d.Rule, PolicyVersion: d.PolicyVersion, Status: broker.StatusOK, ExecMS: 1}
	if argJSON == "" {
		return ev
	}
	canon, err := json.Marshal(args(r.t, argJSON))
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	ev.ArgsHash = hex.EncodeToString(sum[:])
	if ev.Args, err = r.m.MaskRecord(canon); err != nil {
		r.t.Fatal(err)
	}
	return ev
}

func events(evs ...broker.Event) iter.Seq2[broker.Event, error] {
	return func(yield func(broker.Event, error) bool) {
		for _, ev := range evs {
			if !yield(ev, nil) {
				return
			}
		}
	}
}

func backtest(t *testing.T, cfg BacktestConfig, evs ...broker.Event) *BacktestReport {
	t.Helper()
	rep, err := Backtest(context.Background(), cfg, events(evs...))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// after returns the candidate's verdict for the only record.
func after(t *testing.T, cfg BacktestConfig, ev broker.Event) (Verdict, string) {
	t.Helper()
	rep := backtest(t, cfg, ev)
	if rep.Evaluated != 1 {
		t.Fatalf("evaluated %d records, want 1: %+v", rep.Evaluated, rep)
	}
	if len(rep.Changes) == 0 {
		return Verdict{Decision: ev.Decision, Rule: ev.Rule}, ""
	}
	return rep.Changes[0].After, rep.Changes[0].Reason
}

func allowBy(rule string) broker.Decision {
	return broker.Decision{Effect: broker.EffectAllow, Rule: rule}
}

// withRules is supportBot with the refund node's rules replaced.
func withRules(rules ...config.Rule) map[string]config.Graph {
	g := supportBot()
	sb := g["support-bot"]
	n := sb.Nodes["refund"]
	n.Rules = rules
	sb.Nodes["refund"] = n
	g["support-bot"] = sb
	return g
}

func TestBacktestMaskedArgumentsAreUnknown(t *testing.T) {
	r := newRecorder(t)
	for _, c := range []struct {
		name, when, args string
		want             string
	}{
		{"masked field read", `args.email.endsWith("@example.com")`, `{"email":"ada@example.com"}`, VerdictUnknown},
		{"masked field behind a true or", `args.email == "x" || graph == "support-bot"`, `{"email":"ada@example.com"}`, "deny"},
		{"masked field behind a false and", `args.email == "x" && graph == "other"`, `{"email":"ada@example.com"}`, "allow"},
		{"args as a whole", `size(args) > 0`, `{"email":"ada@example.com"}`, VerdictUnknown},
		{"has on a masked field", `has(args.email)`, `{"email":"ada@example.com"}`, VerdictUnknown},
		{"exact field", `args.email.endsWith("@example.com")`, `{"email":"not an address <b>&amp;</b>"}`, "allow"},
		{"exact field matching", `args.email.startsWith("not")`, `{"email":"not an address <b>&amp;</b>"}`, "deny"},
		{"no arguments recorded", `args.email == "x"`, ``, VerdictUnknown},
		{"no arguments recorded, condition without them", `graph == "support-bot"`, ``, "deny"},
		{"caller groups are not recorded", `"finance" in caller.groups`, `{"email":"x@y"}`, VerdictUnknown},
		{"missing argument of an exact record refuses", `args.email == "x"`, `{}`, VerdictError},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, withRules(config.Rule{Tool: "crm_find_customer", When: c.when, Effect: "deny"}), nil)
			ev := r.call("refund", "crm_find_customer", c.args, allowBy("graphs.support-bot.nodes.refund.allow[1]"))
			got, reason := after(t, BacktestConfig{Candidate: e}, ev)
			if got.Decision != c.want {
				t.Fatalf("after = %+v (%s), want %s", got, reason, c.want)
			}
		})
	}
}

func TestReadArgs(t *testing.T) {
	r := newRecorder(t)
	ev := r.call("refund", "billing_refund", `{"amount":120.50,"reason":"card 4242 4242 4242 4242 and ada@example.com","customer_id":7}`, allowBy("x"))
	av := readArgs(ev)
	if av.all || strings.Join(av.masked, ",") != "reason" {
		t.Fatalf("readArgs = %+v, want reason masked only", av)
	}
	if string(ev.Args) == `{"amount":120.50,"customer_id":7,"reason":"card 4242 4242 4242 4242 and ada@example.com"}` {
		t.Fatal("the recorder did not mask the arguments")
	}
	exact := r.call("refund", "billing_refund", `{"amount":1e2,"reason":"\u00e9t\u00e9 <x>","customer_id":7}`, allowBy("x"))
	if av := readArgs(exact); av.all || len(av.masked) > 0 {
		t.Fatalf("unmasked arguments read as %+v, want exact", av)
	}
	// A record whose hash does not match and that holds no mark trusts nothing.
	exact.ArgsHash = strings.Repeat("0", 64)
	if av := readArgs(exact); !av.all {
		t.Fatalf("arguments with a wrong hash read as %+v, want all unknown", av)
	}
	key := r.call("refund", "billing_refund", `{"ada@example.com":1}`, allowBy("x"))
	if av := readArgs(key); !av.all {
		t.Fatalf("a masked argument name read as %+v, want all unknown", av)
	}
}

func TestBacktestScope(t *testing.T) {
	r := newRecorder(t)
	e := newEngine(t, withRules(config.Rule{Tool: "crm_find_customer", When: `has(scope.customer_id) && scope.customer_id == 7`, Effect: "deny"}), nil)
	ev := r.call("refund", "crm_find_customer", `{"email":"x@y"}`, allowBy("graphs.support-bot.nodes.refund.allow[1]"))
	if got, reason := after(t, BacktestConfig{Candidate: e}, ev); got.Decision != "allow" {
		t.Errorf("without a grant the scope is empty, so the rule does not match; got %+v (%s)", got, reason)
	}
	ev.AuthMethod = string(broker.AuthGrant)
	got, reason := after(t, BacktestConfig{Candidate: e}, ev)
	if got.Decision != VerdictUnknown || !strings.Contains(reason, "scope") {
		t.Errorf("a grant's scope is not recorded; got %+v (%s)", got, reason)
	}
}

// TestBacktestFacts: the recorded decision settles a condition on a masked
// argument when the baseline made it and the candidate keeps the condition.
func TestBacktestFacts(t *testing.T) {
	r := newRecorder(t)
	base := newEngine(t, supportBot(), NewMemoryCounters())
	allowRule := "graphs.support-bot.nodes.refund.rules[2]"
	ev := r.call("refund", "crm_find_customer", `{"email":"ada@example.com"}`,
		broker.Decision{Effect: broker.EffectAllow, Rule: allowRule, PolicyVersion: base.PolicyVersion()})

	if got, reason := after(t, BacktestConfig{Candidate: base}, ev); got.Decision != VerdictUnknown {
		t.Fatalf("without a baseline a masked email is unknown; got %+v (%s)", got, reason)
	}
	if rep := backtest(t, BacktestConfig{Candidate: base, Baseline: base}, ev); rep.Changed+rep.Unknown != 0 {
		t.Fatalf("the unchanged policy with its baseline: %+v", rep)
	}

	other := ev
	other.PolicyVersion = "000000000000"
	if got, _ := after(t, BacktestConfig{Candidate: base, Baseline: base}, other); got.Decision != VerdictUnknown {
		t.Errorf("a record of another policy version proves nothing; got %+v", got)
	}

	// A candidate that changes the condition on the masked field cannot use
	// the fact.
	g := supportBot()
	n := g["support-bot"].Nodes["refund"]
	n.Rules[3].When = `args.email == "cfo@example.com"`
	cand := newEngine(t, g, NewMemoryCounters())
	if got, _ := after(t, BacktestConfig{Candidate: cand, Baseline: base}, ev); got.Decision != VerdictUnknown {
		t.Errorf("a changed condition on a masked field: got %+v, want unknown", got)
	}

	// A record the baseline contradicts (its deny rule holds for the
	// recorded, exact arguments) proves nothing.
	bad := r.call("refund", "crm_find_customer", `{"email":"ceo"}`, broker.Decision{Effect: broker.EffectAllow, Rule: allowRule, PolicyVersion: base.PolicyVersion()})
	if f := factsFrom(nil, "", ""); f != nil {
		t.Errorf("factsFrom with no recorded rule = %v", f)
	}
	if rep := backtest(t, BacktestConfig{Candidate: base, Baseline: base}, bad); rep.Changed != 1 {
		t.Errorf("a record whose exact email the policy does not allow: %+v", rep)
	}
}

func TestFactsFrom(t *testing.T) {
	val := func(v tri) func() (tri, []string) { return func() (tri, []string) { return v, nil } }
	rules := []condRule{
		{path: "d0", when: "a", eval: val(isUnknown)},
		{path: "a0", when: "b", eval: val(isUnknown)},
		{path: "a1", when: "c", eval: val(isFalse)},
	}
	f := factsFrom(rules, "a0", "allow")
	if len(f) != 2 || f["a"] || !f["b"] {
		t.Errorf("facts = %v, want a false and b true", f)
	}
	if f := factsFrom(rules, "allow", "allow"); len(f) != 3 || f["a"] || f["b"] || f["c"] {
		t.Errorf("facts for the fallback = %v, want every condition false", f)
	}
	if f := factsFrom(rules, "a1", "allow"); f != nil {
		t.Errorf("a recorded rule whose condition is false here: facts = %v, want none", f)
	}
	if f := factsFrom(rules, "unknown rule", "allow"); f != nil {
		t.Errorf("a recorded rule the policy does not have: facts = %v, want none", f)
	}
	same := []condRule{{path: "d0", when: "a", eval: val(isUnknown)}, {path: "a0", when: "a", eval: val(isUnknown)}}
	if f := factsFrom(same, "a0", "allow"); f != nil {
		t.Errorf("one condition both false and true: facts = %v, want none", f)
	}
}

func TestBacktestCallRefusals(t *testing.T) {
	r := newRecorder(t)
	e := newEngine(t, supportBot(), NewMemoryCounters())
	for _, c := range []struct {
		name, node, tool string
		auth             broker.AuthMethod
		want             Verdict
	}{
		{"tool gone", "refund", "crm_delete_everything", broker.AuthAPIKey, Verdict{Decision: "deny", Code: "unknown_tool"}},
		{"node gone", "nowhere", "crm_list_orders", broker.AuthAPIKey, Verdict{Decision: "deny", Rule: "default"}},
		{"hidden by an unconditional deny", "voider", "billing_void", broker.AuthAPIKey, Verdict{Decision: "deny", Rule: "default"}},
		{"bind without a grant", "refund", "billing_refund", broker.AuthAPIKey,
			Verdict{Decision: "deny", Rule: "graphs.support-bot.nodes.refund.bind.billing_refund.customer_id", Code: "forbidden"}},
		{"bind with a grant", "refund", "billing_refund", broker.AuthGrant, Verdict{Decision: "allow", Rule: "graphs.support-bot.nodes.refund.allow[0]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.auth = c.auth
			ev := r.call(c.node, c.tool, `{"customer_id":7,"amount":5}`, broker.Decision{Effect: broker.EffectApprove, Rule: "recorded"})
			got, reason := after(t, BacktestConfig{Candidate: e}, ev)
			if got != c.want {
				t.Errorf("after = %+v (%s), want %+v", got, reason, c.want)
			}
		})
	}
}

// TestBacktestChargesNothing: a backtest never charges the candidate's
// budget counters, even with budgets on every call.
func TestBacktestChargesNothing(t *testing.T) {
	r := newRecorder(t)
	used := 0
	counters := CountersFunc(func(context.Context, string, int64, time.Duration) (int64, error) {
		used++
		return 0, errors.New("charged")
	})
	g := supportBot()
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{CallsPerRun: 1, RowsPerRun: 1, CallsPerMinute: 1}
	g["support-bot"] = sb
	e := newEngine(t, g, counters)
	var evs []broker.Event
	for range 5 {
		evs = append(evs, r.call("triage", "crm_list_orders", `{"customer_id":1}`, allowBy("graphs.support-bot.nodes.triage.allow[0]")))
	}
	rep := backtest(t, BacktestConfig{Candidate: e, Baseline: e}, evs...)
	if used != 0 {
		t.Fatalf("the backtest charged the budget counters %d times", used)
	}
	if rep.Changed != 4 {
		t.Errorf("with calls_per_run 1, 4 of 5 calls would be refused: %+v", rep)
	}
}

func TestBacktestBudgets(t *testing.T) {
	r := newRecorder(t)
	g := withRules(config.Rule{Tool: "crm_find_customer", When: `args.email == "x"`, Effect: "deny"})
	n := g["support-bot"].Nodes["refund"]
	n.Budgets = config.Budgets{CallsPerRun: 2}
	g["support-bot"].Nodes["refund"] = n
	e := newEngine(t, g, NewMemoryCounters())
	allow := allowBy("graphs.support-bot.nodes.refund.allow[1]")
	masked := r.call("refund", "crm_find_customer", `{"email":"ada@example.com"}`, allow)
	exact := func() broker.Event { return r.call("refund", "crm_find_customer", `{"email":"y"}`, allow) }

	rep := backtest(t, BacktestConfig{Candidate: e}, exact(), masked, exact(), exact())
	want := []string{VerdictUnknown, VerdictUnknown, "deny"}
	if len(rep.Changes) != len(want) {
		t.Fatalf("changes = %+v", rep.Changes)
	}
	for i, c := range rep.Changes {
		if c.After.Decision != want[i] {
			t.Errorf("change %d: after %+v (%s), want %s", i, c.After, c.Reason, want[i])
		}
	}
	if c := rep.Changes[1]; !strings.Contains(c.Reason, "may be used up") || len(c.Possible) != 2 {
		t.Errorf("the third call depends on the masked second one: %+v", c)
	}
	if c := rep.Changes[2]; c.After.Code != "budget_exceeded" || c.After.Rule != "graphs.support-bot.nodes.refund.budgets.calls_per_run" {
		t.Errorf("the fourth call is refused whatever the second was: %+v", c)
	}

	norun := exact()
	norun.Run = ""
	if got, _ := after(t, BacktestConfig{Candidate: e}, norun); got.Code != "invalid_request" {
		t.Errorf("a call without a run under a run budget: %+v", got)
	}
}

func TestBacktestRowsBudget(t *testing.T) {
	r := newRecorder(t)
	g := supportBot()
	n := g["support-bot"].Nodes["triage"]
	n.Budgets = config.Budgets{RowsPerRun: 10}
	g["support-bot"].Nodes["triage"] = n
	e := newEngine(t, g, NewMemoryCounters())
	allow := allowBy("graphs.support-bot.nodes.triage.allow[0]")
	call := func(rows int, status broker.Status) broker.Event {
		ev := r.call("triage", "crm_list_orders", `{"customer_id":1}`, allow)
		ev.Rows, ev.Status = rows, status
		return ev
	}
	rep := backtest(t, BacktestConfig{Candidate: e}, call(6, broker.StatusOK), call(6, broker.StatusOK), call(1, broker.StatusOK))
	if len(rep.Changes) != 2 || rep.Changes[0].After.Code != "budget_exceeded" || rep.Changes[0].After.Decision != "allow" ||
		rep.Changes[1].After.Decision != "deny" {
		t.Fatalf("12 rows of 10: the second result is withheld, the third call refused: %+v", rep.Changes)
	}
	// A call that did not run leaves its rows unknown.
	rep = backtest(t, BacktestConfig{Candidate: e}, call(0, broker.StatusError), call(1, broker.StatusOK))
	if rep.Unknown != 1 || rep.Changes[0].After.Decision != VerdictUnknown {
		t.Fatalf("rows of a call that did not run are unknown: %+v", rep.Changes)
	}
}

func TestBacktestConfigReadSince(t *testing.T) {
	since := time.Date(2026, 3, 2, 9, 30, 45, 0, time.UTC)
	g := supportBot()
	minute := newEngine(t, g, nil)
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{CallsPerMinute: 10}
	g["support-bot"] = sb
	perMinute := newEngine(t, g, NewMemoryCounters())
	sb.Budgets.CallsPerRun = 10
	g["support-bot"] = sb
	perRun := newEngine(t, g, NewMemoryCounters())
	for _, c := range []struct {
		e    *Engine
		want time.Time
	}{
		{minute, since},
		{perMinute, since.Truncate(time.Minute)},
		{perRun, time.Time{}},
	} {
		if got := (BacktestConfig{Candidate: c.e, Since: since}).ReadSince(); !got.Equal(c.want) {
			t.Errorf("ReadSince = %v, want %v", got, c.want)
		}
	}
}

func TestBacktestSelectsAndSkips(t *testing.T) {
	r := newRecorder(t)
	e := newEngine(t, supportBot(), nil)
	refused := r.call("triage", "crm_list_orders", `{"customer_id":"x"}`, broker.Decision{})
	refused.Status, refused.ErrorCode = broker.StatusDenied, "invalid_arguments"
	approval := broker.Event{ID: "apr", Kind: broker.EventApprovalRequested, Time: testNow}
	one := r.call("triage", "crm_list_orders", `{"customer_id":1}`, allowBy("other"))
	two := r.call("refund", "crm_find_customer", `{"email":"a@b"}`, allowBy("other"))
	rep := backtest(t, BacktestConfig{Candidate: e, Node: "triage"}, refused, approval, one, two)
	if rep.Evaluated != 1 || rep.Skipped != 1 || rep.Changed != 1 || rep.Changes[0].Record != one.ID {
		t.Errorf("node filter: %+v", rep)
	}
	rep = backtest(t, BacktestConfig{Candidate: e, Since: two.Time}, refused, one, two)
	if rep.Evaluated != 1 || rep.Skipped != 0 || rep.Changes[0].Record != two.ID {
		t.Errorf("since: %+v", rep)
	}
	if _, err := Backtest(context.Background(), BacktestConfig{}, events()); err == nil {
		t.Error("a backtest without a candidate ran")
	}
	fail := func(yield func(broker.Event, error) bool) { yield(broker.Event{}, errors.New("store down")) }
	if _, err := Backtest(context.Background(), BacktestConfig{Candidate: e}, fail); err == nil || err.Error() != "store down" {
		t.Errorf("a failing read: %v", err)
	}
}

// statementEvent records a statement the way the broker does: the text
// (an HTTP path) masked, the args hash over the statement's arguments.
func (r *recorder) statement(node, target string, st broker.Statement, d broker.Decision) broker.Event {
	r.n++
	args := map[string]any{"statement": st.Text}
	detail := map[string]any{"kind": st.Kind}
	if st.Kind == broker.KindHTTP {
		args = map[string]any{"method": st.Method, "path": st.Path}
		detail["method"], detail["path"] = st.Method, r.m.MaskText(st.Path)
	} else {
		detail["class"], detail["command"], detail["statement"] = st.Class, st.Command, r.m.MaskText(st.Text)
		if len(st.Tables) > 0 {
			detail["tables"] = st.Tables
		}
	}
	b, _ := json.Marshal(args)
	sum := sha256.Sum256(b)
	ev := broker.Event{ID: "stm_" + string(rune('a'+r.n)), Time: r.at.Add(time.Duration(r.n) * time.Second), Kind: broker.EventStatement,
		Principal: "grant:g1", AuthMethod: "grant", Graph: "support-bot", Node: node, Run: "r1", Target: target,
		Tool: broker.PassthroughTool(st.Kind, target), ArgsHash: hex.EncodeToString(sum[:]),
		Decision: string(d.Effect), Rule: d.Rule, Status: broker.StatusOK, Detail: detail}
	// The store hands events back decoded from JSON.
	raw, _ := json.Marshal(ev)
	var out broker.Event
	if err := json.Unmarshal(raw, &out); err != nil {
		r.t.Fatal(err)
	}
	return out
}

func TestBacktestStatements(t *testing.T) {
	r := newRecorder(t)
	g := supportBot()
	n := g["support-bot"].Nodes["triage"]
	n.Passthrough = map[string]config.PassthroughPolicy{
		"crm": {Statements: []string{"read"}, Tables: []string{"customers"}, Rules: []config.Rule{
			{When: `statement.text.contains("sleep")`, Effect: "deny"},
			{When: `statement.class == "write" && statement.tables.exists(t, t == "customers")`, Effect: "approve", Approvers: []string{"group:dba"}},
		}},
		"api": {Methods: []string{"GET"}, Paths: []string{"/customers/*"}},
	}
	g["support-bot"].Nodes["triage"] = n
	e := newEngine(t, g, nil)
	lists := "graphs.support-bot.nodes.triage.passthrough.crm"
	read := func(text string) broker.Statement {
		return broker.Statement{Kind: broker.KindSQL, Class: "read", Command: "SELECT", Tables: []string{"customers"}, Text: text}
	}
	allow := broker.Decision{Effect: broker.EffectAllow, Rule: lists}
	for _, c := range []struct {
		name string
		ev   broker.Event
		want Verdict
	}{
		{"exact text", r.statement("triage", "crm", read("SELECT pg_sleep(1) FROM customers"), allow),
			Verdict{Decision: "deny", Rule: lists + ".rules[0]"}},
		{"masked text", r.statement("triage", "crm", read("SELECT * FROM customers WHERE email = 'ada@example.com'"), allow),
			Verdict{Decision: VerdictUnknown}},
		{"masked text before a rule on the class", r.statement("triage", "crm",
			broker.Statement{Kind: broker.KindSQL, Class: "write", Command: "UPDATE", Tables: []string{"customers"}, Text: "UPDATE customers SET note = 'ada@example.com'"}, allow),
			Verdict{Decision: VerdictUnknown}},
		{"table outside the list", r.statement("triage", "crm", broker.Statement{Kind: broker.KindSQL, Class: "read", Command: "SELECT", Tables: []string{"orders"}, Text: "SELECT 1 FROM orders"}, allow),
			Verdict{Decision: "deny", Rule: lists}},
		{"masked path, allowed method", r.statement("triage", "api", broker.Statement{Kind: broker.KindHTTP, Method: "GET", Path: "/customers/ada@example.com"}, allow),
			Verdict{Decision: VerdictUnknown}},
		{"masked path, refused method", r.statement("triage", "api", broker.Statement{Kind: broker.KindHTTP, Method: "DELETE", Path: "/customers/ada@example.com"}, allow),
			Verdict{Decision: "deny", Rule: "graphs.support-bot.nodes.triage.passthrough.api"}},
		{"exact path", r.statement("triage", "api", broker.Statement{Kind: broker.KindHTTP, Method: "GET", Path: "/customers/7"}, allow),
			Verdict{Decision: "allow", Rule: "graphs.support-bot.nodes.triage.passthrough.api"}},
		{"no passthrough entry", r.statement("refund", "crm", read("SELECT 1 FROM customers"), allow), Verdict{Decision: "deny", Rule: "default"}},
		{"unclassified", r.statement("triage", "crm", broker.Statement{Kind: broker.KindSQL, Text: "SELEC"}, broker.Decision{Effect: broker.EffectDeny, Rule: "unclassified"}),
			Verdict{Decision: "deny", Rule: "unclassified"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, reason := after(t, BacktestConfig{Candidate: e}, c.ev)
			if got != c.want {
				t.Errorf("after = %+v (%s), want %+v", got, reason, c.want)
			}
		})
	}
	done := r.statement("triage", "crm", read("SELECT 1"), allow)
	done.Detail["phase"] = "done"
	if rep := backtest(t, BacktestConfig{Candidate: e}, done); rep.Evaluated+rep.Skipped != 0 {
		t.Errorf("the outcome of a statement is not a decision: %+v", rep)
	}
}
