package dbtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/internal/db"

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

// SQLite opens a store on a new SQLite file in the test's temporary folder,
// migrated as db.Open migrates, and closes it when the test ends.
func SQLite(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Driver: db.DriverSQLite, Path: filepath.Join(t.TempDir(), "toolgate.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Schema returns every migration of driver ("sqlite" or "postgres"), in
// order, as one script: the whole current schema, for tests that open a
// bare database/sql handle instead of db.Open.
func Schema(t testing.TB, driver string) string {
	t.Helper()
	migs, err := db.Migrations(driver)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range migs {
		b.WriteString(m.SQL)
		b.WriteString("\n;\n")
	}
	return b.String()
}
