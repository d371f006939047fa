package pgroles

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Run sweeps at every tick until ctx ends. Give it a ticker of a few
// seconds: that is how long a revoked grant's role may outlive it.
func (p *Provisioner) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			if err := p.Sweep(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("passthrough role sweep failed", zap.Error(err))
			}
		}
	}
}

// found is one provisioned role as the server lists it.
type found struct {
	oid      uint32
	name     string
	login    bool
	until    *time.Time
	comment  string
	backends int
	db       string
}

func scanFound(row pgx.CollectableRow) (found, error) {
	var r found
	err := row.Scan(&r.oid, &r.name, &r.login, &r.until, &r.comment, &r.backends, &r.db)
	return r, err
}

// listSQL lists the roles that may be toolgate's (the marker decides), with
// their open sessions.
const listSQL = `SELECT r.oid, r.rolname::text, r.rolcanlogin, NULLIF(r.rolvaliduntil, 'infinity'),
  coalesce(pg_catalog.shobj_description(r.oid, 'pg_authid'), ''),
  (SELECT count(*)::int FROM pg_catalog.pg_stat_activity a WHERE a.usesysid = r.oid),
  current_database()::text
FROM pg_catalog.pg_roles r WHERE r.rolname LIKE 'toolgate\_pt\_%'`

// Sweep rolls back the transactions toolgate's roles prepared (two-phase
// commit: no privilege can forbid it), then retires the roles toolgate
// provisioned for this target that must not log in any more: a revoked or expired grant's, a node identity's
// that nobody uses, one left disabled by an earlier sweep; then it brings
// the roles of open sessions up to a reloaded policy. Roles without
// toolgate's marker, or provisioned for another target or database, are
// never touched.
func (p *Provisioner) Sweep(ctx context.Context) error {
	rows, err := p.pool.Query(ctx, listSQL)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, scanFound)
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, r := range roles {
		if id, ok := parseMarker(r.name, r.comment); ok && id.Target == p.cfg.Target && id.DB == r.db {
			ours[r.name] = true
		}
	}
	// Prepared transactions first: a role is retired only once nothing of
	// it is left running.
	errs := []error{p.rollbackPrepared(ctx, ours)}
	for _, r := range roles {
		id, ok := parseMarker(r.name, r.comment)
		if !ok || !ours[r.name] {
			continue
		}
		if why := p.retireReason(ctx, id, r); why != "" {
			if err := p.retire(ctx, r, why); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, p.refresh(ctx))
	return errors.Join(errs...)
}

// retireReason says why a role must stop, "" when it may stay.
func (p *Provisioner) retireReason(ctx context.Context, id identity, r found) string {
	now := p.now()
	if !r.login && r.backends == 0 && !p.inUse(r.name) {
		return "disabled"
	}
	if id.Grant == "" {
		if r.backends == 0 && !p.inUse(r.name) {
			return "idle"
		}
		return ""
	}
	ok, live, err := p.cfg.Grants.GrantLive(ctx, id.Grant, now)
	switch {
	case err != nil:
		p.log.Warn("grant state unknown; its role is kept until the next sweep", zap.String("grant", id.Grant), zap.Error(err))
		return ""
	case ok && !live:
		return "grant ended"
	case !ok && r.until != nil && r.until.Before(now):
		return "expired"
	}
	return ""
}

// inUse reports whether this instance has sessions on the role or used it
// within NodeIdle.
func (p *Provisioner) inUse(name string) bool {
	p.mu.Lock()
	st := p.roles[name]
	p.mu.Unlock()
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.refs > 0 || p.now().Sub(st.used) < p.cfg.NodeIdle
}

// retire disables the role (NOLOGIN, every privilege revoked, so its open
// sessions can read nothing more), ends its sessions where the admin login
// may, and drops it once none is left.
func (p *Provisioner) retire(ctx context.Context, r found, why string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q := pgx.Identifier{r.name}.Sanitize()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", advisoryKey(r.name)); err != nil {
			return err
		}
		if ok, err := stillOurs(ctx, tx, r); err != nil || !ok {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER ROLE "+q+" NOLOGIN"); err != nil {
			return err
		}
		return revokeAll(ctx, tx, r.name, r.oid, r.db)
	})
	if err != nil {
		return err
	}
	p.forget(r.name)
	p.log.Info("passthrough role disabled", zap.String("role", r.name), zap.String("reason", why))
	if left := p.terminate(ctx, r); left > 0 {
		p.log.Info("passthrough role still has sessions; it is dropped at a later sweep", zap.String("role", r.name), zap.Int("sessions", left))
		return nil
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", advisoryKey(r.name)); err != nil {
			return err
		}
		var login bool
		err := tx.QueryRow(ctx, `SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE oid = $1`, r.oid).Scan(&login)
		if errors.Is(err, pgx.ErrNoRows) || login {
			return nil // dropped by another instance, or provisioned again meanwhile
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP ROLE IF EXISTS "+q); err != nil {
			return err
		}
		p.log.Info("passthrough role dropped", zap.String("role", r.name))
		return nil
	})
}

// stillOurs re-reads the role under its lock.
func stillOurs(ctx context.Context, tx pgx.Tx, r found) (bool, error) {
	var comment string
	err := tx.QueryRow(ctx, `SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '') FROM pg_catalog.pg_roles WHERE oid = $1 AND rolname = $2`, r.oid, r.name).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok := parseMarker(r.name, comment)
	return ok, nil
}

// revokeAll revokes every privilege the role holds in the current
// database: on relations, columns, sequences, schemas and the database.
func revokeAll(ctx context.Context, tx pgx.Tx, name string, oid uint32, db string) error {
	q := pgx.Identifier{name}.Sanitize()
	have, err := current(ctx, tx, oid)
	if err != nil {
		return err
	}
	for o := range byObject(have) {
		if _, err := tx.Exec(ctx, "REVOKE ALL ON "+kindWord(o)+" "+o.String()+" FROM "+q); err != nil {
			return err
		}
	}
	schemas, err := texts(ctx, tx, `SELECT n.nspname::text FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee = $1`, oid)
	if err != nil {
		return err
	}
	for _, s := range schemas {
		if _, err := tx.Exec(ctx, "REVOKE ALL ON SCHEMA "+pgx.Identifier{s}.Sanitize()+" FROM "+q); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, "REVOKE ALL ON DATABASE "+pgx.Identifier{db}.Sanitize()+" FROM "+q)
	return err
}

// terminate ends the role's backends (the admin login needs
// pg_signal_backend or superuser) and returns how many are left.
func (p *Provisioner) terminate(ctx context.Context, r found) int {
	rows, err := p.pool.Query(ctx, `SELECT pid FROM pg_catalog.pg_stat_activity WHERE usesysid = $1`, r.oid)
	if err != nil {
		return 1
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 1
	}
	left := 0
	for _, pid := range pids {
		var ok bool
		if err := p.pool.QueryRow(ctx, `SELECT pg_catalog.pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			left++
			if err != nil {
				p.log.Warn("a disabled passthrough role's session could not be terminated (grant pg_signal_backend to the admin login); it can read nothing more", zap.String("role", r.name), zap.Error(err))
			}
		}
	}
	return left
}

// forget drops this instance's state of a role.
func (p *Provisioner) forget(name string) {
	p.mu.Lock()
	st := p.roles[name]
	delete(p.roles, name)
	p.mu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.spec = ""
		st.mu.Unlock()
	}
}

// refresh re-provisions the roles this instance has sessions on whose
// access changed (a policy reload), and retires those whose node lost it.
func (p *Provisioner) refresh(ctx context.Context) error {
	p.mu.Lock()
	states := make([]*roleState, 0, len(p.roles))
	for _, st := range p.roles {
		states = append(states, st)
	}
	p.mu.Unlock()
	var errs []error
	for _, st := range states {
		st.mu.Lock()
		id, fp, until, refs := st.id, st.spec, st.until, st.refs
		st.mu.Unlock()
		if refs == 0 || fp == "" {
			continue
		}
		acc, ok := p.cfg.Policy.Access(broker.Caller{Context: broker.Context{Graph: id.Graph, Node: id.Node}})
		if !ok || acc.Declared != nil {
			errs = append(errs, p.retireByName(ctx, id.roleName(), "the node's passthrough access changed"))
			continue
		}
		sp := p.spec(acc, until)
		if sp.fingerprint() == fp {
			continue
		}
		st.mu.Lock()
		err := p.ensure(ctx, id, sp)
		if err == nil {
			st.spec = sp.fingerprint()
		}
		st.mu.Unlock()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (p *Provisioner) retireByName(ctx context.Context, name, why string) error {
	rows, err := p.pool.Query(ctx, listSQL+" AND r.rolname = $1", name)
	if err != nil {
		return err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanFound)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.retire(ctx, r, why)
}
