package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// The drivers Open knows.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config says which store to open. It mirrors the `store` block of
// toolgate.yaml.
type Config struct {
	// Driver is "sqlite" (the default when empty) or "postgres".
	Driver string
	// Path is the SQLite database file. It is created if missing.
	Path string
	// DSN is the PostgreSQL connection string. It holds a password and is
	// never logged or returned in an error.
	DSN string
}

// Validate reports the first problem with the config.
func (c Config) Validate() error {
	switch c.driver() {
	case DriverSQLite:
		if c.Path == "" {
			return errors.New("store.path: the sqlite store needs a file path")
		}
		if c.Path == ":memory:" || strings.HasPrefix(c.Path, "file::memory:") {
			return errors.New("store.path: an in-memory sqlite store is not durable; give a file path")
		}
		if c.DSN != "" {
			return errors.New("store.dsn: dsn is for the postgres driver; the sqlite store takes a path")
		}
	case DriverPostgres:
		if c.DSN == "" {
			return errors.New("store.dsn: the postgres store needs a dsn")
		}
		if c.Path != "" {
			return errors.New("store.path: path is for the sqlite driver; the postgres store takes a dsn")
		}
	default:
		return fmt.Errorf("store.driver: unknown driver %q (want sqlite or postgres)", c.Driver)
	}
	return nil
}

func (c Config) driver() string {
	if c.Driver == "" {
		return DriverSQLite
	}
	return c.Driver
}

// DB is an open, migrated store: the one way every store (recordings,
// budget counters, grants, approvals) reaches the database.
type DB struct {
	sql    *sql.DB
	driver string
	log    *zap.Logger
	// dsn opens dedicated PostgreSQL connections (DedicatedConn); secret.
	dsn string
}

// Use wraps a pool its caller opened and migrated as a DB: for tests that
// keep their own schema. driver is DriverSQLite or DriverPostgres; dsn is
// the PostgreSQL connection string DedicatedConn dials ("" for SQLite, or
// when no dedicated connection is needed).
func Use(pool *sql.DB, driver, dsn string) (*DB, error) {
	if pool == nil {
		return nil, errors.New("db: no pool")
	}
	if driver != DriverSQLite && driver != DriverPostgres {
		return nil, fmt.Errorf("db: unknown driver %q (want sqlite or postgres)", driver)
	}
	return &DB{sql: pool, driver: driver, log: zap.NewNop(), dsn: dsn}, nil
}

// DedicatedConn opens a PostgreSQL connection outside the pool, for a
// session that must hold one (LISTEN). The caller closes it.
func (d *DB) DedicatedConn(ctx context.Context) (*pgx.Conn, error) {
	if d.driver != DriverPostgres || d.dsn == "" {
		return nil, errors.New("db: dedicated connections need a postgres store")
	}
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		return nil, scrub(err, d.dsn)
	}
	return conn, nil
}

// Open opens the store, checks that it answers and applies every pending
// migration. A store that is down or a migration that fails is an error:
// the caller must not start.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &DB{driver: cfg.driver(), log: log, dsn: cfg.DSN}
	var err error
	switch d.driver {
	case DriverSQLite:
		d.sql, err = sql.Open("sqlite", sqliteDSN(cfg.Path))
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Path, err)
		}
		// SQLite has one writer at a time; a few connections let readers
		// (exports, verify) run beside it in WAL mode. Writers queue on
		// busy_timeout, and _txlock=immediate takes the write lock at BEGIN
		// so two writers never deadlock upgrading a read lock.
		d.sql.SetMaxOpenConns(4)
		d.sql.SetMaxIdleConns(4)
		d.sql.SetConnMaxIdleTime(0)
	case DriverPostgres:
		if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
			// pgx masks the password in its parse errors.
			return nil, fmt.Errorf("store.dsn: the postgres dsn is malformed: %w", scrub(err, cfg.DSN))
		}
		d.sql, err = sql.Open("pgx", cfg.DSN)
		if err != nil {
			// The pgx parse error can quote the DSN; never pass it on.
			return nil, errors.New("open postgres store: the dsn cannot be parsed")
		}
		d.sql.SetMaxOpenConns(16)
		d.sql.SetMaxIdleConns(16)
		d.sql.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.sql.PingContext(pingCtx); err != nil {
		d.sql.Close()
		return nil, fmt.Errorf("the %s store does not answer: %w", d.driver, scrub(err, cfg.DSN))
	}
	if err := d.migrate(ctx); err != nil {
		d.sql.Close()
		return nil, fmt.Errorf("migrate the %s store: %w", d.driver, scrub(err, cfg.DSN))
	}
	return d, nil
}

// sqliteDSN builds the modernc.org/sqlite connection string for path.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-16000)")
	q.Add("_pragma", "wal_autocheckpoint(4000)")
	q.Set("_txlock", "immediate")
	return sqliteURI(path, q)
}

// sqliteURI is the file: URI of path with the query q.
func sqliteURI(path string, q url.Values) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.Encode()
}

// scrub removes the DSN from an error message, in case a driver quoted it.
func scrub(err error, dsn string) error {
	if err == nil || dsn == "" || !strings.Contains(err.Error(), dsn) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), dsn, "[dsn]"))
}

// Driver returns "sqlite" or "postgres".
func (d *DB) Driver() string { return d.driver }

// SQL returns the underlying pool.
func (d *DB) SQL() *sql.DB { return d.sql }

// Close closes the pool.
func (d *DB) Close() error { return d.sql.Close() }

// Rebind turns ? placeholders into $1, $2, ... for PostgreSQL and returns
// query unchanged for SQLite. A ? inside a single-quoted string literal is
// left alone.
func (d *DB) Rebind(query string) string {
	if d.driver != DriverPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// RebindPostgres turns ? placeholders into $1, $2, ...; Rebind calls it on
// a PostgreSQL store.
func RebindPostgres(query string) string {
	return (&DB{driver: DriverPostgres}).Rebind(query)
}
