package postgres

// SessionSafe exposes sessionSafe to the external tests.
var SessionSafe = sessionSafe
