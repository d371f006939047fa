package approvals_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

func hashArgs(args map[string]any) string {
	b, _ := json.Marshal(args)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var refundArgs = map[string]any{"order_id": "o-1", "amount": 250, "card": card}

// pending creates a pending request and returns its id.
func pending(t *testing.T, e *env, caller broker.Principal, minApprovals int) string {
	t.Helper()
	out, err := e.svc.Await(context.Background(), request(caller, "run-1", refundArgs, minApprovals))
	if err != nil {
		t.Fatalf("Await: %v", err)
	}
	if out.Status != broker.ApprovalPending || !strings.HasPrefix(out.ID, "ap_") {
		t.Fatalf("outcome = %+v, want a pending ap_ request", out)
	}
	return out.ID
}

type vote struct {
	who     broker.Principal
	approve bool
	code    broker.Code // "" means accepted
	status  broker.ApprovalStatus
}

func TestDecide(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		for _, tc := range []struct {
			name      string
			requester broker.Principal
			min       int
			expireBy  time.Duration
			id        string
			votes     []vote
			final     broker.ApprovalStatus
			voters    int
		}{
			{name: "approve", requester: agent, min: 1,
				votes: []vote{{ana, true, "", broker.ApprovalApproved}}, final: broker.ApprovalApproved, voters: 1},
			{name: "deny", requester: agent, min: 1,
				votes: []vote{{ana, false, "", broker.ApprovalDenied}}, final: broker.ApprovalDenied, voters: 1},
			{name: "any deny denies", requester: agent, min: 2,
				votes: []vote{{ana, true, "", broker.ApprovalPending}, {ben, false, "", broker.ApprovalDenied}}, final: broker.ApprovalDenied, voters: 2},
			{name: "min 2 same person twice counts once", requester: agent, min: 2,
				votes: []vote{{ana, true, "", broker.ApprovalPending}, {ana, true, broker.CodeInvalidRequest, broker.ApprovalPending}}, final: broker.ApprovalPending, voters: 1},
			{name: "min 2 two people", requester: agent, min: 2,
				votes: []vote{{ana, true, "", broker.ApprovalPending}, {ben, true, "", broker.ApprovalApproved}}, final: broker.ApprovalApproved, voters: 2},
			{name: "requester approving own call", requester: ana, min: 1,
				votes: []vote{{ana, true, broker.CodeForbidden, broker.ApprovalPending}}, final: broker.ApprovalPending, voters: 0},
			{name: "same human by another credential", requester: broker.Principal{Subject: "user:sub-123", Email: "ana@example.com", Method: broker.AuthOIDC}, min: 1,
				votes: []vote{{ana, true, broker.CodeForbidden, broker.ApprovalPending}}, final: broker.ApprovalPending, voters: 0},
			{name: "non-approver", requester: agent, min: 1,
				votes: []vote{{eve, true, broker.CodeForbidden, broker.ApprovalPending}, {eve, false, broker.CodeForbidden, broker.ApprovalPending}}, final: broker.ApprovalPending, voters: 0},
			{name: "after expiry", requester: agent, min: 1, expireBy: 31 * time.Minute,
				votes: []vote{{ana, true, broker.CodeApprovalExpired, broker.ApprovalExpired}}, final: broker.ApprovalExpired, voters: 0},
			{name: "unknown id", requester: agent, min: 1, id: "ap_nope",
				votes: []vote{{ana, true, broker.CodeNotFound, ""}}, final: broker.ApprovalPending, voters: 0},
			{name: "double click", requester: agent, min: 1,
				votes: []vote{{ana, true, "", broker.ApprovalApproved}, {ana, true, broker.CodeInvalidRequest, broker.ApprovalApproved}}, final: broker.ApprovalApproved, voters: 1},
			{name: "vote after decision", requester: agent, min: 1,
				votes: []vote{{ana, false, "", broker.ApprovalDenied}, {ben, true, broker.CodeInvalidRequest, broker.ApprovalDenied}}, final: broker.ApprovalDenied, voters: 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := open(t)
				id := pending(t, e, tc.requester, tc.min)
				e.clock.Add(tc.expireBy)
				target := id
				if tc.id != "" {
					target = tc.id
				}
				for i, v := range tc.votes {
					st, err := e.svc.Decide(context.Background(), target, v.who, v.approve, "checked "+card, "http")
					if broker.CodeOf(err) != v.code {
						t.Fatalf("vote %d by %s: err = %v, want code %q", i, v.who.Subject, err, v.code)
					}
					if err != nil {
						var be *broker.Error
						if !asError(err, &be) || be.Message == "" {
							t.Errorf("vote %d: refusal without a message: %v", i, err)
						}
					}
					if st != v.status {
						t.Errorf("vote %d by %s: status = %q, want %q", i, v.who.Subject, st, v.status)
					}
				}
				r, err := e.svc.Get(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if r.Status != tc.final || len(r.Votes) != tc.voters {
					t.Errorf("final = %s with %d votes, want %s with %d", r.Status, len(r.Votes), tc.final, tc.voters)
				}
				for _, v := range r.Votes {
					if strings.Contains(v.Reason, card) {
						t.Errorf("vote reason is not masked: %q", v.Reason)
					}
				}
				if strings.Contains(string(r.Args), card) || !strings.Contains(string(r.Args), maskedCard) {
					t.Errorf("stored args are not masked: %s", r.Args)
				}
				decided := 0
				for _, k := range e.rec.kinds(id) {
					if k == broker.EventApprovalDecided {
						decided++
					}
				}
				if want := map[bool]int{true: 1, false: 0}[tc.final == broker.ApprovalApproved || tc.final == broker.ApprovalDenied]; decided != want {
					t.Errorf("decided events = %d, want %d", decided, want)
				}
			})
		}
	})
}

func asError(err error, target **broker.Error) bool {
	e, _ := broker.AsError(err)
	*target = e
	return e != nil && e.Code != broker.CodeInternal
}

func TestAwaitPendingThenDecided(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t)
		var progress []string
		var mu sync.Mutex
		ctx := broker.WithProgress(context.Background(), func(_, _ float64, msg string) {
			mu.Lock()
			progress = append(progress, msg)
			mu.Unlock()
		})
		start := time.Now()
		out, err := e.svc.Await(ctx, request(agent, "run-1", refundArgs, 1))
		if err != nil || out.Status != broker.ApprovalPending {
			t.Fatalf("Await = %+v, %v", out, err)
		}
		if el := time.Since(start); el < 50*time.Millisecond {
			t.Errorf("Await returned after %v, before Wait", el)
		}
		if !out.ExpiresAt.Equal(epoch.Add(30 * time.Minute)) {
			t.Errorf("expires_at = %v", out.ExpiresAt)
		}
		mu.Lock()
		if len(progress) == 0 || !strings.Contains(progress[0], out.ID) || strings.Contains(strings.Join(progress, " "), card) {
			t.Errorf("progress = %q", progress)
		}
		mu.Unlock()

		// A repeat finds the same request; a decision wakes it before Wait.
		long := open(t, func(c *approvals.Config) { c.Wait = 10 * time.Second; c.ProgressEvery = 10 * time.Second })
		done := make(chan broker.ApprovalOutcome, 1)
		go func() {
			out, err := long.svc.Await(context.Background(), request(agent, "run-1", refundArgs, 1))
			if err != nil {
				t.Error(err)
			}
			done <- out
		}()
		id := waitForPending(t, long.svc)
		time.Sleep(20 * time.Millisecond)
		start = time.Now()
		if _, err := long.svc.Decide(context.Background(), id, ana, true, "", "cli"); err != nil {
			t.Fatal(err)
		}
		select {
		case out := <-done:
			if out.ID != id || out.Status != broker.ApprovalApproved || len(out.Deciders) != 1 || out.Deciders[0] != ana.Subject {
				t.Errorf("woken outcome = %+v", out)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("waiter woke after %v", el)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the decision did not wake the waiter")
		}
		want := []broker.EventKind{broker.EventApprovalRequested, broker.EventApprovalVoted, broker.EventApprovalDecided}
		if got := long.rec.kinds(id); !equalKinds(got, want) {
			t.Errorf("events = %v, want %v", got, want)
		}
	})
}

func equalKinds(a, b []broker.EventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResume(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t)
		ctx := context.Background()
		id := pending(t, e, agent, 1)
		if _, err := e.svc.Decide(ctx, id, ana, true, "", "http"); err != nil {
			t.Fatal(err)
		}
		other := map[string]any{"order_id": "o-1", "amount": 9999, "card": card}

		// Changed arguments never ride on the old approval.
		out, err := e.svc.Await(ctx, request(agent, "run-1", other, 1))
		if err != nil || out.Status != broker.ApprovalPending || out.ID == id {
			t.Fatalf("changed args: %+v, %v; want a new pending request", out, err)
		}
		for _, tc := range []struct {
			name string
			req  broker.ApprovalRequest
		}{
			{"different arguments", request(agent, "run-1", other, 1)},
			{"another run", request(agent, "run-2", refundArgs, 1)},
			{"another node", func() broker.ApprovalRequest {
				r := request(agent, "run-1", refundArgs, 1)
				r.Caller.Node = "triage"
				return r
			}()},
			{"another tool", func() broker.ApprovalRequest {
				r := request(agent, "run-1", refundArgs, 1)
				r.Tool = &broker.Tool{Name: "billing_void", Target: "billing"}
				return r
			}()},
			{"unknown id", func() broker.ApprovalRequest {
				r := request(agent, "run-1", refundArgs, 1)
				r.ResumeID = "ap_unknown"
				return r
			}()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := tc.req
				if req.ResumeID == "" {
					req.ResumeID = id
				}
				out, err := e.svc.Await(ctx, req)
				if broker.CodeOf(err) != broker.CodeForbidden {
					t.Fatalf("Await = %+v, %v; want forbidden", out, err)
				}
				if r, _ := e.svc.Get(ctx, id); r.Status != broker.ApprovalApproved {
					t.Errorf("old request is %s, want still approved (not consumed)", r.Status)
				}
			})
		}
		// The right call resumes and claims it.
		req := request(agent, "run-1", refundArgs, 1)
		req.ResumeID = id
		out, err = e.svc.Await(ctx, req)
		if err != nil || out.Status != broker.ApprovalApproved || out.ID != id {
			t.Fatalf("resume = %+v, %v", out, err)
		}
		if r, _ := e.svc.Get(ctx, id); r.Status != broker.ApprovalExecuting {
			t.Errorf("status = %s, want executing", r.Status)
		}
	})
}

func TestSweep(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t)
		ctx := context.Background()
		id := pending(t, e, agent, 1)
		decided := pending(t, e, agent, 1)
		_ = decided
		if n, err := e.svc.Sweep(ctx, epoch.Add(29*time.Minute)); err != nil || n != 0 {
			t.Fatalf("early sweep = %d, %v", n, err)
		}
		// Two instances sweeping at once expire the request once.
		other, err := approvals.New(approvals.Config{Store: e.store, Masker: masker{}, Recorder: e.rec, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(31 * time.Minute)
		var wg sync.WaitGroup
		counts := make([]int, 2)
		for i, s := range []*approvals.Service{e.svc, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.Sweep(ctx, e.clock.Now())
				if err != nil {
					t.Error(err)
				}
				counts[i] = n
			}()
		}
		wg.Wait()
		if counts[0]+counts[1] != 1 {
			t.Errorf("expired %v, want exactly one request in total", counts)
		}
		r, _ := e.svc.Get(ctx, id)
		if r.Status != broker.ApprovalExpired {
			t.Errorf("status = %s", r.Status)
		}
		expired := 0
		for _, ev := range e.rec.Events() {
			if ev.Kind == broker.EventApprovalExpired {
				expired++
			}
		}
		if expired != 1 {
			t.Errorf("expired events = %d, want 1", expired)
		}
		// A repeat of an expired request's call asks again.
		out, err := e.svc.Await(ctx, request(agent, "run-1", refundArgs, 1))
		if err != nil || out.Status != broker.ApprovalPending || out.ID == id {
			t.Errorf("after expiry: %+v, %v", out, err)
		}
	})
}

func TestAwaitRefusals(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	ctx := context.Background()
	req := request(agent, "run-1", refundArgs, 1)
	req.Decision.Approvers = nil
	if _, err := e.svc.Await(ctx, req); broker.CodeOf(err) != broker.CodeForbidden {
		t.Errorf("no approvers: %v, want forbidden", err)
	}
	e.rec.SetFail(true)
	if _, err := e.svc.Await(ctx, request(agent, "run-9", refundArgs, 1)); broker.CodeOf(err) != broker.CodeAuditUnavailable {
		t.Errorf("audit down: %v, want audit_unavailable", err)
	}
	list, _ := e.svc.Approvals(ctx, ana, broker.ApprovalFilter{})
	for _, r := range list {
		if r.Status == broker.ApprovalPending {
			t.Errorf("an unrecorded request is pending: %+v", r)
		}
	}
	// A broken store fails closed.
	e.rec.SetFail(false)
	e.db.Close()
	if out, err := e.svc.Await(ctx, request(agent, "run-1", refundArgs, 1)); broker.CodeOf(err) != broker.CodeUnavailable {
		t.Errorf("store down: %+v, %v, want unavailable", out, err)
	}
}

// waitForPending returns the id of the first pending request svc lists.
func waitForPending(t *testing.T, svc *approvals.Service) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		list, err := svc.Approvals(context.Background(), ana, broker.ApprovalFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if r.Status == broker.ApprovalPending {
				return r.ID
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no pending request appeared")
	return ""
}

func TestRunSweepsInTheBackground(t *testing.T) {
	e := newEnv(t, sqliteDB(t), func(c *approvals.Config) { c.SweepEvery = 10 * time.Millisecond })
	id := pending(t, e, agent, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	e.clock.Add(time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := e.svc.Get(context.Background(), id)
		if r.Status == broker.ApprovalExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %s, want expired by the sweeper", r.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v", err)
	}
	if _, err := e.svc.Decide(context.Background(), id, ana, true, "", "cli"); broker.CodeOf(err) != broker.CodeApprovalExpired {
		t.Errorf("decision after expiry = %v, want approval_expired", err)
	}
}

// TestSweepAbandonsStaleExecution: a call that took an approval and never
// reported its outcome (its instance stopped mid-call) does not hold the
// request forever. After StaleAfter the sweeper consumes it with an error
// that says the outcome is unknown; repeats get that error and nothing is
// run again.
func TestSweepAbandonsStaleExecution(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t)
		ctx := context.Background()
		id := pending(t, e, agent, 1)
		if _, err := e.svc.Decide(ctx, id, ben, true, "", "http"); err != nil {
			t.Fatal(err)
		}
		// The repeat claims the approval; its caller then "crashes" and
		// never calls Complete.
		out, err := e.svc.Await(ctx, request(agent, "run-1", refundArgs, 1))
		if err != nil || out.Status != broker.ApprovalApproved {
			t.Fatalf("claim: %+v, %v", out, err)
		}
		e.clock.Add(10 * time.Minute)
		if n, err := e.svc.Sweep(ctx, e.clock.Now()); err != nil || n != 0 {
			t.Fatalf("sweep before StaleAfter = %d, %v", n, err)
		}
		e.clock.Add(6 * time.Minute)
		if n, err := e.svc.Sweep(ctx, e.clock.Now()); err != nil || n != 1 {
			t.Fatalf("sweep after StaleAfter = %d, %v", n, err)
		}
		r, _ := e.svc.Get(ctx, id)
		if r.Status != broker.ApprovalConsumed || r.ErrorCode != string(broker.CodeUnavailable) {
			t.Fatalf("request = %s %s", r.Status, r.ErrorCode)
		}
		// A repeat now gets the error at once instead of waiting; it is
		// not handed the approval to run again.
		_, err = e.svc.Await(ctx, request(agent, "run-1", refundArgs, 1))
		if broker.CodeOf(err) != broker.CodeUnavailable || !strings.Contains(err.Error(), "not run again") {
			t.Fatalf("repeat after abandon: %v", err)
		}
		consumed := 0
		for _, ev := range e.rec.Events() {
			if ev.Kind == broker.EventApprovalConsumed {
				consumed++
			}
		}
		if consumed != 1 {
			t.Errorf("approval_consumed events = %d, want 1", consumed)
		}
	})
}
