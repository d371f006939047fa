package policy

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// tokens is a fake Authenticator: each token names a principal and,
// for grant tokens, a binding.
type tokens map[string]struct {
	p broker.Principal
	b *broker.Binding
}

func (ts tokens) Authenticate(_ context.Context, token string) (broker.Principal, *broker.Binding, error) {
	t, ok := ts[token]
	if !ok {
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "unknown token")
	}
	return t.p, t.b, nil
}

type plainMasker struct{}

func (plainMasker) PrepareTool(*broker.Tool) (broker.ToolMask, error) {
	return broker.ToolMaskFunc(func(doc []byte) ([]byte, broker.MaskStats, error) { return doc, nil, nil }), nil
}
func (plainMasker) MaskRecord(doc []byte) ([]byte, error) { return doc, nil }
func (plainMasker) MaskText(s string) string              { return s }

// pipeline wires the engine into a real broker with executors that count
// what they run.
func pipeline(t *testing.T, graphs map[string]config.Graph) (*broker.Broker, *atomic.Int64, *[]broker.Event) {
	t.Helper()
	e := newEngine(t, graphs, NewMemoryCounters())
	var ran atomic.Int64
	exec := broker.ExecutorFunc(func(context.Context, broker.Operation) (broker.Output, error) {
		ran.Add(1)
		return broker.Output{Value: json.RawMessage(`{"rows":[{"id":1},{"id":2}],"row_count":2}`), Rows: 2}, nil
	})
	var events []broker.Event
	b, err := broker.New(broker.Config{
		Live:    broker.Live{Catalog: testCatalog(), Policy: e, Masker: plainMasker{}},
		Targets: map[string]broker.Executor{"crm": exec, "billing": exec},
		Auth: tokens{
			"key":   {p: broker.Principal{Subject: "key:support-bot", Method: broker.AuthAPIKey}},
			"other": {p: broker.Principal{Subject: "key:intruder", Method: broker.AuthAPIKey}},
			"grant": {p: broker.Principal{Subject: "grant:g1", Method: broker.AuthGrant}, b: &broker.Binding{
				GrantID: "g1", Graph: "support-bot", Node: "refund", Run: "r1", Scope: map[string]any{"customer_id": json.Number("42")}}},
		},
		Recorder: broker.RecorderFunc(func(_ context.Context, ev broker.Event) error { events = append(events, ev); return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, &ran, &events
}

func TestThroughBroker(t *testing.T) {
	g := supportBot()
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{RowsPerRun: 3}
	sb.Nodes["limited"] = config.Node{Allow: []string{"crm_list_orders"}, Budgets: config.Budgets{CallsPerRun: 1}}
	g["support-bot"] = sb
	tests := []struct {
		name         string
		token, node  string
		graph        string
		tool, args   string
		code         broker.Code // "" means the call runs
		msg          string
		ran          int64
		repeatBefore int
	}{
		{name: "allowed", token: "key", graph: "support-bot", node: "triage", tool: "crm_find_customer", args: `{"email":"a@b.c"}`, ran: 1},
		{name: "principal may not act as graph", token: "other", graph: "support-bot", node: "triage", tool: "crm_find_customer", args: `{}`, code: broker.CodeForbidden, msg: "may not act as graph"},
		{name: "tool outside allow list", token: "key", graph: "support-bot", node: "triage", tool: "billing_refund", args: `{}`, code: broker.CodeForbidden, msg: "may not call tool"},
		{name: "deny rule", token: "key", graph: "support-bot", node: "refund", tool: "crm_find_customer", args: `{"email":"ceo@example.com"}`, code: broker.CodeForbidden, msg: "graphs.support-bot.nodes.refund.rules[3]"},
		{name: "bound argument without grant", token: "key", graph: "support-bot", node: "refund", tool: "billing_refund", args: `{"amount": 5}`, code: broker.CodeForbidden, msg: "needs a grant token"},
		{name: "bound argument from grant", token: "grant", tool: "billing_refund", args: `{"amount": 5}`, ran: 1},
		{name: "bound argument overridden", token: "grant", tool: "billing_refund", args: `{"amount": 5, "customer_id": 43}`, code: broker.CodeForbidden, msg: "bound to the grant scope"},
		{name: "bound argument repeated", token: "grant", tool: "billing_refund", args: `{"amount": 5, "customer_id": 42}`, ran: 1},
		{name: "evaluation error", token: "grant", tool: "crm_find_customer", args: `{}`, code: broker.CodeForbidden, msg: "could not be evaluated"},
		{name: "call budget", token: "key", graph: "support-bot", node: "limited", tool: "crm_list_orders", args: `{}`, repeatBefore: 1, code: broker.CodeBudgetExceeded, msg: "calls_per_run 1 for run r9 of node limited", ran: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ran, events := pipeline(t, g)
			ctx := context.Background()
			claimed := broker.Context{Graph: tt.graph, Node: tt.node}
			if tt.graph != "" {
				claimed.Run = "r9"
			}
			c, err := b.Identify(ctx, broker.Credentials{Token: tt.token, Claimed: claimed})
			if err != nil {
				if tt.code != "" && broker.CodeOf(err) == tt.code && strings.Contains(err.Error(), tt.msg) {
					return
				}
				t.Fatalf("Identify: %v", err)
			}
			for i := 0; i < tt.repeatBefore; i++ {
				if _, err := b.Call(ctx, broker.Call{Caller: c, Tool: tt.tool, Args: json.RawMessage(tt.args)}); err != nil {
					t.Fatalf("warm-up call: %v", err)
				}
			}
			_, err = b.Call(ctx, broker.Call{Caller: c, Tool: tt.tool, Args: json.RawMessage(tt.args)})
			switch {
			case tt.code == "" && err != nil:
				t.Fatalf("Call: %v", err)
			case tt.code != "" && (broker.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg)):
				t.Fatalf("Call = %v, want %s containing %q", err, tt.code, tt.msg)
			}
			if ran.Load() != tt.ran {
				t.Fatalf("executor ran %d times, want %d", ran.Load(), tt.ran)
			}
			last := (*events)[len(*events)-1]
			if tt.code == "" && (last.Rule == "" || last.PolicyVersion == "") {
				t.Fatalf("the record names no rule: %+v", last)
			}
		})
	}
}

// TestRowsBudgetThroughBroker: a rows budget is reserved before the call
// runs (a connector that cannot say how many rows it returns reserves all
// that is left) and settled to the rows it returned; a result is never
// withheld after the target ran, and a used-up budget refuses before
// anything runs.
func TestRowsBudgetThroughBroker(t *testing.T) {
	g := supportBot()
	sb := g["support-bot"]
	sb.Budgets = config.Budgets{RowsPerRun: 3}
	g["support-bot"] = sb
	b, ran, events := pipeline(t, g)
	ctx := context.Background()
	c, err := b.Identify(ctx, broker.Credentials{Token: "key", Claimed: broker.Context{Graph: "support-bot", Node: "triage", Run: "r1"}})
	if err != nil {
		t.Fatal(err)
	}
	call := broker.Call{Caller: c, Tool: "crm_list_orders", Args: json.RawMessage(`{}`)}
	for i := range 2 {
		res, err := b.Call(ctx, call)
		if err != nil || res.Value == nil {
			t.Fatalf("call %d = %+v, %v; want its result", i, res, err)
		}
		if last := (*events)[len(*events)-1]; last.Status != broker.StatusOK || last.Rows != 2 {
			t.Fatalf("call %d recorded %+v", i, last)
		}
	}
	if _, err := b.Call(ctx, call); broker.CodeOf(err) != broker.CodeBudgetExceeded || ran.Load() != 2 {
		t.Fatalf("third call = %v after %d runs; want refused before running", err, ran.Load())
	}
}
