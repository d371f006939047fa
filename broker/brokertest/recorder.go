package brokertest

import (
	"context"
	"errors"
	"sync"

	"github.com/toolgate/toolgate/broker"
)

// ErrRecordFailed is what Record returns while the Recorder is set to fail.
var ErrRecordFailed = errors.New("audit store down")

// Recorder is an in-memory broker.Recorder, safe for concurrent use. The
// zero value keeps every event it is given.
type Recorder struct {
	mu     sync.Mutex
	events []broker.Event
	fail   bool
}

var _ broker.Recorder = (*Recorder)(nil)

// Record keeps ev, or returns ErrRecordFailed and keeps nothing while the
// Recorder is set to fail.
func (r *Recorder) Record(_ context.Context, ev broker.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return ErrRecordFailed
	}
	r.events = append(r.events, ev)
	return nil
}

// SetFail makes every later Record fail (true) or succeed again (false).
func (r *Recorder) SetFail(fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = fail
}

// Events returns a copy of the recorded events, oldest first.
func (r *Recorder) Events() []broker.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Event(nil), r.events...)
}

// OfKind returns a copy of the recorded events of one kind, oldest first.
func (r *Recorder) OfKind(kind broker.EventKind) []broker.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Event
	for _, ev := range r.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// Len returns how many events were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Last returns the last recorded event; ok is false when none was recorded.
func (r *Recorder) Last() (ev broker.Event, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return broker.Event{}, false
	}
	return r.events[len(r.events)-1], true
}
