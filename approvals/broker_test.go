package approvals_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

const agentToken = "tgk_agent_secret"

type fixedCatalog struct{ tool *broker.Tool }

func (c fixedCatalog) Lookup(name string) (*broker.Tool, bool) {
	return c.tool, name == c.tool.Name
}
func (c fixedCatalog) Tools() []*broker.Tool { return []*broker.Tool{c.tool} }

type passSpec struct{}

func (passSpec) ValidateArgs(map[string]any) error { return nil }
func (passSpec) Operation(args map[string]any) (broker.Operation, error) {
	return broker.Operation{SQL: &broker.SQLOperation{Statement: "SELECT 1", Args: []any{args["order_id"]}}}, nil
}

type agentAuth struct{}

func (agentAuth) Authenticate(_ context.Context, token string) (broker.Principal, *broker.Binding, error) {
	if token == agentToken {
		return agent, nil, nil
	}
	return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "unknown token")
}

// approvePolicy lets anyone act as any graph and sends every call to
// group:finance.
type approvePolicy struct{}

func (approvePolicy) MayActAs(broker.Principal, string) bool { return true }
func (approvePolicy) Node(broker.Caller) broker.Node         { return refundNode{} }

// refundNode is every caller's node under approvePolicy.
type refundNode struct{}

func (refundNode) Path() string { return "graphs.support-bot.nodes.refund" }

func (approvePolicy) Decide(context.Context, broker.Request) (broker.Decision, error) {
	return broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]", PolicyVersion: "pv1",
		Approvers: []string{"group:finance"}, MinApprovals: 1}, nil
}
func (approvePolicy) Visible(broker.Node, *broker.Tool) bool { return true }

// countingExec counts executions; each takes a little while, so concurrent
// repeats overlap it.
type countingExec struct {
	n    atomic.Int64
	fail bool
}

func (e *countingExec) Execute(context.Context, broker.Operation) (broker.Output, error) {
	e.n.Add(1)
	time.Sleep(100 * time.Millisecond)
	if e.fail {
		return broker.Output{}, broker.Errorf(broker.CodeTargetError, "billing said no for card %s", card)
	}
	v := `{"refund_id":"rf-1","card":"` + card + `"}`
	return broker.Output{Value: json.RawMessage(v), Rows: 1}, nil
}

// pipeline is a real broker whose approval gate is e's Service.
func pipeline(t *testing.T, e *env, exec broker.Executor) (*broker.Broker, broker.Caller) {
	t.Helper()
	b, err := broker.New(broker.Config{
		Live: broker.Live{Catalog: fixedCatalog{tool: &broker.Tool{Name: "billing_refund", Target: "billing", Spec: passSpec{}}},
			Policy: approvePolicy{}, Masker: masker{}},
		Targets:   map[string]broker.Executor{"billing": exec},
		Auth:      agentAuth{},
		Recorder:  e.rec,
		Approvals: e.svc,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Identify(context.Background(), broker.Credentials{Token: agentToken,
		Claimed: broker.Context{Graph: "support-bot", Node: "refund", Run: "run-7"}})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func TestBrokerExactlyOnce(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t, func(c *approvals.Config) { c.Wait = 100 * time.Millisecond })
		exec := &countingExec{}
		b, caller := pipeline(t, e, exec)
		ctx := context.Background()
		call := broker.Call{Caller: caller, Door: "mcp", Tool: "billing_refund", Args: json.RawMessage(`{"order_id":"o-1","amount":250}`)}

		res, err := b.Call(ctx, call)
		if err != nil || res.Pending == nil {
			t.Fatalf("first call = %+v, %v; want pending", res, err)
		}
		if !strings.Contains(res.Pending.Message, "NOT performed") || exec.n.Load() != 0 {
			t.Fatalf("pending call ran or says otherwise: %+v, %d executions", res.Pending, exec.n.Load())
		}
		id := res.Pending.ApprovalID
		// Still pending: a repeat is held again, nothing runs.
		if res, err := b.Call(ctx, call); err != nil || res.Pending == nil || res.Pending.ApprovalID != id {
			t.Fatalf("repeat before decision = %+v, %v", res, err)
		}
		if _, err := e.svc.Decide(ctx, id, ana, true, "ok", "slack"); err != nil {
			t.Fatal(err)
		}

		// LangGraph re-runs the node: ten repeats at once run it once.
		var wg sync.WaitGroup
		results := make([]broker.Result, 10)
		errs := make([]error, 10)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = b.Call(ctx, call)
			}()
		}
		wg.Wait()
		if n := exec.n.Load(); n != 1 {
			t.Fatalf("executions = %d, want exactly 1", n)
		}
		values := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Errorf("repeat %d: %v", i, errs[i])
				continue
			}
			if r.Pending != nil {
				if r.Pending.ApprovalID != id {
					t.Errorf("repeat %d pending on %s", i, r.Pending.ApprovalID)
				}
				continue
			}
			values++
			if !strings.Contains(string(r.Value), maskedCard) || strings.Contains(string(r.Value), card) {
				t.Errorf("repeat %d: result not masked: %s", i, r.Value)
			}
		}
		if values == 0 {
			t.Error("no repeat got the result")
		}
		// Later repeats answer the recorded result without running.
		for range 3 {
			r, err := b.Call(ctx, call)
			if err != nil || r.Pending != nil || !strings.Contains(string(r.Value), `"refund_id":"rf-1"`) {
				t.Fatalf("late repeat = %+v, %v", r, err)
			}
		}
		if n := exec.n.Load(); n != 1 {
			t.Fatalf("executions = %d after repeats, want 1", n)
		}
		got, _ := e.svc.Get(ctx, id)
		if got.Status != broker.ApprovalConsumed {
			t.Errorf("status = %s, want consumed", got.Status)
		}
		want := []broker.EventKind{broker.EventApprovalRequested, broker.EventApprovalVoted, broker.EventApprovalDecided, broker.EventApprovalConsumed}
		if k := e.rec.kinds(id); !equalKinds(k, want) {
			t.Errorf("approval events = %v, want %v", k, want)
		}
		// Other arguments in the same run need their own approval.
		other := call
		other.Args = json.RawMessage(`{"order_id":"o-1","amount":251}`)
		if r, err := b.Call(ctx, other); err != nil || r.Pending == nil || r.Pending.ApprovalID == id {
			t.Errorf("changed arguments = %+v, %v; want a new pending approval", r, err)
		}
		if n := exec.n.Load(); n != 1 {
			t.Fatalf("executions = %d, want 1", n)
		}
	})
}

func TestBrokerFailedExecutionIsNotRetried(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	exec := &countingExec{fail: true}
	b, caller := pipeline(t, e, exec)
	ctx := context.Background()
	call := broker.Call{Caller: caller, Door: "http", Tool: "billing_refund", Args: json.RawMessage(`{"order_id":"o-2","amount":500}`)}
	res, err := b.Call(ctx, call)
	if err != nil || res.Pending == nil {
		t.Fatalf("first call = %+v, %v", res, err)
	}
	if _, err := e.svc.Decide(ctx, res.Pending.ApprovalID, ben, true, "", "http"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := b.Call(ctx, call)
		if broker.CodeOf(err) != broker.CodeTargetError || strings.Contains(err.Error(), card) {
			t.Fatalf("repeat %d: %v, want the masked target_error", i, err)
		}
	}
	if n := exec.n.Load(); n != 1 {
		t.Errorf("executions = %d, want 1", n)
	}
}
