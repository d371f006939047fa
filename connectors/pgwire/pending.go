package pgwire

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

const (
	// refuseLinger bounds how long a refused connection is kept to
	// deliver its ErrorResponse and see the client close.
	refuseLinger = time.Second
	// refuseDrain caps what is read (and discarded) from a refused client.
	refuseDrain = 16 << 10
	// refusalLogEvery is the quiet time after which a refusal is logged
	// again: one line per burst, with how many were refused since.
	refusalLogEvery = 10 * time.Second
)

// acceptVerdict is what accept decides for a new connection.
type acceptVerdict int

const (
	acceptServe   acceptVerdict = iota // logging in under a loginSlot
	acceptRefused                      // refused with SQLSTATE 53300
	acceptDropped                      // refused without a word: too many refusals in flight
	acceptClosed                       // the server is closing
)

// loginCount is the server's count of connections not yet logged in and
// of refusals; the Server's mu guards it.
type loginCount struct {
	pending  int
	refusing int
	// refused counts the refusals since the last log line, at lastLog.
	refused int
	lastLog time.Time
}

// loginSlot is one connection's place under max_pending_logins. release
// gives it back exactly once, whichever path comes first: logged in,
// refused, timed out or closed.
type loginSlot struct {
	once sync.Once
	srv  *Server
}

func (l *loginSlot) release() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.srv.mu.Lock()
		l.srv.logins.pending--
		l.srv.mu.Unlock()
	})
}

// accept counts a new connection as logging in, or refuses it when
// max_pending_logins connections already are. Refusals are answered
// only while no more than max_pending_logins of them are in flight;
// beyond that the connection is closed at once.
func (s *Server) accept(c net.Conn) (*loginSlot, acceptVerdict) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, acceptClosed
	}
	lc := &s.logins
	if lc.pending < s.cfg.MaxPendingLogins {
		lc.pending++
		s.conns[c] = struct{}{}
		s.byRemote[c.RemoteAddr().String()] = c
		s.mu.Unlock()
		return &loginSlot{srv: s}, acceptServe
	}
	verdict := acceptRefused
	if lc.refusing >= s.cfg.MaxPendingLogins {
		verdict = acceptDropped
	} else {
		lc.refusing++
	}
	lc.refused++
	now := time.Now()
	logIt, refused := now.Sub(lc.lastLog) >= refusalLogEvery, lc.refused
	if logIt {
		lc.lastLog, lc.refused = now, 0
	}
	s.mu.Unlock()
	if logIt {
		s.log.Warn("refusing passthrough connections: too many are still logging in (passthrough.postgres[].max_pending_logins)",
			zap.Int("max_pending_logins", s.cfg.MaxPendingLogins), zap.Int("refused", refused))
	}
	return nil, verdict
}

// refuse answers a connection accept refused with SQLSTATE 53300
// (too_many_connections) and closes it. It reads nothing of the startup
// but what it discards to close cleanly, and nothing reaches the target.
func (s *Server) refuse(c net.Conn) {
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		s.logins.refusing--
		s.mu.Unlock()
	}()
	_ = c.SetDeadline(time.Now().Add(refuseLinger))
	s.fatal(c, "53300", fmt.Sprintf("too many connections to target %s are still logging in, the limit (passthrough.postgres[].max_pending_logins = %d); try again shortly",
		s.cfg.Target, s.cfg.MaxPendingLogins))
	// Half-close, then read until the client closes too: closing with its
	// startup unread would reset the connection and could lose the error.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
}
