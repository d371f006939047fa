package approvals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

// quickExec counts executions without sleeping.
type quickExec struct{ n atomic.Int64 }

func (e *quickExec) Execute(context.Context, broker.Operation) (broker.Output, error) {
	e.n.Add(1)
	return broker.Output{Value: json.RawMessage(`{"refund_id":"rf-1"}`), Rows: 1}, nil
}

// TestRaceApproveDeny: an approve and a deny racing on one request, many
// times over. Whatever the interleaving, a deny that is acknowledged (no
// error) leaves the request denied and the call never runs; when the deny
// is refused, it is because the approve came first, and then the call runs
// once.
func TestRaceApproveDeny(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t, func(c *approvals.Config) { c.Wait = 20 * time.Millisecond })
		exec := &quickExec{}
		b, caller := pipeline(t, e, exec)
		ctx := context.Background()
		acked := 0
		for race := range 40 {
			call := broker.Call{Caller: caller, Door: "http", Tool: "billing_refund", Args: json.RawMessage(fmt.Sprintf(`{"order_id":"o-%d"}`, race))}
			res, err := b.Call(ctx, call)
			if err != nil || res.Pending == nil {
				t.Fatalf("race %d: first call = %+v, %v", race, res, err)
			}
			id := res.Pending.ApprovalID
			before := exec.n.Load()
			var wg sync.WaitGroup
			start := make(chan struct{})
			var approveErr, denyErr error
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				_, approveErr = e.svc.Decide(ctx, id, ana, true, "", "http")
			}()
			go func() {
				defer wg.Done()
				<-start
				_, denyErr = e.svc.Decide(ctx, id, ben, false, "no", "slack")
			}()
			close(start)
			wg.Wait()
			if (approveErr == nil) == (denyErr == nil) {
				t.Fatalf("race %d: approve = %v, deny = %v; exactly one must be acknowledged", race, approveErr, denyErr)
			}
			r, err := e.svc.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			_, callErr := b.Call(ctx, call)
			if denyErr == nil {
				acked++
				if r.Status != broker.ApprovalDenied || broker.CodeOf(callErr) != broker.CodeApprovalDenied || exec.n.Load() != before {
					t.Fatalf("race %d: acknowledged deny but status %s, call %v, %d executions", race, r.Status, callErr, exec.n.Load()-before)
				}
				continue
			}
			if broker.CodeOf(denyErr) != broker.CodeInvalidRequest || r.Status != broker.ApprovalApproved || callErr != nil || exec.n.Load() != before+1 {
				t.Fatalf("race %d: deny refused (%v) but status %s, call %v, %d executions", race, denyErr, r.Status, callErr, exec.n.Load()-before)
			}
			if len(r.Votes) != 1 {
				t.Fatalf("race %d: %d votes stored on an approved request, want only the approving one", race, len(r.Votes))
			}
		}
		t.Logf("%d of 40 denies acknowledged", acked)
	})
}

// TestRaceIdenticalCalls: sixteen identical gated calls at once create
// exactly one request, and once it is approved sixteen repeats at once run
// the call exactly once. Repeated over several runs.
func TestRaceIdenticalCalls(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t, func(c *approvals.Config) { c.Wait = 10 * time.Millisecond; c.ProgressEvery = 5 * time.Millisecond })
		exec := &quickExec{}
		b, _ := pipeline(t, e, exec)
		ctx := context.Background()
		for round := range 6 {
			c, err := b.Identify(ctx, broker.Credentials{Token: agentToken,
				Claimed: broker.Context{Graph: "support-bot", Node: "refund", Run: fmt.Sprintf("run-%d", round)}})
			if err != nil {
				t.Fatal(err)
			}
			call := broker.Call{Caller: c, Door: "mcp", Tool: "billing_refund", Args: json.RawMessage(`{"order_id":"o-1","amount":250}`)}
			results, errs := concurrently(16, func() (broker.Result, error) { return b.Call(ctx, call) })
			ids := map[string]bool{}
			for i, r := range results {
				if errs[i] != nil || r.Pending == nil {
					t.Fatalf("round %d call %d = %+v, %v; want pending", round, i, r, errs[i])
				}
				ids[r.Pending.ApprovalID] = true
			}
			var n int
			if err := e.db.QueryRow(`SELECT COUNT(*) FROM approvals WHERE run_id = '` + c.Run + `'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if len(ids) != 1 || n != 1 {
				t.Fatalf("round %d: %d approval ids answered, %d requests stored; want one", round, len(ids), n)
			}
			var id string
			for id = range ids {
			}
			if _, err := e.svc.Decide(ctx, id, ana, true, "", "http"); err != nil {
				t.Fatal(err)
			}
			before := exec.n.Load()
			results, errs = concurrently(16, func() (broker.Result, error) { return b.Call(ctx, call) })
			for i := range results {
				if errs[i] != nil {
					t.Fatalf("round %d repeat %d: %v", round, i, errs[i])
				}
			}
			// Repeats that only saw it executing answer pending; once more
			// and every one has the recorded result.
			if _, err := b.Call(ctx, call); err != nil {
				t.Fatal(err)
			}
			if got := exec.n.Load() - before; got != 1 {
				t.Fatalf("round %d: the approved call ran %d times, want exactly once", round, got)
			}
		}
	})
}

// concurrently runs f n times at once and returns the answers in order.
func concurrently(n int, f func() (broker.Result, error)) ([]broker.Result, []error) {
	results, errs := make([]broker.Result, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = f()
		}()
	}
	close(start)
	wg.Wait()
	return results, errs
}
