package pgwire

// SwitchOffLock1 makes every statement of s an allowed read naming no
// table, and binds portals toolgate did not see parsed to such a read, so
// a test can prove what the database (lock 2) refuses on its own. It is
// not reachable from configuration.
func SwitchOffLock1(s *Server) { s.lock1Off = true }
