package recordings

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// The group commit, leader and followers (as MySQL's binlog and RocksDB's
// write groups do it). A caller of Record queues its request; the caller
// that finds no commit in flight leads: it takes what is queued and
// commits it in its own goroutine, so a lone record costs no hand-off to
// another goroutine and is never held back waiting for company. Requests
// that arrive while a commit runs wait in the queue; when the commit ends,
// its leader hands the lead to the oldest waiting request, whose caller
// commits everything queued by then. Under load a batch is what arrived
// during the previous commit; idle, a record commits at once.
//
// Invariant: the queue is not empty only while some caller leads (or has
// been handed the lead and will take it). A leader's own request is the
// first of the queue, so its first batch answers it.

// group is the store's commit queue.
type group struct {
	mu    sync.Mutex
	queue []*request
	// leading is set while a caller leads.
	leading bool
	closed  bool
	// idle is signalled when leading ends; Close waits on it.
	idle sync.Cond
	// full wakes a leader waiting out BatchWait when the queue reaches
	// BatchMax.
	full chan struct{}
}

var errClosed = errors.New("recordings: store closed")

// submit queues r and returns its outcome: nil once it is durable.
func (s *Store) submit(ctx context.Context, r *request) error {
	g := &s.group
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return unavailable(errClosed)
	}
	g.queue = append(g.queue, r)
	if !g.leading {
		g.leading = true
		g.mu.Unlock()
		return s.lead(r)
	}
	if len(g.queue) >= s.cfg.BatchMax {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	select {
	case lead := <-r.wake:
		if lead {
			return s.lead(r)
		}
		return r.err
	case <-ctx.Done():
		return s.abandon(r, ctx.Err())
	}
}

// abandon ends the wait of a caller whose context ended. A request still
// queued is withdrawn: it is never written. One already in a batch may
// still commit; it is recorded but not acknowledged, which the caller
// treats as a failure. A request that was handed the lead leads anyway,
// as the requests queued behind it wait for it.
func (s *Store) abandon(r *request, cause error) error {
	g := &s.group
	g.mu.Lock()
	if r.lead {
		g.mu.Unlock()
		<-r.wake // the lead, sent under mu
		return s.lead(r)
	}
	if i := slices.Index(g.queue, r); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	g.mu.Unlock()
	return unavailable(cause)
}

// lead commits one batch, which holds r, then hands the lead to the oldest
// waiting request or, with none, ends it. It returns r's outcome.
func (s *Store) lead(r *request) error {
	s.gather()
	g := &s.group
	g.mu.Lock()
	n := min(len(g.queue), s.cfg.BatchMax)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	select { // a signal about the batch just taken must not cut the next one short
	case <-g.full:
	default:
	}
	g.mu.Unlock()

	s.commit(batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		next.wake <- true
	} else {
		g.leading = false
		g.idle.Broadcast()
	}
	g.mu.Unlock()
	<-r.wake
	return r.err
}

// gather lets the batch grow before it is taken. Callers woken by the
// previous commit, and calls about to record, may be runnable right now:
// the leader yields the processor to them while the queue keeps growing,
// so under load a batch takes everyone who is about to queue, and on an
// idle process yielding returns at once and nothing waits. With BatchWait
// set it then waits up to that long for the queue to fill.
func (s *Store) gather() {
	g := &s.group
	queued := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue)
	}
	n := queued()
	for spins := 0; spins < gatherSpins && n < s.cfg.BatchMax; {
		runtime.Gosched()
		m := queued()
		if m > n {
			spins = 0
		} else {
			spins++
		}
		n = m
	}
	if s.cfg.BatchWait <= 0 || n >= s.cfg.BatchMax {
		return
	}
	t := time.NewTimer(s.cfg.BatchWait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.full:
	}
}

// closeGroup refuses new requests and waits until what is queued has been
// committed.
func (s *Store) closeGroup() {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for g.leading {
		g.idle.Wait()
	}
}
