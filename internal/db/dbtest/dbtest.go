package dbtest

import (
	"testing"

	"github.com/toolgate/toolgate/internal/testenv"
)

// Main runs the tests and then stops the throwaway server, if one started.
// Call it from TestMain.
func Main(m *testing.M) { testenv.Main(m) }

// Postgres returns the DSN of a new, empty database on the throwaway
// PostgreSQL of internal/testenv. It skips the test when no PostgreSQL is
// installed, unless TOOLGATE_REQUIRE_POSTGRES=1 (CI), which fails it.
func Postgres(t testing.TB) string {
	t.Helper()
	return testenv.Postgres(t).CreateDB(t)
}
