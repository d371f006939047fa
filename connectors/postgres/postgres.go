package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// DefaultMaxRows is the row cap when neither the tool nor the target sets one.
const DefaultMaxRows = 1000

// DefaultConnectTimeout bounds connecting to the target and waiting for a
// pooled connection when the config does not set one.
const DefaultConnectTimeout = 5 * time.Second

// Config is a PostgreSQL target.
type Config struct {
	// Name is the target name, used in error messages.
	Name string
	// DSN is the connection string (URL or key=value). It is a secret.
	DSN      string
	ReadOnly bool
	// MaxRows caps rows per call when the tool does not; 0 means 1000.
	MaxRows int
	// StatementTimeout is set per transaction; 0 means none.
	StatementTimeout time.Duration
	// MaxConns caps the pool; 0 means pgxpool's default.
	MaxConns int32
	// ConnectTimeout bounds a connection attempt and the wait for a pooled
	// connection; 0 means 5s.
	ConnectTimeout time.Duration
	// PreviewTimeout bounds an effect preview (statement_timeout inside
	// its transaction); 0 means 5s. The StatementTimeout applies when it
	// is shorter.
	PreviewTimeout time.Duration
	// PreviewLockTimeout bounds how long a preview waits for a row lock
	// held by another transaction (lock_timeout); 0 means 1s.
	PreviewLockTimeout time.Duration
}

// Validate reports the first problem with the config. It never echoes the DSN.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("postgres target: name is required")
	case c.DSN == "":
		return fmt.Errorf("postgres target %s: dsn is required", c.Name)
	case c.MaxRows < 0:
		return fmt.Errorf("postgres target %s: max_rows must not be negative", c.Name)
	case c.StatementTimeout < 0:
		return fmt.Errorf("postgres target %s: statement_timeout must not be negative", c.Name)
	case c.StatementTimeout > 0 && c.StatementTimeout < time.Millisecond:
		return fmt.Errorf("postgres target %s: statement_timeout must be at least 1ms", c.Name)
	case c.MaxConns < 0:
		return fmt.Errorf("postgres target %s: max_conns must not be negative", c.Name)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("postgres target %s: connect_timeout must not be negative", c.Name)
	case c.PreviewTimeout < 0 || c.PreviewTimeout > 0 && c.PreviewTimeout < time.Millisecond:
		return fmt.Errorf("postgres target %s: preview_timeout must be 0 (the default) or at least 1ms", c.Name)
	case c.PreviewLockTimeout < 0 || c.PreviewLockTimeout > 0 && c.PreviewLockTimeout < time.Millisecond:
		return fmt.Errorf("postgres target %s: preview_lock_timeout must be 0 (the default) or at least 1ms", c.Name)
	}
	if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		// The parse error quotes the connection string: do not wrap it.
		return fmt.Errorf("postgres target %s: dsn is not a valid PostgreSQL connection string (URL or key=value)", c.Name)
	}
	return nil
}

// Connector runs SQL operations against one PostgreSQL target.
type Connector struct {
	cfg   Config
	begin []string
	pool  *pgxpool.Pool
	log   *zap.Logger
}

var (
	_ broker.Executor  = (*Connector)(nil)
	_ broker.RowCapper = (*Connector)(nil)
)

// New returns a connector with a lazily connecting pool: it succeeds while the
// target is down. A nil logger logs nothing.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres target %s: dsn is not a valid PostgreSQL connection string", cfg.Name)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pc.MinConns = 0
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	// Exec mode: the extended protocol with bound parameters in one round
	// trip, without a server-side prepared statement per statement text.
	// The SQLCommenter comment makes the text differ per run, which would
	// otherwise fill every connection's statement cache.
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	// Session defaults: every transaction on these connections is
	// read-only and bounded by the statement timeout unless a statement
	// changes the session, which Execute guards against. They override
	// the same settings in the DSN's options.
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if cfg.ReadOnly {
		pc.ConnConfig.RuntimeParams[paramReadOnly] = "on"
	}
	if cfg.StatementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", cfg.Name))
	}
	return &Connector{cfg: cfg, begin: beginStatements(cfg), pool: pool, log: log.With(zap.String("target", cfg.Name))}, nil
}

// Pool is the underlying pool, for benchmarks and health checks.
func (c *Connector) Pool() *pgxpool.Pool { return c.pool }

// Close closes the pool, waiting for connections in use to be released.
func (c *Connector) Close() { c.pool.Close() }

// paramReadOnly is the session default the server reports (ParameterStatus)
// since PostgreSQL 14.
const paramReadOnly = "default_transaction_read_only"

// RowCap returns the most rows op can return: its max_rows, else the
// target's, else DefaultMaxRows. Rows budgets reserve it before the call
// runs (broker.RowCapper).
func (c *Connector) RowCap(op broker.Operation) int {
	if op.SQL == nil {
		return 0
	}
	return c.rowCap(op.SQL)
}

// Execute runs op.SQL in a transaction and returns its rows as JSON.
//
// The read-only mode and the statement timeout hold for every call, whatever
// the declared statement does to its session:
//   - a statement sessionSafe accepts runs alone in an implicit transaction
//     that takes both from the session defaults set at connect. Such a
//     statement cannot run SET or set_config; if a function it calls turns
//     the read-only default off, the server reports it and the connection
//     is dropped after the call;
//   - any other statement, and every statement on a server that does not
//     report default_transaction_read_only (before PostgreSQL 14), runs in
//     BEGIN [READ ONLY]; SET LOCAL statement_timeout; ...; COMMIT, and a
//     connection that ran a statement sessionSafe refuses is dropped.
//
// A statement whose text is the same on every call is prepared once per
// connection (queryArgs). When the server refuses a prepared statement
// because a table it reads changed shape, nothing ran: the statement runs
// once more, unprepared.
func (c *Connector) Execute(ctx context.Context, op broker.Operation) (broker.Output, error) {
	if op.SQL == nil {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s runs SQL operations only", c.cfg.Name)
	}
	out, err := c.execute(ctx, op, true)
	if planChanged(err) {
		return c.execute(ctx, op, false)
	}
	return out, err
}

// planChanged reports the server's refusal of a prepared statement whose
// result type changed (pgx then drops it from its cache). The server
// checks before it executes anything.
func planChanged(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000" && strings.Contains(pgErr.Message, "cached plan must not change result type")
}

// execute is Execute; prepare allows a stable text to be prepared.
func (c *Connector) execute(ctx context.Context, op broker.Operation, prepare bool) (broker.Output, error) {
	maxRows := c.RowCap(op)
	sql, stable := c.statementText(ctx, op)
	stable = stable && prepare
	ctx, cancel := c.backstop(ctx)
	defer cancel()

	pc, release, err := c.session(ctx)
	if err != nil {
		return broker.Output{}, err
	}
	defer release()
	var (
		rows     pgx.Rows
		finish   func() error
		sessionq = sessionSafe(sql)
	)
	if sessionq && pc.PgConn().ParameterStatus(paramReadOnly) != "" {
		// The fast path: the statement alone, in an implicit transaction
		// that takes read-only mode and the statement timeout from the
		// session defaults set at connect (see New). One statement for the
		// server instead of four.
		rows, err = pc.Query(ctx, sql, queryArgs(op, stable)...)
		finish = func() error {
			// A function called by the statement may have changed the
			// session default; the server reports it, and a connection
			// that is no longer read-only by default is dropped.
			if c.cfg.ReadOnly && pc.PgConn().ParameterStatus(paramReadOnly) != "on" {
				c.log.Warn("a statement turned off the session's read-only default; dropping the connection", zap.String("tool_statement", op.SQL.Statement))
				_ = pc.Close(context.WithoutCancel(ctx))
			}
			return nil
		}
	} else {
		// BEGIN, SET LOCAL, the statement and COMMIT go out as one pipelined
		// batch: one round trip. An error skips the rest of the batch and
		// leaves the transaction aborted; it is rolled back before the
		// connection returns to the pool.
		batch := &pgx.Batch{}
		for _, s := range c.begin {
			batch.Queue(s)
		}
		batch.Queue(sql, normalizeArgs(op.SQL.Args)...)
		batch.Queue("COMMIT")
		br := pc.SendBatch(ctx, batch)
		defer br.Close()
		if !sessionq {
			// The statement may change session state (SET, RESET, ...)
			// that outlives its transaction: the connection is not reused.
			defer func() { _ = pc.Close(context.WithoutCancel(ctx)) }()
		}
		for range c.begin {
			if _, err := br.Exec(); err != nil {
				return broker.Output{}, c.classify(ctx, err)
			}
		}
		rows, err = br.Query()
		finish = func() error {
			if _, err := br.Exec(); err != nil { // COMMIT
				return err
			}
			return br.Close()
		}
	}
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return broker.Output{}, c.classify(ctx, err)
	}
	set, err := c.collect(ctx, rows, maxRows)
	if err != nil {
		return broker.Output{}, err
	}
	if err := finish(); err != nil {
		return broker.Output{}, c.classify(ctx, err)
	}
	return set.output(), nil
}

// rowSet is a statement's result as read by collect.
type rowSet struct {
	w         *resultWriter
	n         int
	truncated bool
	columns   int
	// affected is the command tag's row count: the rows the statement
	// changed, or for a SELECT all the rows it returned, read or not.
	affected int64
}

// collect reads at most maxRows rows, discards the rest and closes rows.
func (c *Connector) collect(ctx context.Context, rows pgx.Rows, maxRows int) (rowSet, error) {
	set, err := collectRows(rows, maxRows, c.cfg.Name)
	var be *broker.Error
	if err != nil && !errors.As(err, &be) {
		return rowSet{}, c.classify(ctx, err)
	}
	return set, err
}

// collectRows reads at most maxRows rows, discards the rest and closes
// rows. A value that cannot be written as JSON is a *broker.Error; other
// errors are pgx's.
func collectRows(rows pgx.Rows, maxRows int, target string) (rowSet, error) {
	set := rowSet{w: newResultWriter(rows.FieldDescriptions()), columns: len(rows.FieldDescriptions())}
	for rows.Next() {
		if set.n == maxRows {
			set.truncated = true
			break
		}
		if err := set.w.writeRow(rows); err != nil {
			rows.Close()
			return rowSet{}, broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s returned a value toolgate cannot represent as JSON", target))
		}
		set.n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rowSet{}, err
	}
	set.affected = rows.CommandTag().RowsAffected()
	return set, nil
}

// output is the result document: the rows read, and for a statement
// without result columns the rows it affected as row_count.
func (s rowSet) output() broker.Output {
	count := s.n
	if s.columns == 0 {
		count = int(s.affected)
	}
	value := s.w.finish(count, s.truncated)
	return broker.Output{Value: value, Rows: s.n, Bytes: len(value)}
}

// rowCap is the row cap of an operation: the tool's, else the target's,
// else DefaultMaxRows.
func (c *Connector) rowCap(op *broker.SQLOperation) int {
	switch {
	case op.MaxRows > 0:
		return op.MaxRows
	case c.cfg.MaxRows > 0:
		return c.cfg.MaxRows
	}
	return DefaultMaxRows
}

// statementText is the statement with the operation's context appended as
// an SQLCommenter comment, with the trace context of ctx (the broker's
// connector span, or the caller's) as traceparent and tracestate. stable
// reports that the text is the same for every call of the tool by the
// node: no run and no trace context in its comment.
func (c *Connector) statementText(ctx context.Context, op broker.Operation) (text string, stable bool) {
	kv := withTraceContext(ctx, op.Comment)
	stable = kv["run"] == "" && kv["traceparent"] == ""
	if comment := Comment(kv); comment != "" {
		return appendComment(op.SQL.Statement, comment), stable
	}
	return op.SQL.Statement, stable
}

// queryArgs are the arguments of Query for a statement on the fast path.
// A stable text is prepared once per connection and then only bound and
// executed (pgx's statement cache), sparing the server a parse and plan
// per call; a text that differs per run or call goes in exec mode and
// never fills the cache.
func queryArgs(op broker.Operation, stable bool) []any {
	args := normalizeArgs(op.SQL.Args)
	if stable {
		return append([]any{pgx.QueryExecModeCacheStatement}, args...)
	}
	return args
}

// backstop bounds a call for a server that stops answering: the
// server-side statement_timeout normally fires first.
func (c *Connector) backstop(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.StatementTimeout > 0 {
		return context.WithTimeout(ctx, c.cfg.StatementTimeout+c.cfg.ConnectTimeout)
	}
	return ctx, func() {}
}

// session acquires a pooled connection. release rolls back a transaction
// a failed call left open (closing the connection when that fails) and
// returns the connection to the pool.
func (c *Connector) session(ctx context.Context) (pc *pgx.Conn, release func(), err error) {
	conn, err := c.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	pc = conn.Conn()
	return pc, func() {
		if !pc.IsClosed() && pc.PgConn().TxStatus() != 'I' {
			if err := rollback(pc); err != nil {
				c.log.Warn("rollback failed; the connection was closed", zap.Error(err))
			}
		}
		conn.Release()
	}, nil
}

// acquire gets a pooled connection, waiting at most ConnectTimeout.
func (c *Connector) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.pool.Acquire(actx)
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, c.contextError(ctx)
	}
	c.log.Warn("postgres target unavailable", zap.Error(err))
	return nil, broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", c.cfg.Name))
}

// beginStatements opens a call's transaction: read-only when configured,
// with the statement timeout (an integer from config, not an argument).
func beginStatements(cfg Config) []string {
	begin := []string{"BEGIN"}
	if cfg.ReadOnly {
		begin[0] = "BEGIN READ ONLY"
	}
	if cfg.StatementTimeout > 0 {
		begin = append(begin, "SET LOCAL statement_timeout = "+strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10))
	}
	return begin
}

// classify turns a pgx error into a *broker.Error (see classifyError).
func (c *Connector) classify(ctx context.Context, err error) error {
	return classifyError(ctx, c.cfg.Name, c.cfg.StatementTimeout, c.log, err)
}

// classifyError turns a pgx error on target into a *broker.Error. Database
// messages are kept (the broker masks them); connection errors, which name
// hosts and users, are reduced to "target X is unavailable".
func classifyError(ctx context.Context, target string, timeout time.Duration, log *zap.Logger, err error) *broker.Error {
	if ctx.Err() != nil {
		return contextError(ctx, target)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57014": // query_canceled: our statement_timeout
			return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s: the statement ran longer than the %s statement timeout", target, timeout))
		case pgErr.Code == "25006": // read_only_sql_transaction
			return broker.Wrap(broker.CodeForbidden, err, fmt.Sprintf("target %s is read-only: %s", target, pgErr.Message))
		case pgErr.Code[:2] == "08", pgErr.Code[:2] == "28", pgErr.Code == "53300",
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", pgErr.Code == "3D000":
			log.Warn("postgres target unavailable", zap.String("sqlstate", pgErr.Code), zap.String("error", pgErr.Message))
			return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", target))
		}
		return broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s: %s (SQLSTATE %s)", target, pgErr.Message, pgErr.Code))
	}
	if isConnectionError(err) {
		log.Warn("postgres target unavailable", zap.Error(err))
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s is unavailable", target))
	}
	// Client-side failures (an argument pgx cannot encode, a protocol
	// surprise). Their text holds no connection details.
	return broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s: %s", target, err.Error()))
}

func (c *Connector) contextError(ctx context.Context) error { return contextError(ctx, c.cfg.Name) }

func contextError(ctx context.Context, target string) *broker.Error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s did not answer before the deadline", target))
	}
	return broker.Wrap(broker.CodeUnavailable, err, fmt.Sprintf("the call was cancelled before target %s answered", target))
}

func isConnectionError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}

// ReadOnly reports whether the target is configured read-only.
func (c *Connector) ReadOnly() bool { return c.cfg.ReadOnly }
