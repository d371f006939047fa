package pgroles

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// Privileges cannot stop a role from preparing a transaction (PREPARE
// TRANSACTION needs none): a prepared transaction outlives its session and
// holds its locks and its snapshot until someone ends it. Lock 1 refuses
// two-phase commit; for lock 2 the sweeper rolls back every transaction a
// role of toolgate's has prepared, so one can outlive its session by at
// most one sweep. A target with max_prepared_transactions = 0 (PostgreSQL's
// default) never has any.

// preparedSQL lists the prepared transactions of the roles that may be
// toolgate's, in the admin login's database.
const preparedSQL = `SELECT x.gid, x.owner::text FROM pg_catalog.pg_prepared_xacts x
WHERE x.owner LIKE 'toolgate\_pt\_%' AND x.database = current_database()`

// rollbackPrepared ends the prepared transactions of the given roles
// (toolgate's, by their marker). Only the role that prepared a transaction
// or a superuser may end it, so each is rolled back over a connection of
// its own role when the admin login is not a superuser.
func (p *Provisioner) rollbackPrepared(ctx context.Context, ours map[string]bool) error {
	rows, err := p.pool.Query(ctx, preparedSQL)
	if err != nil {
		return err
	}
	type prepared struct{ gid, owner string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (prepared, error) {
		var x prepared
		return x, r.Scan(&x.gid, &x.owner)
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, x := range list {
		if !ours[x.owner] {
			continue
		}
		if err := p.rollbackOne(ctx, x.gid, x.owner); err != nil {
			errs = append(errs, fmt.Errorf("roll back a transaction prepared by %s: %w", x.owner, err))
			continue
		}
		p.log.Warn("rolled back a transaction prepared by a passthrough role", zap.String("role", x.owner))
	}
	return errors.Join(errs...)
}

func (p *Provisioner) rollbackOne(ctx context.Context, gid, owner string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stmt := "ROLLBACK PREPARED " + quoteLiteral(gid)
	_, err := p.pool.Exec(ctx, stmt)
	if err == nil || !isPrivilegeError(err) {
		return err
	}
	cfg := p.up.Copy()
	cfg.User, cfg.Password = owner, password(p.key, owner)
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, err = conn.Exec(ctx, stmt).ReadAll()
	return err
}

// quoteLiteral quotes s as an escape string literal, whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `''`)
	return `E'` + s + `'`
}

func isPrivilegeError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}
