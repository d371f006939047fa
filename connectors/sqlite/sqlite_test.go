package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/sqlite"
	"github.com/toolgate/toolgate/internal/connectortest"
)

// seeded writes a database file with the seed applied.
func seeded(t testing.TB, seed []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crm.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range append([]string{"PRAGMA journal_mode=WAL"}, seed...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("seed %q: %v", s, err)
		}
	}
	return path
}

func newConnector(t *testing.T, cfg sqlite.Config) *sqlite.Connector {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "crm"
	}
	c, err := sqlite.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("read_only=%v", ro), func(t *testing.T) {
			connectortest.RunSQL(t, func(t *testing.T, seed []string) broker.Executor {
				return newConnector(t, sqlite.Config{Path: seeded(t, seed), ReadOnly: ro})
			})
		})
	}
}

func exec(c broker.Executor, ctx context.Context, stmt string, args ...any) (broker.Output, error) {
	return c.Execute(ctx, broker.Operation{Target: "crm", SQL: &broker.SQLOperation{Statement: stmt, Args: args}})
}

func TestSQLiteTypes(t *testing.T) {
	c := newConnector(t, sqlite.Config{Path: seeded(t, []string{
		`CREATE TABLE t (i INTEGER, r REAL, n NUMERIC, txt TEXT, b BLOB, j JSON, flag BOOLEAN, d DATE, ts DATETIME)`,
		`INSERT INTO t VALUES (9007199254740993, 1.5, 3.125, 'héllo "q"', X'DEADBEEF', '{"z":1,"a":[true,null]}', 0, '2024-03-04', '2024-03-04T05:06:07.25Z')`,
	})})
	out, err := exec(c, context.Background(), `SELECT i, r, n, txt, b, j, flag, d, ts, NULL AS missing FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rows":[{"i":9007199254740993,"r":1.5,"n":"3.125","txt":"héllo \"q\"","b":"3q2+7w==",` +
		`"j":{"z":1,"a":[true,null]},"flag":false,"d":"2024-03-04","ts":"2024-03-04T05:06:07.25Z","missing":null}],"row_count":1,"truncated":false}`
	if string(out.Value) != want {
		t.Errorf("types\n got %s\nwant %s", out.Value, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sqlite.Config
		want string
	}{
		{"no name", sqlite.Config{Path: "x.db"}, "name is required"},
		{"no path", sqlite.Config{Name: "demo"}, "path is required"},
		{"negative rows", sqlite.Config{Name: "demo", Path: "x.db", MaxRows: -1}, "max_rows"},
		{"negative timeout", sqlite.Config{Name: "demo", Path: "x.db", StatementTimeout: -1}, "statement_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := sqlite.New(tc.cfg, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestReadOnlyMissingFileFailsAtLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := sqlite.New(sqlite.Config{Name: "demo", Path: path, ReadOnly: true}, nil); err == nil {
		t.Fatal("opened a missing file read-only")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a read-only open created the file")
	}
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.New(sqlite.Config{Name: "demo", Path: path}, nil); err == nil {
		t.Fatal("opened a file that is not a database")
	}
}

func TestWritableUsesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	c := newConnector(t, sqlite.Config{Path: path})
	out, err := exec(c, context.Background(), `PRAGMA journal_mode`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"journal_mode":"wal"}],"row_count":1,"truncated":false}`; string(out.Value) != want {
		t.Errorf("got %s, want %s", out.Value, want)
	}
}

func TestReadOnlyQueryOnly(t *testing.T) {
	path := seeded(t, connectortest.Seed)
	c := newConnector(t, sqlite.Config{Path: path, ReadOnly: true})
	for _, stmt := range []string{
		`DELETE FROM orders`,
		`CREATE TABLE evil (id INTEGER)`,
		`PRAGMA query_only = OFF; DELETE FROM orders`,
	} {
		if _, err := exec(c, context.Background(), stmt); err == nil {
			t.Errorf("read-only target ran %q", stmt)
		}
	}
	out, err := exec(c, context.Background(), `SELECT count(*) AS n FROM orders`)
	if err != nil || string(out.Value) != `{"rows":[{"n":3}],"row_count":1,"truncated":false}` {
		t.Errorf("orders changed: %s %v", out.Value, err)
	}
}

func TestAttachIsRefused(t *testing.T) {
	other := seeded(t, []string{`CREATE TABLE secrets (s TEXT)`, `INSERT INTO secrets VALUES ('x')`})
	for _, ro := range []bool{false, true} {
		c := newConnector(t, sqlite.Config{Path: seeded(t, nil), ReadOnly: ro})
		_, err := exec(c, context.Background(), `ATTACH DATABASE $1 AS other`, other)
		if err == nil {
			t.Fatalf("read_only=%v: ATTACH of another file succeeded", ro)
		}
		if _, err := exec(c, context.Background(), `SELECT s FROM other.secrets`); err == nil {
			t.Fatalf("read_only=%v: read a table of another file", ro)
		}
	}
}

func TestStatementTimeout(t *testing.T) {
	c := newConnector(t, sqlite.Config{Path: seeded(t, nil), StatementTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := exec(c, context.Background(), `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 10000000000) SELECT count(*) FROM r`)
	if code := broker.CodeOf(err); code != broker.CodeTimeout {
		t.Fatalf("code = %s, want timeout (err %v)", code, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
	if _, err := exec(c, context.Background(), `SELECT 1 AS one`); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	c, err := sqlite.New(sqlite.Config{Name: "demo", Path: seeded(t, nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = exec(c, context.Background(), `SELECT 1`)
	if code := broker.CodeOf(err); code != broker.CodeTargetUnavailable {
		t.Fatalf("code = %s, want target_unavailable (err %v)", code, err)
	}
}
