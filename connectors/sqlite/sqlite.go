package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/toolgate/toolgate/broker"
)

// DefaultMaxRows is the row cap when neither the tool nor the target sets one.
const DefaultMaxRows = 1000

// busyTimeout is how long a writer waits for a lock before SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Config is an SQLite target.
type Config struct {
	// Name is the target name, used in error messages.
	Name string
	// Path is the database file. A writable target creates it if missing.
	Path     string
	ReadOnly bool
	// MaxRows caps rows per call when the tool does not; 0 means 1000.
	MaxRows int
	// StatementTimeout interrupts a statement that runs longer; 0 means none.
	StatementTimeout time.Duration
}

// Validate reports the first problem with the config.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("sqlite target: name is required")
	case c.Path == "":
		return fmt.Errorf("sqlite target %s: path is required", c.Name)
	case c.MaxRows < 0:
		return fmt.Errorf("sqlite target %s: max_rows must not be negative", c.Name)
	case c.StatementTimeout < 0:
		return fmt.Errorf("sqlite target %s: statement_timeout must not be negative", c.Name)
	}
	return nil
}

// Connector runs SQL operations against one SQLite database.
type Connector struct {
	cfg Config
	db  *sql.DB
	log *zap.Logger
}

var (
	_ broker.Executor  = (*Connector)(nil)
	_ broker.RowCapper = (*Connector)(nil)
)

// New opens the database and checks that it can be read. A nil logger logs
// nothing.
func New(cfg Config, log *zap.Logger) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	db, err := sql.Open("sqlite", dsn(cfg))
	if err != nil {
		return nil, fmt.Errorf("sqlite target %s: open %s: %w", cfg.Name, cfg.Path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout+time.Second)
	defer cancel()
	// Reading the schema proves the file exists and is a database.
	if _, err := db.ExecContext(ctx, "SELECT count(*) FROM sqlite_schema"); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite target %s: open %s: %w", cfg.Name, cfg.Path, err)
	}
	return &Connector{cfg: cfg, db: db, log: log.With(zap.String("target", cfg.Name))}, nil
}

// dsn builds the modernc.org/sqlite URI for a config.
func dsn(cfg Config) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	if cfg.ReadOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("mode", "rwc")
		q.Add("_pragma", "journal_mode(WAL)")
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: cfg.Path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// DB is the underlying database handle, for tests and benchmarks.
func (c *Connector) DB() *sql.DB { return c.db }

// ReadOnly reports whether the target is configured read-only.
func (c *Connector) ReadOnly() bool { return c.cfg.ReadOnly }

// Close closes the database.
func (c *Connector) Close() error { return c.db.Close() }

// RowCap returns the most rows op can return: its max_rows, else the
// target's, else DefaultMaxRows. Rows budgets reserve it before the call
// runs (broker.RowCapper).
func (c *Connector) RowCap(op broker.Operation) int {
	if op.SQL == nil {
		return 0
	}
	for _, n := range []int{op.SQL.MaxRows, c.cfg.MaxRows} {
		if n > 0 {
			return n
		}
	}
	return DefaultMaxRows
}

// Execute runs op.SQL in a transaction and returns its rows as JSON.
func (c *Connector) Execute(ctx context.Context, op broker.Operation) (broker.Output, error) {
	if op.SQL == nil {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s runs SQL operations only", c.cfg.Name)
	}
	if err := ctx.Err(); err != nil {
		return broker.Output{}, c.contextError(ctx)
	}
	maxRows := c.RowCap(op)
	parent := ctx
	if c.cfg.StatementTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.StatementTimeout)
		defer cancel()
	}

	conn, err := c.db.Conn(ctx)
	if err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	defer conn.Close()
	// A statement may not ATTACH other database files: a tool reaches its
	// own target only.
	if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_ATTACHED, 0); err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	defer func() { _ = tx.Rollback() }()

	rows, err := tx.QueryContext(ctx, op.SQL.Statement, normalizeArgs(op.SQL.Args)...)
	if err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	cols, err := rows.ColumnTypes()
	if err != nil {
		rows.Close()
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	w := newResultWriter(cols)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n, truncated := 0, false
	for rows.Next() {
		if n == maxRows {
			truncated = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return broker.Output{}, c.classify(parent, ctx, err)
		}
		w.writeRow(vals)
		n++
	}
	if err := rows.Close(); err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	if err := rows.Err(); err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	count := n
	if len(cols) == 0 {
		// A statement without result columns reports the rows it changed.
		if err := tx.QueryRowContext(ctx, "SELECT changes()").Scan(&count); err != nil {
			return broker.Output{}, c.classify(parent, ctx, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return broker.Output{}, c.classify(parent, ctx, err)
	}
	value := w.finish(count, truncated)
	return broker.Output{Value: value, Rows: n, Bytes: len(value)}, nil
}

// classify turns an SQLite error into a *broker.Error. parent is the
// caller's context, ctx the one carrying the statement timeout.
func (c *Connector) classify(parent, ctx context.Context, err error) error {
	if parent.Err() != nil {
		return c.contextError(parent)
	}
	if ctx.Err() != nil {
		return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s: the statement ran longer than the %s statement timeout", c.cfg.Name, c.cfg.StatementTimeout))
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		msg := sqlite.ErrorCodeString[se.Code()]
		if msg == "" {
			msg = se.Error()
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_READONLY:
			return broker.Wrap(broker.CodeForbidden, err, fmt.Sprintf("target %s is read-only: %s", c.cfg.Name, msg))
		case sqlite3.SQLITE_INTERRUPT:
			return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s: the statement was interrupted", c.cfg.Name))
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL:
			c.log.Warn("sqlite target unavailable", zap.Error(err))
			return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", c.cfg.Name))
		}
		return broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s: %s", c.cfg.Name, se.Error()))
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", c.cfg.Name))
	}
	if err.Error() == "sql: database is closed" {
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", c.cfg.Name))
	}
	return broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s: %s", c.cfg.Name, err.Error()))
}

func (c *Connector) contextError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s did not answer before the deadline", c.cfg.Name))
	}
	return broker.Wrap(broker.CodeUnavailable, err, fmt.Sprintf("the call was cancelled before target %s answered", c.cfg.Name))
}

// normalizeArgs turns decoded JSON arguments into values SQLite binds:
// integral numbers as int64, other numbers as float64 (or their text when
// they do not fit), objects and arrays as their JSON text.
func normalizeArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil {
				out[i] = n
			} else if f, err := v.Float64(); err == nil {
				out[i] = f
			} else {
				out[i] = string(v)
			}
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err != nil {
				out[i] = a
				continue
			}
			out[i] = string(b)
		default:
			out[i] = a
		}
	}
	return out
}
