package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/testenv"
)

// promoSeed is a table with 3 rows of tier a and 2 of tier b.
var promoSeed = []string{
	`CREATE TABLE promo (id serial PRIMARY KEY, tier text NOT NULL, hits int NOT NULL DEFAULT 0, code text UNIQUE)`,
	`INSERT INTO promo (tier, code) VALUES ('a', 'A1'), ('a', 'A2'), ('a', 'A3'), ('b', 'B1'), ('b', 'B2')`,
}

// previewEnv is a seeded database, a connector on it and an observer
// connection that checks what the connector left behind.
type previewEnv struct {
	dsn string
	c   *postgres.Connector
	obs *pgx.Conn
}

func newPreviewEnv(t *testing.T, cfg postgres.Config) *previewEnv {
	t.Helper()
	cfg.DSN = seeded(t, promoSeed)
	e := &previewEnv{dsn: cfg.DSN, c: newConnector(t, cfg)}
	e.obs = e.connect(t)
	return e
}

func (e *previewEnv) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// snapshot is every row of promo with its xmin: an UPDATE, DELETE or
// INSERT that was committed changes it.
func (e *previewEnv) snapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := e.obs.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(xmin::text || ':' || p::text, ' ' ORDER BY id), '') FROM promo p`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertClean checks that no session of the database but the observer and
// except holds a lock or sits inside a transaction.
func (e *previewEnv) assertClean(t *testing.T, except ...uint32) {
	t.Helper()
	pids := []uint32{e.obs.PgConn().PID()}
	pids = append(pids, except...)
	var locks, open int
	err := e.obs.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		  WHERE a.datname = current_database() AND NOT l.pid = ANY($1)),
		(SELECT count(*) FROM pg_stat_activity
		  WHERE datname = current_database() AND NOT pid = ANY($1) AND state NOT IN ('idle'))`, pids).Scan(&locks, &open)
	if err != nil {
		t.Fatal(err)
	}
	if locks != 0 || open != 0 {
		t.Errorf("after the preview: %d locks held and %d sessions not idle, want none", locks, open)
	}
}

func sqlOp(stmt string, args ...any) broker.Operation {
	return broker.Operation{Target: "crm", SQL: &broker.SQLOperation{Statement: stmt, Args: args}}
}

func rowsOf(t *testing.T, p broker.Preview) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal(p.Sample, &rows); err != nil {
		t.Fatalf("sample %s: %v", p.Sample, err)
	}
	return rows
}

func TestPreviewImages(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{StatementTimeout: 10 * time.Second})
	for _, tc := range []struct {
		name      string
		op        broker.Operation
		limit     int
		affected  int64
		image     string
		truncated bool
		check     func(row map[string]any) bool
	}{
		{"update shows the rows after, capped", sqlOp(`UPDATE promo SET tier = $2 WHERE tier = $1`, "a", "c"), 2, 3, broker.ImageAfter, true,
			func(r map[string]any) bool { return r["tier"] == "c" && r["code"] != nil }},
		{"delete shows the rows before", sqlOp(`DELETE FROM promo WHERE tier = $1`, "b"), 10, 2, broker.ImageBefore, false,
			func(r map[string]any) bool { return r["tier"] == "b" && strings.HasPrefix(r["code"].(string), "B") }},
		{"insert shows the new row", sqlOp(`INSERT INTO promo (tier, code) VALUES ($1, $2)`, "n", "N1"), 0, 1, broker.ImageAfter, false,
			func(r map[string]any) bool { return r["tier"] == "n" && r["id"] != nil && r["hits"] == float64(0) }},
		{"a RETURNING list is kept", sqlOp(`UPDATE promo SET hits = hits + 1 WHERE tier = $1 RETURNING code`, "b"), 0, 2, broker.ImageAfter, false,
			func(r map[string]any) bool { return len(r) == 1 && r["code"] != nil }},
		{"a declared query shows what it selects", sqlOp(`SELECT id, code FROM promo WHERE tier = $1 ORDER BY id`, "a"), 1, 3, broker.ImageBefore, true,
			func(r map[string]any) bool { return r["code"] == "A1" }},
		{"nothing matches", sqlOp(`DELETE FROM promo WHERE tier = $1`, "zzz"), 0, 0, broker.ImageBefore, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			p, err := e.c.Preview(context.Background(), tc.op, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if p.RowsAffected != tc.affected || p.Image != tc.image || p.Truncated != tc.truncated || p.Hash != "" {
				t.Errorf("preview = %+v, want %d rows, image %q, truncated %v, no hash", p, tc.affected, tc.image, tc.truncated)
			}
			rows := rowsOf(t, p)
			want := min(int(tc.affected), max(tc.limit, 1))
			if tc.limit == 0 {
				want = int(tc.affected)
			}
			if len(rows) != want {
				t.Errorf("sample holds %d rows, want %d: %s", len(rows), want, p.Sample)
			}
			for _, r := range rows {
				if !tc.check(r) {
					t.Errorf("sample row %v is not the expected image", r)
				}
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("the preview changed the table:\n before %s\n after  %s", before, after)
			}
			e.assertClean(t)
		})
	}
}

func TestPreviewMerge(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	var major int
	if err := e.obs.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot(t)
	p, err := e.c.Preview(context.Background(), sqlOp(`MERGE INTO promo p USING (VALUES ($1::text)) v(tier) ON p.tier = v.tier
		WHEN MATCHED THEN UPDATE SET hits = p.hits + 1`, "a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.RowsAffected != 3 {
		t.Errorf("rows affected = %d, want 3", p.RowsAffected)
	}
	if major < 17 {
		if p.Sample != nil || p.Image != "" || !strings.Contains(p.Note, "PostgreSQL 17") {
			t.Errorf("before PostgreSQL 17 a MERGE preview is a count with a note, got %+v", p)
		}
	} else if len(rowsOf(t, p)) != 3 || p.Image != broker.ImageAfter {
		t.Errorf("MERGE preview on PostgreSQL %d = %+v, want 3 rows after", major, p)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("the preview changed the table")
	}
	e.assertClean(t)
}

// TestPreviewRefusals: statements whose effect a rollback cannot undo, or
// that a preview cannot count, are not run at all.
func TestPreviewRefusals(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	for _, tc := range []struct {
		name, stmt, want string
	}{
		{"nextval", `INSERT INTO promo (id, tier) VALUES (nextval('promo_id_seq'), 'x')`, "calls nextval()"},
		{"schema-qualified setval", `SELECT pg_catalog.setval('promo_id_seq', 100)`, "calls setval()"},
		{"dblink", `UPDATE promo SET tier = dblink_exec('dbname=x', 'DELETE FROM t')`, "calls dblink_exec()"},
		{"session advisory lock", `UPDATE promo SET hits = 1 WHERE pg_advisory_lock(1) IS NOT NULL`, "calls pg_advisory_lock()"},
		{"set_config", `UPDATE promo SET tier = set_config('lock_timeout', '0', true)`, "calls set_config()"},
		{"data-modifying CTE", `WITH d AS (DELETE FROM promo WHERE tier = 'b' RETURNING id) UPDATE promo SET hits = 1 WHERE tier = 'a'`, "data-modifying CTE"},
		{"modifying CTE in a SELECT", `WITH d AS (DELETE FROM promo RETURNING id) SELECT * FROM d`, "data-modifying CTE"},
		{"two statements", `DELETE FROM promo; DELETE FROM promo`, "exactly one statement"},
		{"truncate", `TRUNCATE promo`, "this statement is TRUNCATE"},
		{"call", `CALL do_things()`, "this statement is CALL"},
		{"select into", `SELECT * INTO copy FROM promo`, "SELECT INTO"},
		{"select for update", `SELECT id FROM promo WHERE tier = 'a' FOR UPDATE`, "must not lock rows"},
		{"parse error", `UPDATE promo SET`, "parser rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			var seq int64
			_ = e.obs.QueryRow(context.Background(), `SELECT last_value FROM promo_id_seq`).Scan(&seq)
			_, err := e.c.Preview(context.Background(), sqlOp(tc.stmt), 0)
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != broker.CodePreviewUnavailable {
				t.Fatalf("err = %v, want preview_unavailable", err)
			}
			if !strings.HasPrefix(be.Message, "no preview available: ") || !strings.Contains(be.Message, tc.want) {
				t.Errorf("message %q, want it to say %q", be.Message, tc.want)
			}
			var seqAfter int64
			_ = e.obs.QueryRow(context.Background(), `SELECT last_value FROM promo_id_seq`).Scan(&seqAfter)
			if after := e.snapshot(t); after != before || seqAfter != seq {
				t.Errorf("a refused preview ran something: sequence %d → %d", seq, seqAfter)
			}
			e.assertClean(t)
		})
	}
}

func TestPreviewFailuresSayNothingChanged(t *testing.T) {
	t.Run("constraint violation", func(t *testing.T) {
		e := newPreviewEnv(t, postgres.Config{})
		before := e.snapshot(t)
		_, err := e.c.Preview(context.Background(), sqlOp(`UPDATE promo SET code = $1 WHERE tier = 'a'`, "B1"), 0)
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodeTargetError || !strings.Contains(be.Message, "no preview available: target crm: duplicate key") || !strings.HasSuffix(be.Message, "nothing was changed") {
			t.Fatalf("err = %v, want a target_error that says the preview failed and nothing was changed", err)
		}
		if e.snapshot(t) != before {
			t.Error("the table changed")
		}
		e.assertClean(t)
	})
	t.Run("read-only target", func(t *testing.T) {
		e := newPreviewEnv(t, postgres.Config{ReadOnly: true})
		before := e.snapshot(t)
		_, err := e.c.Preview(context.Background(), sqlOp(`DELETE FROM promo`), 0)
		if broker.CodeOf(err) != broker.CodeForbidden || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("err = %v, want forbidden: read-only", err)
		}
		if e.snapshot(t) != before {
			t.Error("the table changed")
		}
		e.assertClean(t)
		// A declared query still previews on a read-only target.
		p, err := e.c.Preview(context.Background(), sqlOp(`SELECT id FROM promo WHERE tier = 'b'`), 0)
		if err != nil || p.RowsAffected != 2 {
			t.Errorf("read preview = %+v, %v", p, err)
		}
	})
	t.Run("not sql", func(t *testing.T) {
		e := newPreviewEnv(t, postgres.Config{})
		_, err := e.c.Preview(context.Background(), broker.Operation{HTTP: &broker.HTTPOperation{Method: "GET", Path: "/"}}, 0)
		if broker.CodeOf(err) != broker.CodeInvalidRequest || !strings.Contains(err.Error(), "no preview available") {
			t.Errorf("err = %v", err)
		}
	})
}

// holdRowLock locks promo row 1 from another session until the test ends
// and returns that session's pid.
func (e *previewEnv) holdRowLock(t *testing.T) uint32 {
	t.Helper()
	holder := e.connect(t)
	if _, err := holder.Exec(context.Background(), `BEGIN; UPDATE promo SET hits = hits WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	return holder.PgConn().PID()
}

func TestPreviewWaitsBrieflyForLocks(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{PreviewLockTimeout: 100 * time.Millisecond})
	holder := e.holdRowLock(t)
	before := e.snapshot(t)
	// The test's deadline is far above the lock timeout but far below the
	// statement's own run time: waiting it out would fail differently.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.c.Preview(ctx, sqlOp(`UPDATE promo SET tier = 'z' WHERE id = 1`), 0)
	if broker.CodeOf(err) != broker.CodeTimeout || !strings.Contains(err.Error(), "locked by another transaction on target crm (waited 100ms); nothing was changed") {
		t.Fatalf("err = %v, want a timeout naming the lock", err)
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t, holder)
}

// slowWrite locks promo's tier-a rows and then sleeps for a minute.
const slowWrite = `UPDATE promo SET hits = hits + 1 WHERE tier = 'a' RETURNING id, pg_sleep(60)::text AS slept`

func TestPreviewTimeout(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{PreviewTimeout: 300 * time.Millisecond, StatementTimeout: 30 * time.Second})
	before := e.snapshot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.c.Preview(ctx, sqlOp(slowWrite), 0)
	if broker.CodeOf(err) != broker.CodeTimeout || !strings.Contains(err.Error(), "no preview available: the preview ran longer than its 300ms limit on target crm; nothing was changed") {
		t.Fatalf("err = %v, want the preview timeout", err)
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t)

	// The target's statement_timeout bounds a preview when it is shorter.
	short := newConnector(t, postgres.Config{DSN: e.dsn, StatementTimeout: 200 * time.Millisecond})
	_, err = short.Preview(ctx, sqlOp(`SELECT pg_sleep(60)`), 0)
	if !strings.Contains(err.Error(), "longer than its 200ms limit") {
		t.Errorf("err = %v, want the statement timeout as the limit", err)
	}
	e.assertClean(t)
}

// TestPreviewCancelled: a caller that goes away mid-statement stops the
// statement on the server, and no lock outlives the preview.
func TestPreviewCancelled(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{StatementTimeout: time.Minute, PreviewTimeout: time.Minute})
	before := e.snapshot(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.c.Preview(ctx, sqlOp(slowWrite), 0)
		done <- err
	}()
	// Wait until the preview holds its row locks, then cancel.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := e.obs.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE a.datname = current_database() AND l.pid <> pg_backend_pid() AND l.relation = 'promo'::regclass AND l.mode = 'RowExclusiveLock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the preview never took its locks")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the cancelled preview did not return")
	}
	if broker.CodeOf(err) != broker.CodeUnavailable || !strings.Contains(err.Error(), "no preview available: the preview on target crm was cancelled; nothing was changed") {
		t.Fatalf("err = %v", err)
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t)
	var sleeping int
	_ = e.obs.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid() AND state = 'active'`).Scan(&sleeping)
	if sleeping != 0 {
		t.Error("the statement still runs on the server")
	}
	// The connector still previews.
	if _, err := e.c.Preview(context.Background(), sqlOp(`DELETE FROM promo WHERE tier = 'b'`), 0); err != nil {
		t.Errorf("preview after a cancel: %v", err)
	}
}

// TestPreviewConnPassthrough previews held passthrough statements: raw
// text without arguments, on a connection with the session's own role.
func TestPreviewConnPassthrough(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	ctx := context.Background()
	// A role with the grant's privileges (the passthrough provisions one
	// per grant), created by the superuser and dropped at the end.
	admin, err := pgx.Connect(ctx, testenv.Postgres(t).DSN(testenv.DBName(e.dsn)))
	if err != nil {
		t.Fatal(err)
	}
	role := pgx.Identifier{"pt_" + testenv.DBName(e.dsn)}.Sanitize()
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN; GRANT SELECT, UPDATE ON promo TO `+role+`; GRANT `+role+` TO `+testenv.PasswordUser); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `REVOKE ALL ON promo FROM `+role+`; DROP ROLE `+role)
		_ = admin.Close(context.Background())
	})
	conn := e.connect(t)
	if _, err := conn.Exec(ctx, `SET ROLE `+role); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot(t)
	var p broker.Preview
	opt := postgres.PreviewOptions{Target: "crm", Rows: 5}
	p, err = postgres.PreviewConn(ctx, conn, `update promo set tier = 'z' where tier = 'b' -- from psql`, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	if p.RowsAffected != 2 || p.Image != broker.ImageAfter || len(rowsOf(t, p)) != 2 || rowsOf(t, p)[0]["tier"] != "z" {
		t.Errorf("preview = %+v", p)
	}
	// The role's privileges hold: it may not delete.
	_, err = postgres.PreviewConn(ctx, conn, `DELETE FROM promo`, nil, opt)
	if broker.CodeOf(err) != broker.CodeTargetError || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("err = %v, want permission denied", err)
	}
	if conn.PgConn().TxStatus() != 'I' {
		t.Error("the connection was left inside a transaction")
	}
	// A connection inside a transaction is refused: the preview's
	// rollback would end the client's transaction.
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.PreviewConn(ctx, conn, `DELETE FROM promo`, nil, opt)
	if err == nil || !strings.Contains(err.Error(), "inside a transaction") {
		t.Errorf("err = %v", err)
	}
	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t, conn.PgConn().PID())
}
