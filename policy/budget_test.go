package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

func budgeted(graph, node config.Budgets) map[string]config.Graph {
	return map[string]config.Graph{"support-bot": {
		Budgets: graph,
		Nodes: map[string]config.Node{
			"triage": {Allow: []string{"crm_*"}, Budgets: node},
			"other":  {Allow: []string{"crm_*"}},
		},
	}}
}

// calls decides n calls and returns the error of each.
func calls(t *testing.T, e *Engine, c broker.Caller, tl string, n int, now time.Time) []error {
	t.Helper()
	out := make([]error, n)
	for i := range out {
		req := request(t, c, tl, `{}`)
		req.Now = now
		d, err := e.Decide(context.Background(), req)
		if err == nil && d.Effect != broker.EffectAllow {
			t.Fatalf("call %d: %+v", i, d)
		}
		out[i] = err
	}
	return out
}

func wantExceeded(t *testing.T, err error, label string) {
	t.Helper()
	var be *broker.Error
	if !errors.As(err, &be) || be.Code != broker.CodeBudgetExceeded || !strings.Contains(be.Message, label) {
		t.Fatalf("got %v, want budget_exceeded naming %q", err, label)
	}
}

func TestCallsPerRunExhaustedMidRun(t *testing.T) {
	e := newEngine(t, budgeted(config.Budgets{CallsPerRun: 3}, config.Budgets{}), NewMemoryCounters())
	errs := calls(t, e, caller("support-bot", "triage", "r1"), "crm_find_customer", 5, testNow)
	for i := 0; i < 3; i++ {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
	}
	wantExceeded(t, errs[3], "calls_per_run 3 for run r1 of graph support-bot")
	wantExceeded(t, errs[4], "calls_per_run 3 for run r1 of graph support-bot")
	// The run budget is shared by every node of the graph ...
	wantExceeded(t, calls(t, e, caller("support-bot", "other", "r1"), "crm_list_orders", 1, testNow)[0], "run r1")
	// ... and a new run starts from zero.
	if err := calls(t, e, caller("support-bot", "triage", "r2"), "crm_find_customer", 1, testNow)[0]; err != nil {
		t.Fatal(err)
	}
}

func TestDeniedCallsAreNotCharged(t *testing.T) {
	g := budgeted(config.Budgets{CallsPerRun: 1}, config.Budgets{})
	n := g["support-bot"].Nodes["triage"]
	n.Rules = []config.Rule{{Tool: "crm_list_orders", Effect: "deny"}}
	g["support-bot"].Nodes["triage"] = n
	e := newEngine(t, g, NewMemoryCounters())
	c := caller("support-bot", "triage", "r1")
	for i := 0; i < 3; i++ {
		if d, err := e.Decide(context.Background(), request(t, c, "crm_list_orders", `{}`)); err != nil || d.Effect != broker.EffectDeny {
			t.Fatalf("%+v %v", d, err)
		}
	}
	if err := calls(t, e, c, "crm_find_customer", 1, testNow)[0]; err != nil {
		t.Fatalf("denied calls used the budget: %v", err)
	}
}

func TestNodeAndToolBudgets(t *testing.T) {
	node := config.Budgets{CallsPerRun: 4, Tools: map[string]config.Budgets{"crm_list_orders": {CallsPerRun: 1}}}
	e := newEngine(t, budgeted(config.Budgets{}, node), NewMemoryCounters())
	c := caller("support-bot", "triage", "r1")
	if err := calls(t, e, c, "crm_list_orders", 1, testNow)[0]; err != nil {
		t.Fatal(err)
	}
	wantExceeded(t, calls(t, e, c, "crm_list_orders", 1, testNow)[0], "calls_per_run 1 for tool crm_list_orders for run r1 of node triage in graph support-bot")
	// The refused call was refunded from the node budget: 3 more fit.
	errs := calls(t, e, c, "crm_find_customer", 4, testNow)
	for i := 0; i < 3; i++ {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
	}
	wantExceeded(t, errs[3], "calls_per_run 4 for run r1 of node triage in graph support-bot")
	// Another node has no node budget.
	if err := calls(t, e, caller("support-bot", "other", "r1"), "crm_list_orders", 1, testNow)[0]; err != nil {
		t.Fatal(err)
	}
}

func TestCallsPerMinute(t *testing.T) {
	e := newEngine(t, budgeted(config.Budgets{CallsPerMinute: 2}, config.Budgets{}), NewMemoryCounters())
	start := time.Date(2026, 11, 30, 15, 0, 10, 0, time.UTC)
	errs := calls(t, e, caller("support-bot", "triage", "r1"), "crm_find_customer", 3, start)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	wantExceeded(t, errs[2], "calls_per_minute 2")
	// The rate counts across runs ...
	wantExceeded(t, calls(t, e, caller("support-bot", "triage", "r2"), "crm_find_customer", 1, start)[0], "calls_per_minute 2")
	// ... and the next minute starts from zero.
	if err := calls(t, e, caller("support-bot", "triage", "r1"), "crm_find_customer", 1, start.Add(time.Minute))[0]; err != nil {
		t.Fatal(err)
	}
}

func TestRowsPerRun(t *testing.T) {
	e := newEngine(t, budgeted(config.Budgets{RowsPerRun: 100}, config.Budgets{}), NewMemoryCounters())
	c := caller("support-bot", "triage", "r1")
	req := request(t, c, "crm_list_orders", `{}`)
	ctx := context.Background()
	if _, err := e.Decide(ctx, req); err != nil {
		t.Fatal(err)
	}
	// A call with a cap of 60 rows reserves 60 and settles to what it read.
	r, err := e.ReserveRows(ctx, req, 60)
	if err != nil || !r.Limited || r.Rows != 60 {
		t.Fatalf("reserve 60 = %+v, %v", r, err)
	}
	r.Settle(ctx, 60)
	// 40 are left: a call that could read 50 is granted 40.
	if r, err = e.ReserveRows(ctx, req, 50); err != nil || r.Rows != 40 {
		t.Fatalf("reserve 50 with 40 left = %+v, %v", r, err)
	}
	r.Settle(ctx, 10)
	// It read 10, so 30 are left again; an unknown cap takes them all.
	if r, err = e.ReserveRows(ctx, req, -1); err != nil || r.Rows != 30 {
		t.Fatalf("reserve unknown with 30 left = %+v, %v", r, err)
	}
	r.Settle(ctx, 30)
	_, err = e.ReserveRows(ctx, req, 1)
	wantExceeded(t, err, "rows_per_run 100 for run r1 of graph support-bot")
	// Once used up, the next call is refused before it runs.
	_, err = e.Decide(ctx, req)
	wantExceeded(t, err, "rows_per_run 100 for run r1")
	// A call no rows budget covers reserves nothing.
	if r, err := e.ReserveRows(ctx, request(t, caller("support-bot", "refund", "r1"), "crm_find_customer", `{}`), 5); err != nil || r.Limited {
		t.Errorf("unbudgeted reserve = %+v, %v", r, err)
	}
}

// TestRowsReservationUnderConcurrency: with rows_per_run: 2, dozens of
// calls reserving at once (each able to return one row, or up to 1000)
// are granted at most two rows in total, every refusal is budget_exceeded,
// and refused calls give their call-budget charge back. Repeated.
func TestRowsReservationUnderConcurrency(t *testing.T) {
	for _, want := range []int{1, 1000} {
		for round := range 10 {
			counters := NewMemoryCounters()
			e := newEngine(t, budgeted(config.Budgets{RowsPerRun: 2, CallsPerRun: 100}, config.Budgets{}), counters)
			req := request(t, caller("support-bot", "triage", fmt.Sprint("r", round)), "crm_list_orders", `{}`)
			ctx := context.Background()
			var granted, decided atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := e.Decide(ctx, req); err != nil {
						if broker.CodeOf(err) != broker.CodeBudgetExceeded {
							t.Error(err)
						}
						return
					}
					decided.Add(1)
					r, err := e.ReserveRows(ctx, req, want)
					if err != nil {
						if broker.CodeOf(err) != broker.CodeBudgetExceeded {
							t.Error(err)
						}
						return
					}
					granted.Add(int64(r.Rows))
					r.Settle(ctx, r.Rows) // the call returned all it was granted
				}()
			}
			wg.Wait()
			if g := granted.Load(); g > 2 || g < 1 {
				t.Fatalf("want %d round %d: granted %d rows in total, want 1 or 2 (never more than the budget)", want, round, g)
			}
			rows, _ := counters.Add(ctx, "budget/rows_per_run/g=support-bot/run="+fmt.Sprint("r", round), 0, 0)
			calls, _ := counters.Add(ctx, "budget/calls_per_run/g=support-bot/run="+fmt.Sprint("r", round), 0, 0)
			if rows != granted.Load() || calls > decided.Load() {
				t.Fatalf("counters: %d rows (granted %d), %d calls (decided %d)", rows, granted.Load(), calls, decided.Load())
			}
		}
	}
}

func TestBudgetsFailClosed(t *testing.T) {
	var adds atomic.Int64
	down := CountersFunc(func(context.Context, string, int64, time.Duration) (int64, error) {
		adds.Add(1)
		return 0, errors.New("connection refused")
	})
	e := newEngine(t, budgeted(config.Budgets{CallsPerRun: 5, RowsPerRun: 5}, config.Budgets{}), down)
	req := request(t, caller("support-bot", "triage", "r1"), "crm_find_customer", `{}`)
	if _, err := e.Decide(context.Background(), req); broker.CodeOf(err) != broker.CodeUnavailable || strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Decide with the store down = %v, want unavailable without the cause", err)
	}
	if _, err := e.ReserveRows(context.Background(), req, 1); broker.CodeOf(err) != broker.CodeUnavailable {
		t.Fatalf("ReserveRows with the store down = %v", err)
	}
	if adds.Load() == 0 {
		t.Fatal("the store was never asked")
	}
}

func TestRunBudgetNeedsRun(t *testing.T) {
	e := newEngine(t, budgeted(config.Budgets{CallsPerRun: 5}, config.Budgets{}), NewMemoryCounters())
	_, err := e.Decide(context.Background(), request(t, caller("support-bot", "triage", ""), "crm_find_customer", `{}`))
	var be *broker.Error
	if !errors.As(err, &be) || be.Code != broker.CodeInvalidRequest || !strings.Contains(be.Message, broker.HeaderRun) {
		t.Fatalf("got %v, want invalid_request naming %s", err, broker.HeaderRun)
	}
}

func TestMemoryCountersForgetOldWindows(t *testing.T) {
	c := NewMemoryCounters()
	now := testNow
	c.now = func() time.Time { return now }
	ctx := context.Background()
	if n, _ := c.Add(ctx, "w", 1, time.Minute); n != 1 {
		t.Fatal(n)
	}
	if n, _ := c.Add(ctx, "run", 5, 0); n != 5 {
		t.Fatal(n)
	}
	now = now.Add(time.Hour)
	for i := 0; i < 1100; i++ {
		_, _ = c.Add(ctx, "other", 0, 0)
	}
	if _, ok := c.m["w"]; ok {
		t.Fatal("an expired window was kept")
	}
	if n, _ := c.Add(ctx, "run", 0, 0); n != 5 {
		t.Fatalf("run counter = %d, want 5", n)
	}
}

func TestCallsPerRunUnderConcurrency(t *testing.T) {
	e := newEngine(t, budgeted(config.Budgets{CallsPerRun: 100}, config.Budgets{}), NewMemoryCounters())
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				req := broker.Request{Caller: caller("support-bot", "triage", "r1"), Tool: testCatalog()["crm_find_customer"], Args: map[string]any{}, Now: testNow}
				if _, err := e.Decide(context.Background(), req); err == nil {
					ok.Add(1)
				} else if broker.CodeOf(err) == broker.CodeBudgetExceeded {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || refused.Load() != 100 {
		t.Fatalf("%d allowed, %d refused; want 100 and 100", ok.Load(), refused.Load())
	}
}
