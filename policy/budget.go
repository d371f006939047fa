package policy

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Counters keeps budget counters. The engine names every counter with a
// key that already contains the run or the time window it counts, so an
// implementation only adds and remembers; it never needs a clock for
// correctness.
//
// A store-backed implementation must make Add atomic across broker
// instances (an UPSERT ... RETURNING), and fail rather than guess: the
// engine refuses the call when Add returns an error.
type Counters interface {
	// Add adds delta (which may be zero, to read, or negative, to refund)
	// to the counter named key and returns the new total. A key that was
	// never added to counts from zero. window > 0 says the key names a fixed
	// time window of that length, so the store may forget it once the window
	// has passed; window == 0 says the key counts a run and should be kept as
	// long as the store keeps runs.
	Add(ctx context.Context, key string, delta int64, window time.Duration) (int64, error)
}

// CountersFunc adapts a function to Counters.
type CountersFunc func(ctx context.Context, key string, delta int64, window time.Duration) (int64, error)

// Add calls f.
func (f CountersFunc) Add(ctx context.Context, key string, delta int64, window time.Duration) (int64, error) {
	return f(ctx, key, delta, window)
}

// MemoryCounters is an in-process Counters for tests and single-instance
// development. Windowed counters are forgotten two windows after they were
// first touched; run counters are kept until the process ends.
type MemoryCounters struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*memCounter
	ops int
}

type memCounter struct {
	n       int64
	expires time.Time // zero for run counters
}

var _ Counters = (*MemoryCounters)(nil)

// NewMemoryCounters returns empty in-memory counters.
func NewMemoryCounters() *MemoryCounters {
	return &MemoryCounters{now: time.Now, m: map[string]*memCounter{}}
}

// Add implements Counters.
func (c *MemoryCounters) Add(ctx context.Context, key string, delta int64, window time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.ops++; c.ops%1024 == 0 {
		for k, v := range c.m {
			if !v.expires.IsZero() && now.After(v.expires) {
				delete(c.m, k)
			}
		}
	}
	v := c.m[key]
	if v == nil {
		v = &memCounter{}
		if window > 0 {
			v.expires = now.Add(2 * window)
		}
		c.m[key] = v
	}
	v.n += delta
	return v.n, nil
}

// level says what a budget block is attached to.
type level int

const (
	levelGraph level = iota
	levelNode
)

// budget is one limit, e.g. graphs.g.budgets.calls_per_run.
type budget struct {
	path  string
	name  string // calls_per_run | rows_per_run | calls_per_minute
	limit int64
	level level
	// tools is the tool pattern of a budgets.tools entry, "" for all tools.
	tools  string
	window time.Duration
}

func (b *budget) rows() bool { return b.name == "rows_per_run" }

func (e *Engine) usesBudgets() bool {
	for _, g := range e.graphs {
		if len(g.budgets) > 0 {
			return true
		}
		for _, n := range g.exact {
			if len(n.budgets) > 0 {
				return true
			}
		}
		for _, n := range g.globs {
			if len(n.budgets) > 0 {
				return true
			}
		}
	}
	return false
}

// key names the counter of b for a request, and label says it in words for
// a refusal ("calls_per_run 200 for run r1 of graph support-bot").
func (b *budget) key(c broker.Caller, now time.Time) (key, label string) {
	var k, l strings.Builder
	k.WriteString("budget/")
	k.WriteString(b.name)
	k.WriteString("/g=")
	k.WriteString(url.PathEscape(c.Graph))
	fmt.Fprintf(&l, "%s %d", b.name, b.limit)
	if b.tools != "" {
		k.WriteString("/t=")
		k.WriteString(url.PathEscape(b.tools))
		fmt.Fprintf(&l, " for tool %s", b.tools)
	}
	if b.window > 0 {
		k.WriteString("/w=")
		k.WriteString(strconv.FormatInt(now.Unix()/int64(b.window/time.Second), 10))
	} else {
		k.WriteString("/run=")
		k.WriteString(url.PathEscape(c.Run))
		fmt.Fprintf(&l, " for run %s", c.Run)
	}
	if b.level == levelNode {
		k.WriteString("/n=")
		k.WriteString(url.PathEscape(c.Node))
		fmt.Fprintf(&l, " of node %s in graph %s", c.Node, c.Graph)
	} else {
		fmt.Fprintf(&l, " of graph %s", c.Graph)
	}
	return k.String(), l.String()
}

// charge counts one call against every call budget that applies and
// refuses when one is used up; a rows budget already used up refuses too.
// A refused call is refunded, so it costs nothing.
func (e *Engine) charge(ctx context.Context, tp *toolPolicy, req *broker.Request) error {
	if req.Caller.Run == "" {
		for _, b := range tp.budgets {
			if b.window == 0 {
				return broker.Errorf(broker.CodeInvalidRequest, "%s sets %s, so calls must name their run (%s)", b.path, b.name, broker.HeaderRun)
			}
		}
	}
	now, err := requestTime(req)
	if err != nil {
		return err
	}
	var charged []string
	refund := func() {
		for _, k := range charged {
			if _, err := e.counters.Add(context.WithoutCancel(ctx), k, -1, 0); err != nil {
				e.log.Warn("budget refund failed", zap.String("key", k), zap.Error(err))
			}
		}
	}
	for _, b := range tp.budgets {
		key, label := b.key(req.Caller, now)
		if b.rows() {
			total, err := e.counters.Add(ctx, key, 0, b.window)
			if err != nil {
				refund()
				return counterError(err)
			}
			if total >= b.limit {
				refund()
				return broker.Errorf(broker.CodeBudgetExceeded, "budget %s is used up (%d rows), so the call was not run", label, total)
			}
			continue
		}
		total, err := e.counters.Add(ctx, key, 1, b.window)
		if err != nil {
			refund()
			return counterError(err)
		}
		charged = append(charged, key)
		if total > b.limit {
			refund()
			return broker.Errorf(broker.CodeBudgetExceeded, "budget %s is used up, so the call was not run (%s)", label, b.path)
		}
	}
	return nil
}

func counterError(err error) error {
	return broker.Wrap(broker.CodeUnavailable, err, "the budget store is unavailable, so the call is refused; retry later")
}

// ReserveRows reserves rows of every rows budget that applies to req before
// the call runs (broker.RowBudget), so that concurrent calls cannot overrun
// them. want is the call's row cap (negative when unknown: then whatever is
// left is reserved). Each budget's counter is raised by the reservation in
// one atomic add; a budget with less left than want grants what is left,
// and a budget with nothing left refuses with budget_exceeded, refunding
// the reservation and the call's charge on the call budgets, so a refused
// call costs nothing. Settle turns the reservation into the rows the call
// returned.
func (e *Engine) ReserveRows(ctx context.Context, req broker.Request, want int) (broker.RowReservation, error) {
	_, _, tp, _ := e.lookupIn(req.Node, req.Caller, req.Tool)
	if tp == nil {
		return broker.RowReservation{}, nil
	}
	now, err := requestTime(&req)
	if err != nil {
		return broker.RowReservation{}, err
	}
	r := &rowReservation{e: e, grant: want}
	for _, b := range tp.budgets {
		if !b.rows() {
			continue
		}
		if err := r.reserve(ctx, b, req.Caller, now); err != nil {
			r.release(ctx)
			e.refundCalls(ctx, tp, req.Caller, now)
			return broker.RowReservation{}, err
		}
	}
	if len(r.keys) == 0 {
		return broker.RowReservation{}, nil
	}
	r.shrink(ctx)
	return broker.RowReservation{Limited: true, Rows: r.grant, Settle: r.settle}, nil
}

// rowReservation is rows reserved on several budgets for one call.
type rowReservation struct {
	e *Engine
	// grant is the rows every budget granted (the least of them); negative
	// until a budget granted some when want was unknown.
	grant int
	keys  []string
	held  []int // rows reserved on keys[i]
}

// reserve takes up to r.grant rows (all that is left when unknown) of
// budget b.
func (r *rowReservation) reserve(ctx context.Context, b *budget, c broker.Caller, now time.Time) error {
	key, label := b.key(c, now)
	want := int64(r.grant)
	if want < 0 || want > b.limit {
		want = b.limit
	}
	total, err := r.e.counters.Add(ctx, key, want, b.window)
	if err != nil {
		return counterError(err)
	}
	r.keys, r.held = append(r.keys, key), append(r.held, int(want))
	used := total - want
	if used >= b.limit {
		return broker.Errorf(broker.CodeBudgetExceeded, "budget %s is used up (%d rows), so the call was not run (%s)", label, used, b.path)
	}
	if left := b.limit - used; left < want {
		r.e.add(ctx, key, left-want)
		r.held[len(r.held)-1] = int(left)
	}
	if h := r.held[len(r.held)-1]; r.grant < 0 || h < r.grant {
		r.grant = h
	}
	return nil
}

// shrink gives back what a budget reserved beyond the grant of the others.
func (r *rowReservation) shrink(ctx context.Context) {
	for i, k := range r.keys {
		if extra := r.held[i] - r.grant; extra > 0 {
			r.e.add(ctx, k, int64(-extra))
			r.held[i] = r.grant
		}
	}
}

// release gives every reserved row back.
func (r *rowReservation) release(ctx context.Context) {
	for i, k := range r.keys {
		r.e.add(ctx, k, int64(-r.held[i]))
	}
}

// settle turns the reservation into the rows the call returned.
func (r *rowReservation) settle(ctx context.Context, rows int) {
	for i, k := range r.keys {
		if d := rows - r.held[i]; d != 0 {
			r.e.add(ctx, k, int64(d))
		}
	}
}

// add changes a counter where a failure cannot be returned (refunds and
// settling after the call ran); it is logged.
func (e *Engine) add(ctx context.Context, key string, delta int64) {
	if _, err := e.counters.Add(context.WithoutCancel(ctx), key, delta, 0); err != nil {
		e.log.Warn("budget counter not adjusted", zap.String("key", key), zap.Int64("delta", delta), zap.Error(err))
	}
}

// refundCalls gives back the call Decide charged on each call budget of tp.
func (e *Engine) refundCalls(ctx context.Context, tp *toolPolicy, c broker.Caller, now time.Time) {
	for _, b := range tp.budgets {
		if !b.rows() {
			key, _ := b.key(c, now)
			e.add(ctx, key, -1)
		}
	}
}
