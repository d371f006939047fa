package broker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The fakes below are the smallest implementations of the broker's
// interfaces that let each pipeline stage be observed.

type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, token string) (Principal, *Binding, error) {
	switch token {
	case "tgk_good":
		return Principal{Subject: "key:bot", Method: AuthAPIKey, TokenID: "key:bot"}, nil, nil
	case "tg_grant":
		return Principal{Subject: "grant:gr_1", Method: AuthGrant, TokenID: "gr_1"}, &Binding{GrantID: "gr_1", Graph: "g", Node: "refund", Run: "r1", Scope: map[string]any{"customer_id": json.Number("7")}}, nil
	case "boom":
		return Principal{}, nil, errors.New("idp connection reset: secret-detail")
	}
	return Principal{}, nil, Errorf(CodeUnauthenticated, "bad token")
}

// fakePolicy allows "read" to every node; "refund" is allowed, approve when
// amount > 100; "explode" makes policy fail.
type fakePolicy struct {
	rsv    *rowLedger // rows budget; nil for none
	rsvErr error
}

// rowLedger records what a rows budget reserved and settled.
type rowLedger struct {
	mu      sync.Mutex
	grant   int
	want    []int
	settled []int
}

// fakeNode is the caller's node, as the fake policy resolves it.
type fakeNode string

func (n fakeNode) Path() string { return "graphs.g.nodes." + string(n) }

func (fakePolicy) MayActAs(p Principal, graph string) bool {
	return graph == "g" && p.Subject == "key:bot"
}

// Graph g declares the nodes billing, refund and triage; graph other
// declares none, and key:bot may not act as it.
func (p fakePolicy) Node(c Caller) Node {
	if c.Graph != "g" || !slices.Contains(p.NodeKeys(c.Graph), c.Node) {
		return nil
	}
	return fakeNode(c.Node)
}
func (fakePolicy) HasGraph(graph string) bool { return graph == "g" || graph == "other" }
func (fakePolicy) NodeKeys(graph string) []string {
	if graph != "g" {
		return nil
	}
	return []string{"billing", "refund", "triage"}
}
func (fakePolicy) Visible(n Node, t *Tool) bool { return n != nil && t.Name != "hidden" }
func (fakePolicy) Decide(_ context.Context, r Request) (Decision, error) {
	switch r.Tool.Name {
	case "explode":
		return Decision{}, errors.New("cel: evaluation blew up")
	case "refund":
		if n, _ := r.Args["amount"].(json.Number).Float64(); n > 100 {
			return Decision{Effect: EffectApprove, Rule: "rules[0]"}, nil
		}
	case "denied":
		return Decision{Effect: EffectDeny, Rule: "rules[1]", Reason: "not today"}, nil
	}
	return Decision{Effect: EffectAllow, Rule: "allow[0]"}, nil
}
func (p fakePolicy) ReserveRows(_ context.Context, _ Request, want int) (RowReservation, error) {
	if p.rsvErr != nil {
		return RowReservation{}, p.rsvErr
	}
	if p.rsv == nil {
		return RowReservation{}, nil
	}
	p.rsv.mu.Lock()
	defer p.rsv.mu.Unlock()
	p.rsv.want = append(p.rsv.want, want)
	return RowReservation{Limited: true, Rows: p.rsv.grant, Settle: func(_ context.Context, rows int) {
		p.rsv.mu.Lock()
		defer p.rsv.mu.Unlock()
		p.rsv.settled = append(p.rsv.settled, rows)
	}}, nil
}

func (fakePolicy) Bound(_ Node, c Caller, t *Tool) (map[string]any, error) {
	if t.Name != "refund" || c.Binding == nil {
		return nil, nil
	}
	return map[string]any{"customer_id": c.Scope()["customer_id"]}, nil
}

type fakeMasker struct{}

func (fakeMasker) PrepareTool(*Tool) (ToolMask, error) {
	return ToolMaskFunc(func(doc []byte) ([]byte, MaskStats, error) {
		return []byte(strings.ReplaceAll(string(doc), "4242424242424242", "************4242")), MaskStats{"detector:card": 1}, nil
	}), nil
}
func (fakeMasker) MaskRecord(doc []byte) ([]byte, error) {
	return []byte(strings.ReplaceAll(string(doc), "4242424242424242", "************4242")), nil
}
func (fakeMasker) MaskText(s string) string { return strings.ReplaceAll(s, "4242424242424242", "****") }

type fakeRecorder struct {
	mu   sync.Mutex
	evs  []Event
	fail bool
}

func (r *fakeRecorder) Record(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("disk full")
	}
	r.evs = append(r.evs, ev)
	return nil
}

func (r *fakeRecorder) last(t *testing.T) Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.evs) == 0 {
		t.Fatal("nothing was recorded")
	}
	return r.evs[len(r.evs)-1]
}

type fakeExec struct {
	mu  sync.Mutex
	ops []Operation
	out string
	err error
}

func (e *fakeExec) Execute(_ context.Context, op Operation) (Output, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ops = append(e.ops, op)
	if e.err != nil {
		return Output{}, e.err
	}
	return Output{Value: json.RawMessage(e.out), Rows: 1}, nil
}

// RowCap is a target whose calls return at most 50 rows.
func (e *fakeExec) RowCap(op Operation) int {
	if op.SQL != nil && op.SQL.MaxRows > 0 {
		return op.SQL.MaxRows
	}
	return 50
}

func (e *fakeExec) count() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.ops) }

type fakeApprovals struct{ out ApprovalOutcome }

func (a fakeApprovals) Await(context.Context, ApprovalRequest) (ApprovalOutcome, error) {
	return a.out, nil
}

// spec requires every property listed and binds them in order.
type fakeSpec struct{ args []string }

func (s fakeSpec) ValidateArgs(args map[string]any) error {
	for _, a := range s.args {
		if _, ok := args[a]; !ok {
			return &Error{Code: CodeInvalidArguments, Field: a, Message: "missing required argument " + a}
		}
	}
	return nil
}
func (s fakeSpec) Operation(args map[string]any) (Operation, error) {
	op := Operation{SQL: &SQLOperation{Statement: "SELECT $1"}}
	for _, a := range s.args {
		op.SQL.Args = append(op.SQL.Args, args[a])
	}
	return op, nil
}

type fakeCatalog map[string]*Tool

func (c fakeCatalog) Lookup(n string) (*Tool, bool) { t, ok := c[n]; return t, ok }
func (c fakeCatalog) Tools() []*Tool {
	var out []*Tool
	for _, n := range []string{"denied", "explode", "hidden", "read", "refund"} {
		out = append(out, c[n])
	}
	return out
}

type env struct {
	b    *Broker
	exec *fakeExec
	rec  *fakeRecorder
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	cat := fakeCatalog{}
	for _, n := range []string{"denied", "explode", "hidden", "read"} {
		cat[n] = &Tool{Name: n, Target: "db", Spec: fakeSpec{args: []string{"q"}}}
	}
	cat["refund"] = &Tool{Name: "refund", Target: "db", Spec: fakeSpec{args: []string{"customer_id", "amount"}}}
	e := &env{exec: &fakeExec{out: `{"rows":[{"card":"4242424242424242"}],"row_count":1,"truncated":false}`}, rec: &fakeRecorder{}}
	cfg := Config{
		Live:    Live{Catalog: cat, Policy: fakePolicy{}, Masker: fakeMasker{}},
		Targets: map[string]Executor{"db": e.exec}, Auth: fakeAuth{}, Recorder: e.rec,
		Now: func() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) },
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	return e
}

func (e *env) caller(t *testing.T, token, node string) Caller {
	t.Helper()
	c, err := e.b.Identify(context.Background(), Credentials{Token: token, Claimed: Context{Graph: "g", Node: node, Run: "r1"}})
	if err != nil {
		t.Fatalf("identify: %v", err)
	}
	return c
}

func TestCallSucceedsMaskedAndRecorded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RecordResults = true })
	res, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Door: "http", Tool: "read", Args: json.RawMessage(`{"q":"4242424242424242"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.Value), "4242424242424242") || !strings.Contains(string(res.Value), "************4242") {
		t.Errorf("result not masked: %s", res.Value)
	}
	ev := e.rec.last(t)
	if ev.Status != StatusOK || ev.Decision != "allow" || ev.Rule != "allow[0]" || ev.Node != "triage" || ev.Principal != "key:bot" || ev.ID != res.CallID {
		t.Errorf("record = %+v", ev)
	}
	if strings.Contains(string(ev.Args), "4242424242424242") || strings.Contains(string(ev.Result), "4242424242424242") {
		t.Errorf("record holds an unmasked card: args=%s result=%s", ev.Args, ev.Result)
	}
	if len(ev.ArgsHash) != 64 {
		t.Errorf("args hash = %q", ev.ArgsHash)
	}
	if got := e.exec.ops[0].Comment["node"]; got != "triage" {
		t.Errorf("operation comment node = %q", got)
	}
}

// TestRefusals: each refusal has a stable code, runs nothing, and (once the
// caller is known) is recorded.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, token, node, tool, args string
		code                          Code
		recorded                      bool
		mod                           func(*Config)
	}{
		{name: "unknown tool", tool: "nope", args: `{}`, code: CodeUnknownTool, recorded: true},
		{name: "hidden tool", tool: "hidden", args: `{"q":1}`, code: CodeForbidden, recorded: true},
		{name: "policy deny", tool: "denied", args: `{"q":1}`, code: CodeForbidden, recorded: true},
		{name: "policy error fails closed", tool: "explode", args: `{"q":1}`, code: CodeForbidden, recorded: true},
		{name: "missing argument", tool: "read", args: `{}`, code: CodeInvalidArguments, recorded: true},
		{name: "args not an object", tool: "read", args: `[1,2]`, code: CodeInvalidArguments, recorded: true},
		{name: "args malformed", tool: "read", args: `{"q":`, code: CodeInvalidArguments, recorded: true},
		{name: "args trailing data", tool: "read", args: `{"q":1} {"q":2}`, code: CodeInvalidArguments, recorded: true},
		{name: "args too deep", tool: "read", args: strings.Repeat(`{"q":`, 40) + "1" + strings.Repeat("}", 40), code: CodeInvalidArguments, recorded: true},
		{name: "args too large", tool: "read", args: `{"q":"` + strings.Repeat("x", 2<<20) + `"}`, code: CodePayloadTooLarge, recorded: true},
		{name: "approve without approvals", tool: "refund", args: `{"customer_id":1,"amount":500}`, code: CodeForbidden, recorded: true},
		{name: "approval denied", tool: "refund", args: `{"customer_id":1,"amount":500}`, code: CodeApprovalDenied, recorded: true,
			mod: func(c *Config) {
				c.Approvals = fakeApprovals{ApprovalOutcome{ID: "ap_1", Status: ApprovalDenied, Reason: "no"}}
			}},
		{name: "approval expired", tool: "refund", args: `{"customer_id":1,"amount":500}`, code: CodeApprovalExpired, recorded: true,
			mod: func(c *Config) { c.Approvals = fakeApprovals{ApprovalOutcome{ID: "ap_1", Status: ApprovalExpired}} }},
		{name: "bound argument overridden", token: "tg_grant", tool: "refund", args: `{"customer_id":8,"amount":5}`, code: CodeForbidden, recorded: true},
		{name: "target missing", tool: "read", args: `{"q":1}`, code: CodeTargetUnavailable, recorded: true,
			mod: func(c *Config) { c.Targets = map[string]Executor{} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.mod)
			token := c.token
			if token == "" {
				token = "tgk_good"
			}
			node := c.node
			if node == "" && token != "tg_grant" {
				node = "triage"
			}
			caller := e.caller(t, token, node)
			_, err := e.b.Call(context.Background(), Call{Caller: caller, Tool: c.tool, Args: json.RawMessage(c.args)})
			if CodeOf(err) != c.code {
				t.Fatalf("err = %v, want code %s", err, c.code)
			}
			var be *Error
			if !errors.As(err, &be) || be.Message == "" || strings.Contains(be.Message, "secret") {
				t.Errorf("error message unsafe or empty: %#v", err)
			}
			if n := e.exec.count(); n != 0 {
				t.Errorf("refused call executed %d operations", n)
			}
			if c.recorded {
				ev := e.rec.last(t)
				if ev.ErrorCode != string(c.code) || ev.Status == StatusOK {
					t.Errorf("record = %+v", ev)
				}
			}
		})
	}
}

func TestIdentifyRefusals(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		name string
		cr   Credentials
		code Code
	}{
		{"no token", Credentials{}, CodeUnauthenticated},
		{"malformed header", Credentials{Malformed: true}, CodeUnauthenticated},
		{"bad token", Credentials{Token: "tgk_bad"}, CodeUnauthenticated},
		{"authenticator failure", Credentials{Token: "boom"}, CodeUnauthenticated},
		{"graph not allowed", Credentials{Token: "tgk_good", Claimed: Context{Graph: "other"}}, CodeForbidden},
		{"node without graph", Credentials{Token: "tgk_good", Claimed: Context{Node: "triage"}}, CodeUnidentified},
		{"unknown graph", Credentials{Token: "tgk_good", Claimed: Context{Graph: "gg", Node: "triage"}}, CodeUnknownGraph},
		{"grant with contradicting node", Credentials{Token: "tg_grant", Claimed: Context{Node: "triage"}}, CodeForbidden},
		{"grant with contradicting run", Credentials{Token: "tg_grant", Claimed: Context{Run: "r2"}}, CodeForbidden},
		{"grant with contradicting graph", Credentials{Token: "tg_grant", Claimed: Context{Graph: "h"}}, CodeForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.b.Identify(context.Background(), c.cr)
			if CodeOf(err) != c.code {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
			if strings.Contains(err.Error(), "secret-detail") {
				t.Errorf("error leaks the cause: %v", err)
			}
		})
	}
	// A grant's bound values win; agreeing headers are fine.
	c, err := e.b.Identify(context.Background(), Credentials{Token: "tg_grant", Claimed: Context{Node: "refund", ToolCallID: "tc1"}})
	if err != nil || c.Node != "refund" || c.Run != "r1" || c.Graph != "g" || c.ToolCallID != "tc1" {
		t.Fatalf("grant caller = %+v, %v", c, err)
	}
}

func TestUnverifiedCallerRefused(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.b.Call(context.Background(), Call{Caller: Caller{Principal: Principal{Subject: "key:bot"}, Context: Context{Graph: "g", Node: "triage"}}, Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if CodeOf(err) != CodeUnauthenticated || e.exec.count() != 0 {
		t.Fatalf("err = %v, executed %d", err, e.exec.count())
	}
	if _, err := e.b.ListTools(context.Background(), Caller{}); CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("ListTools err = %v", err)
	}
}

func TestBoundArgumentIsForced(t *testing.T) {
	e := newEnv(t, nil)
	c := e.caller(t, "tg_grant", "")
	if _, err := e.b.Call(context.Background(), Call{Caller: c, Tool: "refund", Args: json.RawMessage(`{"amount":5}`)}); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.ops[0].SQL.Args[0]; got != json.Number("7") {
		t.Errorf("customer_id bound to %v, want 7 from the scope", got)
	}
	// The same value as the scope is accepted.
	if _, err := e.b.Call(context.Background(), Call{Caller: c, Tool: "refund", Args: json.RawMessage(`{"customer_id":7,"amount":5}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestAuditFailureWithholdsResult(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.fail = true
	res, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if CodeOf(err) != CodeAuditUnavailable || res.Value != nil {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
}

// TestRowsReservedBeforeRunning: a rows budget is asked before the target
// runs, with the call's row cap. A refusal runs nothing; a smaller grant
// lowers the call's max_rows; the reservation is settled with the rows the
// call returned, and the result is answered (never withheld after the
// target ran).
func TestRowsReservedBeforeRunning(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Live.Policy = fakePolicy{rsvErr: Errorf(CodeBudgetExceeded, "rows_per_run 10 is used up")}
	})
	res, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if CodeOf(err) != CodeBudgetExceeded || res.Value != nil || e.exec.count() != 0 {
		t.Fatalf("res = %+v, err = %v, %d executions; want refused before running", res, err, e.exec.count())
	}
	if last := e.rec.last(t); last.Status != StatusDenied || last.Rows != 0 {
		t.Errorf("record of the refused call = %+v", last)
	}

	led := &rowLedger{grant: 3}
	e = newEnv(t, func(c *Config) { c.Live.Policy = fakePolicy{rsv: led} })
	res, err = e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if err != nil || res.Value == nil {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
	if len(led.want) != 1 || led.want[0] != 50 || e.exec.ops[0].SQL.MaxRows != 3 {
		t.Errorf("reserved %v, ran with max_rows %d; want 50 asked and 3 granted", led.want, e.exec.ops[0].SQL.MaxRows)
	}
	if len(led.settled) != 1 || led.settled[0] != 1 || e.rec.last(t).Rows != 1 {
		t.Errorf("settled %v, recorded %d rows; want 1 and 1", led.settled, e.rec.last(t).Rows)
	}
}

func TestPendingApprovalIsNotAnError(t *testing.T) {
	exp := time.Date(2026, 11, 30, 12, 30, 0, 0, time.UTC)
	e := newEnv(t, func(c *Config) {
		c.Approvals = fakeApprovals{ApprovalOutcome{ID: "ap_1", Status: ApprovalPending, ExpiresAt: exp}}
	})
	res, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "billing"), Tool: "refund", Args: json.RawMessage(`{"customer_id":1,"amount":500}`)})
	if err != nil || res.Pending == nil || res.Value != nil {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
	if res.Pending.ApprovalID != "ap_1" || !strings.Contains(res.Pending.Message, "NOT performed") || e.exec.count() != 0 {
		t.Errorf("pending = %+v, executed %d", res.Pending, e.exec.count())
	}
	if ev := e.rec.last(t); ev.Status != StatusPending || ev.ApprovalID != "ap_1" {
		t.Errorf("record = %+v", ev)
	}
}

func TestTargetErrorIsMasked(t *testing.T) {
	e := newEnv(t, nil)
	e.exec.err = Errorf(CodeTargetError, "duplicate key value (card)=(4242424242424242)")
	_, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if CodeOf(err) != CodeTargetError || strings.Contains(err.Error(), "4242424242424242") {
		t.Fatalf("err = %v", err)
	}
	if ev := e.rec.last(t); strings.Contains(ev.Error, "4242424242424242") {
		t.Errorf("record error unmasked: %s", ev.Error)
	}
}

func TestForeignErrorBecomesIncident(t *testing.T) {
	e := newEnv(t, nil)
	e.exec.err = errors.New("pq: password authentication failed for user admin")
	_, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if CodeOf(err) != CodeInternal || strings.Contains(err.Error(), "password") || !strings.Contains(err.Error(), "incident") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Recorder") {
		t.Fatalf("New(empty) err = %v", err)
	}
}

func TestTraceOf(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}))
	if got := traceOf(ctx); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("traceOf(caller's context) = %q", got)
	}
	if got := traceOf(context.Background()); got != "" {
		t.Errorf("traceOf(no trace) = %q", got)
	}
	if a, b := newTraceID(), newTraceID(); len(a) != 32 || a == b {
		t.Errorf("fresh trace ids = %q, %q", a, b)
	}
}

func TestListToolsHidesBoundArguments(t *testing.T) {
	e := newEnv(t, nil)
	e.b.Snapshot().Catalog().(fakeCatalog)["refund"].InputSchema = json.RawMessage(`{"type":"object","properties":{"customer_id":{"type":"integer"},"amount":{"type":"number"}},"required":["customer_id","amount"]}`)
	tools, err := e.b.ListTools(context.Background(), e.caller(t, "tg_grant", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools {
		if tl.Name != "refund" {
			continue
		}
		if strings.Contains(string(tl.InputSchema), "customer_id") || !strings.Contains(string(tl.InputSchema), "amount") {
			t.Fatalf("schema = %s", tl.InputSchema)
		}
		return
	}
	t.Fatal("refund not listed")
}

// failingMasker fails to mask results, as a masker does on a document
// nested too deep.
type failingMasker struct{ fakeMasker }

func (failingMasker) PrepareTool(*Tool) (ToolMask, error) {
	return ToolMaskFunc(func([]byte) ([]byte, MaskStats, error) {
		return nil, nil, errors.New("the document nests deeper than masking allows (card 4242424242424242)")
	}), nil
}

// TestInternalFailureIsOneIncident: a masking failure is an internal
// failure. The caller sees an incident id and nothing of the cause; the log
// has exactly one line for it, carrying that id and the masked cause; the
// record says it failed.
func TestInternalFailureIsOneIncident(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, func(c *Config) {
		c.Live.Masker = failingMasker{}
		c.Logger = zap.New(core)
	})
	_, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	var be *Error
	if !errors.As(err, &be) || be.Code != CodeInternal || be.Incident() == "" {
		t.Fatalf("err = %#v, want an internal error with an incident", err)
	}
	if !strings.Contains(be.Message, "(incident "+be.Incident()+")") || strings.Contains(be.Message, "nests") {
		t.Errorf("message %q: want the incident id and no cause", be.Message)
	}
	if logs.Len() != 1 {
		t.Fatalf("%d log lines, want exactly 1: %v", logs.Len(), logs.All())
	}
	line := logs.All()[0].ContextMap()
	if line["incident"] != be.Incident() {
		t.Errorf("logged incident %v, caller saw %s", line["incident"], be.Incident())
	}
	if cause, _ := line["error"].(string); !strings.Contains(cause, "nests deeper") || strings.Contains(cause, "4242424242424242") {
		t.Errorf("logged cause %q: want it, masked", cause)
	}
	if ev := e.rec.last(t); ev.Status != StatusError || ev.ErrorCode != string(CodeInternal) || !strings.Contains(ev.Error, be.Incident()) {
		t.Errorf("record = %+v", ev)
	}
}

// TestForeignErrorsAreReportedOnce: a foreign error from a connector is an
// internal failure too; reporting it again (a door passing it through
// Report) logs nothing more.
func TestForeignErrorsAreReportedOnce(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, func(c *Config) { c.Logger = zap.New(core) })
	e.exec.err = errors.New("pq: password authentication failed for user admin")
	_, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	if again := e.b.Report(err); again.Incident() == "" || again.Message != err.(*Error).Message {
		t.Errorf("Report of a reported error = %#v", again)
	}
	if logs.Len() != 1 || logs.All()[0].ContextMap()["incident"] != err.(*Error).Incident() {
		t.Fatalf("log = %v, want one line with the incident", logs.All())
	}
	if e.b.Report(Errorf(CodeForbidden, "no")).Incident() != "" || logs.Len() != 1 {
		t.Error("a refusal was reported as an incident")
	}
}

// outputSpec is fakeSpec with an output schema: results must have rows.
type outputSpec struct{ fakeSpec }

func (outputSpec) CheckOutput(doc json.RawMessage) error {
	if !strings.Contains(string(doc), `"rows"`) {
		return errors.New("at '': missing property 'rows'")
	}
	return nil
}

// TestOutputSchemaBroken: a connector result that breaks the tool's output
// schema is an incident: withheld, logged once, recorded as failed. The
// check runs on the result as the connector returned it.
func TestOutputSchemaBroken(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, func(c *Config) { c.Logger = zap.New(core) })
	cat := e.b.Snapshot().Catalog().(fakeCatalog)
	cat["read"].Spec = outputSpec{fakeSpec{args: []string{"q"}}}
	if err := e.b.Reload(Live{Catalog: cat, Policy: fakePolicy{}, Masker: fakeMasker{}}); err != nil {
		t.Fatal(err)
	}
	c := e.caller(t, "tgk_good", "triage")
	if _, err := e.b.Call(context.Background(), Call{Caller: c, Tool: "read", Args: json.RawMessage(`{"q":1}`)}); err != nil {
		t.Fatalf("a result that matches: %v", err)
	}
	e.exec.out = `{"status":200}`
	res, err := e.b.Call(context.Background(), Call{Caller: c, Tool: "read", Args: json.RawMessage(`{"q":1}`)})
	var be *Error
	if !errors.As(err, &be) || be.Code != CodeInternal || be.Incident() == "" || res.Value != nil {
		t.Fatalf("res = %+v, err = %v; want withheld as an incident", res, err)
	}
	if logs.Len() != 1 || e.rec.last(t).Status != StatusError {
		t.Errorf("log = %v, record = %+v", logs.All(), e.rec.last(t))
	}
}
