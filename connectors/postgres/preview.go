package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Preview defaults.
const (
	// DefaultPreviewTimeout bounds a preview when the config does not; the
	// target's statement_timeout still applies when it is shorter.
	DefaultPreviewTimeout = 5 * time.Second
	// DefaultPreviewLockTimeout bounds how long a preview waits for a lock
	// another transaction holds.
	DefaultPreviewLockTimeout = time.Second
	// DefaultPreviewRows is the sample cap when the caller gives none.
	DefaultPreviewRows = 20
)

// PreviewOptions bound one preview (PreviewConn).
type PreviewOptions struct {
	// Target names the target in messages.
	Target string
	// Timeout is the preview's statement_timeout; 0 means
	// DefaultPreviewTimeout.
	Timeout time.Duration
	// LockTimeout is the preview's lock_timeout; 0 means
	// DefaultPreviewLockTimeout. It never exceeds Timeout.
	LockTimeout time.Duration
	// Rows caps the sample; 0 means DefaultPreviewRows.
	Rows int
	// ReadOnly runs every preview READ ONLY (a read-only target).
	ReadOnly bool
	// Comment is appended to the statement as an SQLCommenter comment.
	Comment map[string]string
	// Log receives warnings; nil logs nothing.
	Log *zap.Logger
}

func (o PreviewOptions) withDefaults() PreviewOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultPreviewTimeout
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultPreviewLockTimeout
	}
	o.LockTimeout = min(o.LockTimeout, o.Timeout)
	if o.Rows <= 0 {
		o.Rows = DefaultPreviewRows
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o
}

// PreviewConn previews one statement on conn: it runs it inside a
// transaction that is always rolled back, never committed, and returns the
// rows it affected (INSERT and UPDATE: as they would be after; DELETE: as
// they were) up to opt.Rows, and the count. A SELECT (a declared preview
// query) runs READ ONLY; its rows are the sample and its row count the
// count. The statement text needs no arguments (a held passthrough
// statement) or binds args like a tool's.
//
// The transaction is bounded by SET LOCAL statement_timeout and
// lock_timeout. When ctx ends mid-statement a cancel request stops the
// statement on the server, and the transaction is rolled back before
// PreviewConn returns, so no row lock outlives it. conn must be idle (not
// inside a transaction). The statement runs as conn's role: a passthrough
// preview must use a connection with the grant's role, never the target's
// admin login.
func PreviewConn(ctx context.Context, conn *pgx.Conn, statement string, args []any, opt PreviewOptions) (broker.Preview, error) {
	opt = opt.withDefaults()
	plan, err := planPreview(statement, serverMajor(conn.PgConn()))
	if err != nil {
		return broker.Preview{}, err
	}
	p, _, err := runPreview(ctx, conn, plan, args, opt)
	return p, err
}

// runPreview runs a planned preview. cancelled reports that a cancel
// request was sent to conn's server session.
func runPreview(ctx context.Context, conn *pgx.Conn, plan previewPlan, args []any, opt PreviewOptions) (p broker.Preview, cancelled bool, err error) {
	if conn.PgConn().TxStatus() != 'I' {
		return broker.Preview{}, false, broker.NoPreview(broker.CodeInvalidRequest, "the connection is inside a transaction")
	}
	if ctx.Err() != nil {
		return broker.Preview{}, false, previewError(ctx, opt, ctx.Err())
	}
	text := plan.text
	if comment := Comment(opt.Comment); comment != "" {
		text = appendComment(text, comment)
	}
	// The statements run on a context that the caller's cancellation does
	// not cut (that would close the connection while the server still
	// runs the statement and holds its locks); a cancel request stops
	// the statement instead. The deadline is a backstop for a server that
	// stops answering: statement_timeout fires first.
	qctx, stop := context.WithTimeout(context.WithoutCancel(ctx), opt.Timeout+DefaultConnectTimeout)
	defer stop()
	watch := cancelOnDone(ctx, conn.PgConn())
	defer func() {
		cancelled = watch()
		if rerr := rollback(conn); rerr != nil {
			opt.Log.Warn("preview rollback failed; the connection was closed", zap.Error(rerr))
		}
	}()
	begin := "BEGIN"
	if opt.ReadOnly || plan.read {
		begin = "BEGIN READ ONLY"
	}
	// At least 1ms each: 0 would turn the bound off.
	begin += "; SET LOCAL statement_timeout = " + strconv.FormatInt(max(1, opt.Timeout.Milliseconds()), 10) +
		"; SET LOCAL lock_timeout = " + strconv.FormatInt(max(1, opt.LockTimeout.Milliseconds()), 10)
	if _, err := conn.Exec(qctx, begin); err != nil {
		return broker.Preview{}, false, previewError(ctx, opt, err)
	}
	rows, err := conn.Query(qctx, text, append([]any{pgx.QueryExecModeExec}, normalizeArgs(args)...)...)
	if err != nil {
		return broker.Preview{}, false, previewError(ctx, opt, err)
	}
	set, err := collectRows(rows, opt.Rows, opt.Target)
	if err != nil {
		return broker.Preview{}, false, previewError(ctx, opt, err)
	}
	if ctx.Err() != nil {
		return broker.Preview{}, false, previewError(ctx, opt, ctx.Err())
	}
	return set.preview(plan), false, nil
}

// preview is the rows read as a Preview.
func (s rowSet) preview(plan previewPlan) broker.Preview {
	p := broker.Preview{RowsAffected: s.affected, Truncated: s.truncated, Image: plan.image, Note: plan.note}
	if plan.image != "" && s.columns > 0 {
		p.Sample = s.w.rowsArray()
	} else {
		p.Image = ""
	}
	return p
}

// cancelOnDone sends a cancel request to pc's server session when ctx
// ends. The returned function stops watching, waits for a request in
// flight and reports whether one was sent.
func cancelOnDone(ctx context.Context, pc *pgconn.PgConn) func() bool {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		cctx, cancel := context.WithTimeout(context.Background(), DefaultConnectTimeout)
		defer cancel()
		_ = pc.CancelRequest(cctx)
	})
	return func() bool {
		if stop() {
			return false
		}
		<-done
		return true
	}
}

// rollback ends the preview's transaction. A cancel request that reached
// the server late can abort the first ROLLBACK, so it is tried twice; when
// both fail the connection is closed, which makes the server roll back.
func rollback(conn *pgx.Conn) error {
	if conn.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultConnectTimeout)
	defer cancel()
	var err error
	for range 2 {
		if _, err = conn.Exec(ctx, "ROLLBACK"); err == nil && conn.PgConn().TxStatus() == 'I' {
			return nil
		}
	}
	_ = conn.Close(ctx)
	if err == nil {
		err = errors.New("the session is still inside a transaction after ROLLBACK")
	}
	return err
}

// previewError turns a failed preview into a NoPreview *broker.Error that
// says nothing was changed.
func previewError(ctx context.Context, opt PreviewOptions, err error) error {
	var be *broker.Error
	if errors.As(err, &be) {
		return noPreviewFrom(be)
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return wrapNoPreview(broker.CodeTimeout, err, "the call's deadline passed before the preview on target %s finished; nothing was changed", opt.Target)
		}
		return wrapNoPreview(broker.CodeUnavailable, err, "the preview on target %s was cancelled; nothing was changed", opt.Target)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57014": // query_canceled: the preview's statement_timeout
			return wrapNoPreview(broker.CodeTimeout, err, "the preview ran longer than its %s limit on target %s; nothing was changed", opt.Timeout, opt.Target)
		case "55P03": // lock_not_available: the preview's lock_timeout
			return wrapNoPreview(broker.CodeTimeout, err, "rows the call would change are locked by another transaction on target %s (waited %s); nothing was changed", opt.Target, opt.LockTimeout)
		}
	}
	return noPreviewFrom(classifyError(ctx, opt.Target, opt.Timeout, opt.Log, err))
}

// noPreviewFrom is e as a NoPreview error.
func noPreviewFrom(e *broker.Error) *broker.Error {
	if strings.HasPrefix(e.Message, "no preview available: ") {
		return e
	}
	return wrapNoPreview(e.Code, e.Cause, "%s; nothing was changed", e.Message)
}

func wrapNoPreview(code broker.Code, cause error, format string, args ...any) *broker.Error {
	e := broker.NoPreview(code, format, args...)
	e.Cause = cause
	return e
}

// serverMajor is the server's major version from its server_version
// parameter ("15.4 (Debian ...)" → 15); 0 when unknown.
func serverMajor(pc *pgconn.PgConn) int {
	v := pc.ParameterStatus("server_version")
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// Preview previews op.SQL on a pooled connection (see PreviewConn), with
// the target's read-only mode, its preview timeout (never longer than its
// statement_timeout) and at most limit sample rows (≤ 0: 20; never more
// than the row cap of a call).
func (c *Connector) Preview(ctx context.Context, op broker.Operation, limit int) (broker.Preview, error) {
	if op.SQL == nil {
		return broker.Preview{}, broker.NoPreview(broker.CodeInvalidRequest, "target %s runs SQL operations only", c.cfg.Name)
	}
	opt := c.previewOptions(op, limit)
	conn, err := c.acquire(ctx)
	if err != nil {
		var be *broker.Error
		if errors.As(err, &be) {
			return broker.Preview{}, noPreviewFrom(be)
		}
		return broker.Preview{}, err
	}
	defer conn.Release()
	plan, err := planPreview(op.SQL.Statement, serverMajor(conn.Conn().PgConn()))
	if err != nil {
		return broker.Preview{}, err
	}
	p, cancelled, err := runPreview(ctx, conn.Conn(), plan, op.SQL.Args, opt)
	if cancelled {
		// A cancel request may still be on its way to the session: it
		// does not go back to the pool.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	return p, err
}

// previewOptions are the bounds of a preview of op on this target.
func (c *Connector) previewOptions(op broker.Operation, limit int) PreviewOptions {
	timeout := c.cfg.PreviewTimeout
	if timeout <= 0 {
		timeout = DefaultPreviewTimeout
	}
	if c.cfg.StatementTimeout > 0 {
		timeout = min(timeout, c.cfg.StatementTimeout)
	}
	if limit <= 0 {
		limit = DefaultPreviewRows
	}
	return PreviewOptions{
		Target: c.cfg.Name, Timeout: timeout, LockTimeout: c.cfg.PreviewLockTimeout,
		Rows: min(limit, c.rowCap(op.SQL)), ReadOnly: c.cfg.ReadOnly, Comment: op.Comment, Log: c.log,
	}
}

var (
	_ broker.Previewer         = (*Connector)(nil)
	_ broker.ExpectingExecutor = (*Connector)(nil)
)
