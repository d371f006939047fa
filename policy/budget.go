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

// MeterRows charges the rows a call returned against its rows budgets. When
// a budget is exceeded the error is budget_exceeded and the broker withholds
// the result.
func (e *Engine) MeterRows(ctx context.Context, req broker.Request, rows int) error {
	_, _, tp, _ := e.lookup(req.Caller, req.Tool)
	if tp == nil || rows <= 0 {
		return nil
	}
	for _, b := range tp.budgets {
		if !b.rows() {
			continue
		}
		key, label := b.key(req.Caller, req.Now)
		total, err := e.counters.Add(ctx, key, int64(rows), b.window)
		if err != nil {
			return counterError(err)
		}
		if total > b.limit {
			return broker.Errorf(broker.CodeBudgetExceeded, "budget %s is exceeded (%d rows), so this result is withheld (%s)", label, total, b.path)
		}
	}
	return nil
}
