package pgwire

// SwitchOffLock1 makes every statement of s an allowed read naming no
// table, binds portals toolgate did not see parsed to such a read, and
// lets the client's encoding through unwatched, so a test can prove what
// the database (lock 2) refuses on its own. It is not reachable from
// configuration.
func SwitchOffLock1(s *Server) { s.lock1Off = true }

// TrackedStatements returns, for every open session, the named prepared
// statements the proxy believes the server holds (name to SQL), and the
// named portals (name to their statement's SQL).
func (s *Server) TrackedStatements() (stmts, portals []map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.live {
		stmts = append(stmts, sess.tr.statements())
		portals = append(portals, sess.tr.portalNames())
	}
	return stmts, portals
}
