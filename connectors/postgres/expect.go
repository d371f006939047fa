package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// ExecuteExpecting runs an approved call's operation like Execute, but
// always in an explicit transaction whose COMMIT is sent only after the
// statement's row count (its command tag: the rows it changed, or for a
// SELECT all the rows it returned) matches want. A count outside want's
// tolerance rolls the transaction back and returns broker.StaleError
// (approval_stale): nothing was changed.
func (c *Connector) ExecuteExpecting(ctx context.Context, op broker.Operation, want broker.Expectation) (broker.Output, error) {
	if op.SQL == nil {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s runs SQL operations only", c.cfg.Name)
	}
	if want.RowsAffected < 0 {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s: a matched run needs the previewed row count, and none is known", c.cfg.Name)
	}
	maxRows := c.rowCap(op.SQL)
	sql, _ := c.statementText(ctx, op)
	ctx, cancel := c.backstop(ctx)
	defer cancel()
	// Any way out but a COMMIT that succeeded leaves nothing changed:
	// release rolls back an open transaction.
	pc, release, err := c.session(ctx)
	if err != nil {
		return broker.Output{}, err
	}
	defer release()
	if !sessionSafe(sql) {
		// The statement may change session state that outlives its
		// transaction: the connection is not reused.
		defer func() { _ = pc.Close(context.WithoutCancel(ctx)) }()
	}
	set, err := c.runInTransaction(ctx, pc, sql, op.SQL.Args, maxRows)
	if err != nil {
		return broker.Output{}, err
	}
	if !want.Allows(set.affected) {
		if err := rollback(pc); err != nil {
			c.log.Warn("matched run rollback failed; the connection was closed", zap.Error(err))
		}
		return broker.Output{}, broker.StaleError(want.RowsAffected, set.affected)
	}
	tag, err := pc.Exec(ctx, "COMMIT")
	if err != nil {
		return broker.Output{}, c.classify(ctx, err)
	}
	if tag.String() != "COMMIT" {
		// The server answers ROLLBACK to a COMMIT of a failed transaction.
		return broker.Output{}, c.classify(ctx, errors.New("the transaction failed and was rolled back"))
	}
	return set.output(), nil
}

// runInTransaction opens the call's transaction (read-only mode and
// statement timeout as configured), runs the statement and reads its rows,
// in one round trip. The transaction is left open.
func (c *Connector) runInTransaction(ctx context.Context, pc *pgx.Conn, sql string, args []any, maxRows int) (rowSet, error) {
	batch := &pgx.Batch{}
	for _, s := range c.begin {
		batch.Queue(s)
	}
	batch.Queue(sql, normalizeArgs(args)...)
	br := pc.SendBatch(ctx, batch)
	for range c.begin {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return rowSet{}, c.classify(ctx, err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		_ = br.Close()
		return rowSet{}, c.classify(ctx, err)
	}
	set, err := c.collect(ctx, rows, maxRows)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = c.classify(ctx, cerr)
	}
	if err != nil {
		return rowSet{}, err
	}
	if pc.PgConn().TxStatus() != 'T' {
		return rowSet{}, c.classify(ctx, fmt.Errorf("the transaction is not open after the statement (status %q)", pc.PgConn().TxStatus()))
	}
	return set, nil
}
