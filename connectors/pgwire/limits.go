package pgwire

import (
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/toolgate/toolgate/broker"
)

// Defaults of the bounds in Config.
const (
	defaultMaxConnsPerGrant = 10
	defaultMaxPendingLogins = 256
	defaultMaxMessageBytes  = 16 << 20
	defaultMaxRowBytes      = 16 << 20
	defaultMaxCellBytes     = 8 << 20
)

// connKey is what the per-grant connection cap counts by: the grant of a
// grant session, the graph and node of an API-key session.
func connKey(c broker.Caller) string {
	if c.Binding != nil && c.Binding.GrantID != "" {
		return "grant " + c.Binding.GrantID
	}
	return "node " + c.Graph + "/" + c.Node
}

// admit counts a new session against its grant's cap.
func (s *Server) admit(c broker.Caller) error {
	k := connKey(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perGrant[k] >= s.cfg.MaxConnsPerGrant {
		return broker.Errorf(broker.CodeForbidden, "%s already has %d open passthrough sessions to target %s, the limit (passthrough.postgres[].max_conns_per_grant); close one first",
			k, s.perGrant[k], s.cfg.Target)
	}
	s.perGrant[k]++
	return nil
}

// release ends a session admit counted.
func (s *Server) release(c broker.Caller) {
	k := connKey(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perGrant[k]--; s.perGrant[k] <= 0 {
		delete(s.perGrant, k)
	}
}

// register hands out toolgate's own cancel key for an upstream session.
func (s *Server) register(hc *pgconn.HijackedConn) cancelKey {
	key := cancelKey{pid: random32(), secret: random32()}
	network, addr := upstreamAddr(s.up)
	s.mu.Lock()
	s.cancels[key] = cancelTarget{network: network, addr: addr, pid: hc.PID, secret: hc.SecretKey}
	s.mu.Unlock()
	return key
}

func (s *Server) unregister(key cancelKey) {
	s.mu.Lock()
	delete(s.cancels, key)
	s.mu.Unlock()
}
