package pgwire

import (
	"context"
	"net"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// openSession is an authenticated passthrough session as the listener
// tracks it for CloseSessions.
type openSession struct {
	remote string
	caller broker.Caller
	// closedBecause is set when CloseSessions ended the session.
	closedBecause error
}

// closingPipe is the pipeline with the listener's bookkeeping of open
// sessions: OpenSession registers one, CloseSession forgets it and, when
// CloseSessions ended it, records why.
type closingPipe struct {
	Pipeline
	srv *Server
}

func (p closingPipe) OpenSession(ctx context.Context, s broker.Session) (string, error) {
	id, err := p.Pipeline.OpenSession(ctx, s)
	if err == nil {
		p.srv.mu.Lock()
		p.srv.sessions[id] = &openSession{remote: s.Remote, caller: s.Caller}
		p.srv.mu.Unlock()
	}
	return id, err
}

func (p closingPipe) CloseSession(ctx context.Context, id string, c broker.Caller, door, target string, st broker.SessionStats) {
	p.srv.mu.Lock()
	if o := p.srv.sessions[id]; o != nil && o.closedBecause != nil {
		e, _ := broker.AsError(o.closedBecause)
		st.Reason = string(e.Code) + ": " + e.Message
	}
	delete(p.srv.sessions, id)
	p.srv.mu.Unlock()
	p.Pipeline.CloseSession(ctx, id, c, door, target, st)
}

// CloseSessions ends at once every session whose caller refuse refuses
// (its credential was revoked or its owner disabled): the client
// connection is closed and the session's close record carries the reason.
// It returns how many it ended.
func (s *Server) CloseSessions(refuse func(broker.Caller) error) int {
	var conns []net.Conn
	s.mu.Lock()
	for id, o := range s.sessions {
		if o.closedBecause != nil {
			continue
		}
		err := refuse(o.caller)
		if err == nil {
			continue
		}
		o.closedBecause = err
		if c := s.byRemote[o.remote]; c != nil {
			conns = append(conns, c)
		}
		s.log.Info("passthrough session closed: its credential is suspended", zap.String("session", id), zap.String("principal", o.caller.Principal.Subject))
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}
