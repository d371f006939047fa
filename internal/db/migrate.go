package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed migrations
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key migrations run under
// (the bytes "toolgate" as an int64).
const migrationLockKey int64 = 0x746f6f6c67617465

// Migration is one embedded schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations for driver, in version order.
func Migrations(driver string) ([]Migration, error) {
	dir := path.Join("migrations", driver)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations for %s: %w", driver, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_name.sql", dir, name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrate applies every embedded migration that schema_migrations does not
// list, each in its own transaction. On PostgreSQL it holds a session
// advisory lock for the whole run, so instances starting together take
// turns; on SQLite each transaction begins IMMEDIATE, which serialises
// writers the same way.
func (d *DB) migrate(ctx context.Context) error {
	migs, err := Migrations(d.driver)
	if err != nil {
		return err
	}
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d.driver == DriverPostgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		defer func() {
			// A fresh context: the unlock must happen even if ctx ended.
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
				d.log.Warn("release the migration lock", zap.Error(err))
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range migs {
		applied, err := d.applyOne(ctx, conn, m)
		if err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if applied {
			d.log.Info("applied migration", zap.Int("version", m.Version), zap.String("name", m.Name))
		}
	}
	return nil
}

func (d *DB) applyOne(ctx context.Context, conn *sql.Conn, m Migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, d.Rebind("SELECT 1 FROM schema_migrations WHERE version = ?"), m.Version).Scan(&one)
	if err == nil {
		return false, nil
	}
	if err != sql.ErrNoRows {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, d.Rebind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// AppliedMigrations returns the versions schema_migrations lists, in order.
func (d *DB) AppliedMigrations(ctx context.Context) ([]int, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
