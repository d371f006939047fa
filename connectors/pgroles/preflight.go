package pgroles

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// PrivilegedRoles are the predefined roles a passthrough login must not
// hold (directly or through other roles): with them a session runs
// programs on the database host, reads or writes its files, or reads and
// writes every table.
var privilegedRoles = []string{"pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_read_all_data", "pg_write_all_data"}

// ErrUnreachable wraps a Preflight that could not reach the target; the
// checks then run before the first session instead.
var ErrUnreachable = errors.New("the target could not be reached")

// Preflight checks, before any session: that the admin login can create
// roles when some node needs one provisioned, and that no declared login
// (nor the admin login with SessionsAsAdmin) is privileged (a superuser, or a member of a server-file, server-program
// or all-data role) unless AllowPrivileged. Its error names the fix. It
// returns warnings for PUBLIC privileges that let any role write (CREATE on
// a schema, TEMPORARY on the database, creating large objects), which no
// role toolgate provisions can be denied, and for relations, columns and
// SECURITY DEFINER functions PUBLIC may use.
func (p *Provisioner) Preflight(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, unreachable(err)
	}
	defer conn.Release()
	var user, db string
	var super, createrole bool
	err = conn.QueryRow(ctx, `SELECT current_user, current_database(), rolsuper, rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&user, &db, &super, &createrole)
	if err != nil {
		return nil, unreachable(err)
	}
	p.mu.Lock()
	p.db = db
	p.mu.Unlock()
	if p.cfg.Provision && !super && !createrole {
		return nil, fmt.Errorf("the target's login %s cannot create roles, so toolgate cannot give passthrough sessions their own role: run ALTER ROLE %s CREATEROLE (see the README's setup SQL), declare a role for every node (passthrough.<target>.role), or set sessions_as_admin: true to run sessions as %s (lock 2 off)",
			user, pgx.Identifier{user}.Sanitize(), user)
	}
	declared := p.cfg.Declared
	if p.cfg.SessionsAsAdmin {
		declared = append([]Login{{User: p.up.User, Password: p.up.Password}}, declared...)
	}
	for _, l := range declared {
		if err := p.checkDeclared(ctx, l); err != nil {
			if errors.Is(err, ErrUnreachable) {
				return nil, err
			}
			return nil, errors.New(safeMessage(err))
		}
	}
	warnings, err := publicWrites(ctx, conn.Conn())
	if err != nil {
		return nil, unreachable(err)
	}
	p.mu.Lock()
	p.checked = true
	p.mu.Unlock()
	return warnings, nil
}

func unreachable(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %s (SQLSTATE %s)", ErrUnreachable.Error(), pe.Message, pe.Code)
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

func safeMessage(err error) string {
	e, _ := broker.AsError(err)
	return e.Message
}

// ready runs Preflight once before the first session when it could not
// run at start.
func (p *Provisioner) ready(ctx context.Context) error {
	p.mu.Lock()
	ok := p.checked
	p.mu.Unlock()
	if ok {
		return nil
	}
	warnings, err := p.Preflight(ctx)
	if err != nil {
		p.log.Error("passthrough role checks failed; sessions are refused", zap.Error(err))
		if errors.Is(err, ErrUnreachable) {
			return broker.Wrap(broker.CodeTargetUnavailable, err, "target "+p.cfg.Target+" is unavailable")
		}
		return broker.Wrap(broker.CodeForbidden, err, "passthrough sessions of target "+p.cfg.Target+" are refused: "+err.Error())
	}
	for _, w := range warnings {
		p.log.Warn(w)
	}
	return nil
}

// checkDeclared logs in as a declared login once (per password) and
// refuses it when it is privileged.
func (p *Provisioner) checkDeclared(ctx context.Context, l Login) error {
	sum := sha256.Sum256([]byte(l.User + "\x00" + l.Password))
	key := string(sum[:])
	p.mu.Lock()
	err, done := p.logins[key]
	p.mu.Unlock()
	if done {
		return err
	}
	cfg := p.up.Copy()
	cfg.User, cfg.Password = l.User, l.Password
	err = p.checkLogin(ctx, cfg, l.User)
	if errors.Is(err, ErrUnreachable) {
		return broker.Wrap(broker.CodeTargetUnavailable, err, "target "+p.cfg.Target+" is unavailable")
	}
	p.mu.Lock()
	p.logins[key] = err
	p.mu.Unlock()
	return err
}

// checkLogin connects with cfg and refuses a privileged login.
func (p *Provisioner) checkLogin(ctx context.Context, cfg *pgconn.Config, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		if loginRefused(err) {
			return broker.Errorf(broker.CodeForbidden, "the passthrough login %s cannot log in to target %s (check its password and pg_hba.conf)", user, p.cfg.Target)
		}
		return unreachable(err)
	}
	defer conn.Close(context.Background())
	why, err := Privileged(ctx, conn)
	if err != nil {
		return unreachable(err)
	}
	if len(why) == 0 {
		return nil
	}
	if p.cfg.AllowPrivileged {
		p.log.Warn("a passthrough login is privileged and allow_privileged_login is set: lock 2 does not hold for its sessions",
			zap.String("login", user), zap.Strings("privileges", why))
		return nil
	}
	return broker.Errorf(broker.CodeForbidden, "%s", PrivilegedFix(user, why))
}

// Privileged lists what makes the connection's login unfit for passthrough
// sessions: "superuser", each of the privileged predefined roles it is a
// member of, directly or through other roles, and "createrole" on
// PostgreSQL 15 and older, where CREATEROLE may grant itself any of them.
func Privileged(ctx context.Context, conn *pgconn.PgConn) ([]string, error) {
	res := conn.ExecParams(ctx, `SELECT 'superuser' FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper
UNION ALL
SELECT 'createrole' FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolcreaterole AND NOT rolsuper
	AND pg_catalog.current_setting('server_version_num')::int < 160000
UNION ALL
SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[]) AND pg_catalog.pg_has_role(current_user, oid, 'MEMBER')`,
		[][]byte{[]byte("{" + strings.Join(privilegedRoles, ",") + "}")}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	var why []string
	for _, r := range res.Rows {
		why = append(why, string(r[0]))
	}
	if len(why) > 1 && why[0] == "superuser" {
		why = why[:1] // a superuser is a member of everything
	}
	return why, nil
}

// PrivilegedFix is the refusal of a privileged passthrough login, naming
// the fix.
func PrivilegedFix(user string, why []string) string {
	fix := make([]string, 0, len(why))
	for _, w := range why {
		switch w {
		case "superuser":
			fix = append(fix, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" NOSUPERUSER")
		case "createrole":
			fix = append(fix, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" NOCREATEROLE")
		default:
			fix = append(fix, "REVOKE "+w+" FROM "+pgx.Identifier{user}.Sanitize()+", or from the role it holds it through")
		}
	}
	return fmt.Sprintf("passthrough sessions would run as %s, which is %s: with it a fooled proxy could run programs or read files on the database host or every table; use a login without it (%s) or set allow_privileged_login: true to accept the risk",
		user, strings.Join(describe(why), " and "), strings.Join(fix, "; "))
}

func describe(why []string) []string {
	out := make([]string, len(why))
	for i, w := range why {
		switch w {
		case "superuser":
			out[i] = "a superuser"
		case "createrole":
			out[i] = "CREATEROLE on PostgreSQL 15 or older (which may grant itself any predefined role)"
		default:
			out[i] = "a member of " + w
		}
	}
	return out
}

// publicWrites lists what PUBLIC (every role, so every provisioned one)
// may do on the target beyond any grant, each with the statement that
// removes it: create in a schema or temporary tables, create large
// objects, read or write a relation or a column, run a SECURITY DEFINER
// function (as its owner), get privileges on relations created later.
func publicWrites(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	return texts(ctx, conn, `SELECT 'PUBLIC may CREATE in schema ' || quote_ident(n.nspname) || ': REVOKE CREATE ON SCHEMA ' || quote_ident(n.nspname) || ' FROM PUBLIC'
FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'
UNION ALL
SELECT 'PUBLIC may create temporary tables: REVOKE TEMPORARY ON DATABASE ' || quote_ident(current_database()) || ' FROM PUBLIC'
WHERE pg_catalog.has_database_privilege('public', current_database(), 'TEMPORARY')
UNION ALL
SELECT 'PUBLIC may create large objects: REVOKE EXECUTE ON FUNCTION ' || f || ' FROM PUBLIC'
FROM unnest(ARRAY['lo_create(oid)', 'lo_creat(integer)', 'lo_from_bytea(oid, bytea)']) f
WHERE pg_catalog.has_function_privilege('public', f, 'EXECUTE')
UNION ALL
SELECT 'PUBLIC may ' || string_agg(DISTINCT a.privilege_type, ', ') || ' ' || c.oid::regclass::text || ' whatever a grant says: REVOKE ALL ON ' || c.oid::regclass::text || ' FROM PUBLIC'
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, LATERAL pg_catalog.aclexplode(c.relacl) a
WHERE a.grantee = 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY c.oid
UNION ALL
SELECT 'PUBLIC may ' || string_agg(DISTINCT a.privilege_type, ', ') || ' column ' || quote_ident(att.attname) || ' of ' || c.oid::regclass::text || ' whatever a grant says: REVOKE ALL (' || quote_ident(att.attname) || ') ON ' || c.oid::regclass::text || ' FROM PUBLIC'
FROM pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
  LATERAL pg_catalog.aclexplode(att.attacl) a
WHERE a.grantee = 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY c.oid, att.attname
UNION ALL
SELECT 'PUBLIC may run SECURITY DEFINER function ' || p.oid::regprocedure::text || ' with the privileges of ' || quote_ident(pg_catalog.pg_get_userbyid(p.proowner)) || ', which a session can reach through an operator or attribute notation toolgate cannot see: REVOKE EXECUTE ON FUNCTION ' || p.oid::regprocedure::text || ' FROM PUBLIC'
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
UNION ALL
SELECT 'PUBLIC gets ' || string_agg(DISTINCT a.privilege_type, ', ') || ' on the ' || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' ELSE 'functions' END || ' ' || quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole)) || ' creates' || coalesce(' in schema ' || quote_ident(n.nspname), '') || ': ALTER DEFAULT PRIVILEGES FOR ROLE ' || quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole)) || coalesce(' IN SCHEMA ' || quote_ident(n.nspname), '') || ' REVOKE ALL ON ' || CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' ELSE 'FUNCTIONS' END || ' FROM PUBLIC'
FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace, LATERAL pg_catalog.aclexplode(d.defaclacl) a
WHERE a.grantee = 0 AND d.defaclobjtype IN ('r', 'S')
GROUP BY d.defaclrole, d.defaclobjtype, n.nspname
UNION ALL
SELECT 'any role may prepare transactions that outlive its session (max_prepared_transactions = ' || current_setting('max_prepared_transactions') || '); toolgate rolls back those of its roles at every sweep: set max_prepared_transactions = 0 unless the target uses two-phase commit'
WHERE current_setting('max_prepared_transactions')::int > 0`)
}
