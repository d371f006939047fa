package pgroles

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ensure creates the role or brings it to exactly the spec, in one
// transaction holding the role's advisory lock, so instances provisioning
// the same role take turns.
func (p *Provisioner) ensure(ctx context.Context, id identity, sp spec) error {
	name := id.roleName()
	verifier, err := scramVerifier(password(p.key, name))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", advisoryKey(name)); err != nil {
			return err
		}
		oid, err := upsertRole(ctx, tx, id, sp, verifier)
		if err != nil {
			return err
		}
		if err := settings(ctx, tx, name, id.DB, sp); err != nil {
			return err
		}
		if err := stripMemberships(ctx, tx, name, oid); err != nil {
			return err
		}
		want, schemas, err := desired(ctx, tx, sp)
		if err != nil {
			return err
		}
		if err := syncPrivileges(ctx, tx, name, oid, want); err != nil {
			return err
		}
		if err := ensureReach(ctx, tx, name, oid, id.DB, schemas); err != nil {
			return err
		}
		return verifyRole(ctx, tx, name, oid)
	})
}

// upsertRole creates the role, or updates the one toolgate created, and
// returns its oid. A role of that name without toolgate's marker is never
// touched.
func upsertRole(ctx context.Context, tx pgx.Tx, id identity, sp spec, verifier string) (uint32, error) {
	name := id.roleName()
	q := pgx.Identifier{name}.Sanitize()
	until := "infinity"
	if !sp.until.IsZero() {
		until = sp.until.Format(time.RFC3339)
	}
	if strings.ContainsAny(verifier+until, `'\`) {
		return 0, errors.New("internal: unexpected character in a role attribute")
	}
	// Only these attributes may be named by a non-superuser in ALTER ROLE;
	// the others are checked by verifyRole.
	attrs := fmt.Sprintf("LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT %d VALID UNTIL '%s' PASSWORD '%s'", sp.connLimit, until, verifier)
	var oid uint32
	var comment string
	err := tx.QueryRow(ctx, `SELECT oid, coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '') FROM pg_catalog.pg_roles WHERE rolname = $1`, name).Scan(&oid, &comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, "CREATE ROLE "+q+" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS "+attrs); err != nil {
			return 0, fmt.Errorf("create role %s: %w", name, err)
		}
		if err := tx.QueryRow(ctx, `SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1`, name).Scan(&oid); err != nil {
			return 0, err
		}
	case err != nil:
		return 0, err
	default:
		if _, ok := parseMarker(name, comment); !ok {
			return 0, fmt.Errorf("role %s exists but does not carry toolgate's marker; toolgate will not touch it (drop or rename it)", name)
		}
		if _, err := tx.Exec(ctx, "ALTER ROLE "+q+" WITH "+attrs); err != nil {
			return 0, fmt.Errorf("alter role %s: %w", name, err)
		}
	}
	var stmt string
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.format('COMMENT ON ROLE %I IS %L', $1::text, $2::text)`, name, id.marker()).Scan(&stmt); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return 0, fmt.Errorf("comment on role %s: %w", name, err)
	}
	return oid, nil
}

// settings replaces the role's defaults with the spec's:
// default_transaction_read_only for read-only grants and the target's
// statement_timeout.
func settings(ctx context.Context, tx pgx.Tx, name, db string, sp spec) error {
	q, in := pgx.Identifier{name}.Sanitize(), " IN DATABASE "+pgx.Identifier{db}.Sanitize()
	stmts := []string{"ALTER ROLE " + q + " RESET ALL", "ALTER ROLE " + q + in + " RESET ALL"}
	if sp.readOnly {
		stmts = append(stmts, "ALTER ROLE "+q+in+" SET default_transaction_read_only = on")
	}
	if ms := sp.timeout.Milliseconds(); ms > 0 {
		stmts = append(stmts, fmt.Sprintf("ALTER ROLE %s%s SET statement_timeout = %d", q, in, ms))
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("role %s settings: %w", name, err)
		}
	}
	return nil
}

// stripMemberships revokes every role the role was made a member of:
// toolgate grants none, so any is someone else's addition.
func stripMemberships(ctx context.Context, tx pgx.Tx, name string, oid uint32) error {
	held, err := texts(ctx, tx, `SELECT r.rolname::text FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.roleid WHERE m.member = $1`, oid)
	if err != nil {
		return err
	}
	for _, r := range held {
		if _, err := tx.Exec(ctx, "REVOKE "+pgx.Identifier{r}.Sanitize()+" FROM "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("role %s was made a member of %s and it cannot be revoked: %w", name, r, err)
		}
	}
	return nil
}

// ensureReach grants CONNECT on the database and USAGE on the schemas the
// granted tables live in, where PUBLIC does not already give them.
func ensureReach(ctx context.Context, tx pgx.Tx, name string, oid uint32, db string, schemas []string) error {
	q := pgx.Identifier{name}.Sanitize()
	check := func(sql string, arg any) (bool, error) {
		var ok bool
		err := tx.QueryRow(ctx, sql, oid, arg).Scan(&ok)
		return ok, err
	}
	type need struct{ check, grant, what string }
	needs := []need{{`SELECT pg_catalog.has_database_privilege($1::oid, $2::text, 'CONNECT')`, "GRANT CONNECT ON DATABASE " + pgx.Identifier{db}.Sanitize() + " TO " + q, db}}
	for _, s := range schemas {
		needs = append(needs, need{`SELECT pg_catalog.has_schema_privilege($1::oid, $2::text, 'USAGE')`, "GRANT USAGE ON SCHEMA " + pgx.Identifier{s}.Sanitize() + " TO " + q, s})
	}
	for _, n := range needs {
		ok, err := check(n.check, n.what)
		if err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if _, err := tx.Exec(ctx, n.grant); err != nil {
			return fmt.Errorf("%s: %w", n.grant, err)
		}
		if ok, err := check(n.check, n.what); err != nil || !ok {
			return fmt.Errorf("%s granted nothing: the admin login needs that privilege WITH GRANT OPTION", n.grant)
		}
	}
	return nil
}

// verifyRole fails unless the role is a plain login: no superuser,
// replication, bypassrls, createdb or createrole attribute, and a member
// of no role (so of none of the privileged predefined roles).
func verifyRole(ctx context.Context, tx pgx.Tx, name string, oid uint32) error {
	var attrs bool
	var members []string
	err := tx.QueryRow(ctx, `SELECT rolsuper OR rolreplication OR rolbypassrls OR rolcreatedb OR rolcreaterole,
  ARRAY(SELECT p.rolname::text FROM pg_catalog.pg_roles p WHERE p.oid <> r.oid AND pg_catalog.pg_has_role(r.oid, p.oid, 'MEMBER'))
FROM pg_catalog.pg_roles r WHERE r.oid = $1`, oid).Scan(&attrs, &members)
	if err != nil {
		return err
	}
	if attrs || len(members) > 0 {
		return fmt.Errorf("role %s holds attributes or memberships toolgate did not give it (member of %v); a superuser must remove them", name, members)
	}
	return nil
}
