package testenv

import "testing"

// StartWith exposes start with a custom binary finder to the tests.
func StartWith(t testing.TB, find func() (string, error)) *PG { return start(t, find) }
