package db_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  db.Config
		want string
	}{
		{"sqlite default driver", db.Config{Path: "x.db"}, ""},
		{"postgres", db.Config{Driver: "postgres", DSN: "host=/tmp"}, ""},
		{"unknown driver", db.Config{Driver: "mysql", Path: "x"}, `unknown driver "mysql"`},
		{"sqlite without path", db.Config{Driver: "sqlite"}, "needs a file path"},
		{"sqlite in memory", db.Config{Driver: "sqlite", Path: ":memory:"}, "not durable"},
		{"sqlite with dsn", db.Config{Driver: "sqlite", Path: "x", DSN: "y"}, "dsn is for the postgres driver"},
		{"postgres without dsn", db.Config{Driver: "postgres"}, "needs a dsn"},
		{"postgres with path", db.Config{Driver: "postgres", DSN: "x", Path: "y"}, "path is for the sqlite driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOpenRefusesBadConfigWithoutCreatingAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	if _, err := db.Open(context.Background(), db.Config{Driver: "mysql", Path: path}, nil); err == nil {
		t.Fatal("Open with an unknown driver succeeded")
	}
	if matches, _ := filepath.Glob(path + "*"); len(matches) != 0 {
		t.Fatalf("a refused Open created files: %v", matches)
	}
}

func TestRebind(t *testing.T) {
	sqlite := openSQLite(t)
	for _, tc := range []struct {
		in, sqlite, postgres string
	}{
		{"SELECT 1", "SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"SELECT '?' FROM t WHERE b = ?", "SELECT '?' FROM t WHERE b = ?", "SELECT '?' FROM t WHERE b = $1"},
	} {
		if got := sqlite.Rebind(tc.in); got != tc.sqlite {
			t.Errorf("sqlite Rebind(%q) = %q, want %q", tc.in, got, tc.sqlite)
		}
		if got := db.RebindPostgres(tc.in); got != tc.postgres {
			t.Errorf("postgres Rebind(%q) = %q, want %q", tc.in, got, tc.postgres)
		}
	}
}

func openSQLite(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "toolgate.db")}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestSQLitePragmas(t *testing.T) {
	d := openSQLite(t)
	ctx := context.Background()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
		"busy_timeout": "10000",
	} {
		var got string
		if err := d.SQL().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// migrationSuite checks what every driver must do with migrations.
func migrationSuite(t *testing.T, cfg db.Config) {
	ctx := context.Background()
	want, err := db.Migrations(cfgDriver(cfg))
	if err != nil || len(want) == 0 {
		t.Fatalf("Migrations() = %v, %v", want, err)
	}
	d, err := db.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	got, err := d.AppliedMigrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[0] != 1 {
		t.Fatalf("applied = %v, want versions of %d migrations starting at 1", got, len(want))
	}
	var n int
	if err := d.SQL().QueryRowContext(ctx, "SELECT count(*) FROM audit_events").Scan(&n); err != nil {
		t.Fatalf("0001 did not create audit_events: %v", err)
	}
	d.Close()

	// Reopening applies nothing twice.
	d, err = db.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	again, _ := d.AppliedMigrations(ctx)
	if len(again) != len(got) {
		t.Fatalf("second Open changed applied migrations: %v -> %v", got, again)
	}
	d.Close()

	// Instances starting together take turns.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := db.Open(ctx, cfg, nil)
			if err == nil {
				d.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Open %d: %v", i, err)
		}
	}
}

func cfgDriver(c db.Config) string {
	if c.Driver == "" {
		return "sqlite"
	}
	return c.Driver
}

func TestMigrationsSQLite(t *testing.T) {
	migrationSuite(t, db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "m.db")})
}

func TestMigrationsPostgres(t *testing.T) {
	migrationSuite(t, db.Config{Driver: "postgres", DSN: dbtest.Postgres(t)})
}

// TestConcurrentFirstOpenPostgres starts several instances at once on an
// empty database: without the advisory lock, two would run 0001 together
// and one would fail on "relation already exists".
func TestConcurrentFirstOpenPostgres(t *testing.T) {
	dsn := dbtest.Postgres(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := db.Open(ctx, db.Config{Driver: "postgres", DSN: dsn}, nil)
			if err == nil {
				d.Close()
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	d, err := db.Open(ctx, db.Config{Driver: "postgres", DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.SQL().QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows for version 1 = %d, %v; want 1", n, err)
	}
}

func TestOpenStoreDownIsAClearErrorWithoutTheDSN(t *testing.T) {
	dsn := "host=" + t.TempDir() + " port=5999 user=alice password=s3cr3t-pw dbname=nope sslmode=disable connect_timeout=2"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := db.Open(ctx, db.Config{Driver: "postgres", DSN: dsn}, nil)
	if err == nil {
		t.Fatal("Open of a store that is down succeeded")
	}
	if !strings.Contains(err.Error(), "the postgres store does not answer") {
		t.Errorf("error %q does not say the store is down", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error leaks the password: %q", err)
	}
}

func TestOpenSQLiteUnwritablePath(t *testing.T) {
	_, err := db.Open(context.Background(), db.Config{Path: filepath.Join(t.TempDir(), "missing-dir", "x.db")}, nil)
	if err == nil || !strings.Contains(err.Error(), "sqlite store") {
		t.Fatalf("Open in a missing directory = %v, want a clear error", err)
	}
}

func TestOpenBadDSNDoesNotEchoIt(t *testing.T) {
	dsn := "postgres://alice:s3cr3t-pw@localhost:notaport/db"
	_, err := db.Open(context.Background(), db.Config{Driver: "postgres", DSN: dsn}, nil)
	if err == nil {
		t.Fatal("Open with a malformed DSN succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("error leaks the password: %q", err)
	}
	if !strings.Contains(err.Error(), "dsn is malformed") {
		t.Fatalf("error %q does not say the dsn is malformed", err)
	}
}

// TestUse: a pool opened elsewhere is wrapped with its driver; nothing else
// is accepted, and only a postgres DB with a DSN opens dedicated
// connections.
func TestUse(t *testing.T) {
	d, err := db.Open(context.Background(), db.Config{Path: filepath.Join(t.TempDir(), "s.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := db.Use(nil, db.DriverSQLite, ""); err == nil {
		t.Error("Use accepted no pool")
	}
	if _, err := db.Use(d.SQL(), "mysql", ""); err == nil {
		t.Error("Use accepted an unknown driver")
	}
	u, err := db.Use(d.SQL(), db.DriverSQLite, "")
	if err != nil || u.Driver() != db.DriverSQLite || u.Rebind("a = ?") != "a = ?" {
		t.Fatalf("Use = %v, %v", u, err)
	}
	if _, err := u.DedicatedConn(context.Background()); err == nil {
		t.Error("a sqlite DB opened a dedicated connection")
	}
}
