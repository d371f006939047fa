package pgwire

// TrackedStatements returns, for every open session, the named prepared
// statements the proxy believes the server holds (name to SQL), and the
// named portals (name to their statement's SQL).
func (s *Server) TrackedStatements() (stmts, portals []map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		stmts = append(stmts, sess.tr.statements())
		portals = append(portals, sess.tr.portalNames())
	}
	return stmts, portals
}
