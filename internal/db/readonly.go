package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
)

// OpenReadOnly opens an existing store for verbs that must never change it
// (toolgate policy backtest). It creates nothing and applies no migration:
// the SQLite file must exist, and the store must hold every migration this
// binary knows. Every SQLite connection is query_only and every PostgreSQL
// transaction read-only, so a write fails instead of changing the store.
func OpenReadOnly(ctx context.Context, cfg Config, log *zap.Logger) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &DB{driver: cfg.driver(), log: log}
	switch d.driver {
	case DriverSQLite:
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("the sqlite store %s cannot be read: %w", cfg.Path, errors.Unwrap(err))
		}
		q := url.Values{}
		q.Set("mode", "rw") // never create the file
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "query_only(1)")
		var err error
		if d.sql, err = sql.Open("sqlite", sqliteURI(cfg.Path, q)); err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Path, err)
		}
		d.sql.SetMaxOpenConns(2)
	case DriverPostgres:
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("store.dsn: the postgres dsn is malformed: %w", scrub(err, cfg.DSN))
		}
		pc.RuntimeParams["default_transaction_read_only"] = "on"
		d.sql = stdlib.OpenDB(*pc)
		d.sql.SetMaxOpenConns(2)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.sql.PingContext(pingCtx); err != nil {
		d.sql.Close()
		return nil, fmt.Errorf("the %s store does not answer: %w", d.driver, scrub(err, cfg.DSN))
	}
	if err := d.checkSchema(ctx); err != nil {
		d.sql.Close()
		return nil, scrub(err, cfg.DSN)
	}
	return d, nil
}

// checkSchema refuses a store that lacks a migration this binary knows.
func (d *DB) checkSchema(ctx context.Context) error {
	migs, err := Migrations(d.driver)
	if err != nil {
		return err
	}
	var have sql.NullInt64
	if err := d.sql.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&have); err != nil {
		return fmt.Errorf("the %s store holds no toolgate schema (start toolgate on it once): %w", d.driver, err)
	}
	if want := migs[len(migs)-1].Version; int(have.Int64) < want {
		return fmt.Errorf("the %s store's schema is at version %d and this toolgate needs %d; start toolgate serve on it once to migrate it", d.driver, have.Int64, want)
	}
	return nil
}
