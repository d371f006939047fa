package mcp

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// openRequests are the MCP requests being served (notification streams,
// calls waiting for approval, stdio sessions) with their callers, so that
// the ones of a suspended credential can be ended at once.
type openRequests struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]openRequest
}

type openRequest struct {
	caller broker.Caller
	cancel context.CancelCauseFunc
}

// track returns a context that CloseSessions cancels when it refuses c, and
// the function to call when the request ends.
func (o *openRequests) track(ctx context.Context, c broker.Caller) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	o.mu.Lock()
	if o.m == nil {
		o.m = map[uint64]openRequest{}
	}
	o.next++
	id := o.next
	o.m[id] = openRequest{caller: c, cancel: cancel}
	o.mu.Unlock()
	return ctx, func() {
		o.mu.Lock()
		delete(o.m, id)
		o.mu.Unlock()
		cancel(nil)
	}
}

// CloseSessions ends every open MCP request whose caller refuse refuses:
// the notification stream (GET) ends, a waiting call is cancelled, a stdio
// session stops. Their next request is identified again and refused. It
// returns how many it ended.
func (s *Server) CloseSessions(refuse func(broker.Caller) error) int {
	var ended []openRequest
	var causes []error
	s.open.mu.Lock()
	for id, r := range s.open.m {
		if err := refuse(r.caller); err != nil {
			ended = append(ended, r)
			causes = append(causes, err)
			delete(s.open.m, id)
		}
	}
	s.open.mu.Unlock()
	for i, r := range ended {
		s.log.Info("mcp session closed: its credential is suspended", zap.String("principal", r.caller.Principal.Subject), zap.String("reason", causes[i].Error()))
		r.cancel(errors.Join(errSessionClosed, causes[i]))
	}
	return len(ended)
}

// errSessionClosed is the cause of a context CloseSessions cancelled.
var errSessionClosed = errors.New("mcp session closed")
