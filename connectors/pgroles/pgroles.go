package pgroles

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Access is what a caller's passthrough entry allows on the target, which
// its role must grant and nothing more.
type Access struct {
	Read, Write bool
	// Tables are table globs: "customers" (schema public), "sales.*".
	// Nil means every table of every non-system schema.
	Tables []string
	// Declared is an operator-managed login; toolgate then provisions
	// nothing for the caller.
	Declared *Login
}

// ClassAccess is the access of a passthrough entry's statement classes
// ("read", "write"; "ddl" is never provisioned) and table globs.
func ClassAccess(statements, tables []string) Access {
	acc := Access{Tables: tables}
	for _, s := range statements {
		acc.Read = acc.Read || s == broker.ClassRead
		acc.Write = acc.Write || s == broker.ClassWrite
	}
	return acc
}

// Login is a database login. Password is a secret.
type Login struct {
	User, Password string
}

// Policy tells the provisioner what a caller may do on the target.
type Policy interface {
	// Access returns the caller's access; false when its node has no
	// passthrough entry for the target.
	Access(c broker.Caller) (Access, bool)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(c broker.Caller) (Access, bool)

// Access calls f.
func (f PolicyFunc) Access(c broker.Caller) (Access, bool) { return f(c) }

// Grants tells the sweeper whether a grant still stands.
type Grants interface {
	// GrantLive reports whether the grant exists and whether it is live
	// (neither revoked nor expired) at now.
	GrantLive(ctx context.Context, id string, now time.Time) (found, live bool, err error)
}

// Config configures the provisioner of one Postgres target.
type Config struct {
	// Target is the target's name.
	Target string
	// DSN is the target's admin login (CREATEROLE or superuser). Secret.
	DSN string
	// Key derives role passwords; every instance serving the target must
	// share it. Nil: a random key for this process (roles are then
	// re-keyed by whichever instance provisions them last).
	Key []byte
	// StatementTimeout is set on every role (0: none).
	StatementTimeout time.Duration
	// ReadOnly withholds write privileges whatever the grant says.
	ReadOnly bool
	// ConnLimit is each role's CONNECTION LIMIT; 0 means 10.
	ConnLimit int
	// Deny are the target's columns masked with action deny, as mask
	// keys: "table.column" (schema public) or "schema.table.column".
	Deny []string
	// Provision says the admin login must be able to create roles (some
	// node has no declared role); Preflight refuses otherwise.
	Provision bool
	// Declared are the operator-declared logins Preflight checks.
	Declared []Login
	// SessionsAsAdmin runs the sessions of nodes without a declared role
	// as the DSN's login instead of a provisioned role (lock 2 off).
	SessionsAsAdmin bool
	// AllowPrivileged lets a session login (declared, or the DSN's with
	// SessionsAsAdmin) be a superuser or a member of a server-file,
	// server-program or all-data role: a warning instead of a refusal.
	AllowPrivileged bool
	Policy          Policy
	Grants          Grants
	// NodeIdle is how long an unused node-identity role (API-key
	// sessions) is kept; 0 means 10 minutes.
	NodeIdle time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *zap.Logger
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	switch {
	case c.Target == "":
		return errors.New("pgroles: target is required")
	case c.DSN == "":
		return fmt.Errorf("pgroles: target %s has no dsn", c.Target)
	case c.Policy == nil:
		return errors.New("pgroles: a policy is required")
	case c.Grants == nil:
		return errors.New("pgroles: a grant source is required")
	case c.ConnLimit < 0:
		return errors.New("pgroles: the connection limit must not be negative")
	case c.Key != nil && len(c.Key) < 16:
		return errors.New("pgroles: the role key must be at least 16 bytes")
	}
	if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		return fmt.Errorf("pgroles: target %s: invalid dsn", c.Target)
	}
	for _, d := range c.Deny {
		if _, _, _, ok := splitColumn(d); !ok {
			return fmt.Errorf("pgroles: deny column %q is not table.column or schema.table.column", d)
		}
	}
	return nil
}

// Provisioner keeps one database role per grant node (or node identity)
// with exactly the grant's privileges, and drops it when the grant ends.
type Provisioner struct {
	cfg  Config
	log  *zap.Logger
	now  func() time.Time
	key  []byte
	pool *pgxpool.Pool
	up   *pgconn.Config

	mu      sync.Mutex
	db      string // current_database() of the admin login, once known
	checked bool   // Preflight passed
	roles   map[string]*roleState
	logins  map[string]error // declared login (user + password hash) -> check result
}

// roleState is this instance's view of one provisioned role.
type roleState struct {
	mu    sync.Mutex
	id    identity
	spec  string    // fingerprint of the spec last provisioned; "" forces ensure
	until time.Time // the grant's expiry, zero for a node identity
	refs  int
	used  time.Time
}

// New returns a provisioner for a valid config. It connects lazily.
func New(cfg Config) (*Provisioner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ConnLimit == 0 {
		cfg.ConnLimit = 10
	}
	if cfg.NodeIdle <= 0 {
		cfg.NodeIdle = 10 * time.Minute
	}
	p := &Provisioner{cfg: cfg, log: cfg.Logger, now: cfg.Now, key: cfg.Key, roles: map[string]*roleState{}, logins: map[string]error{}}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	p.log = p.log.With(zap.String("target", cfg.Target))
	if p.now == nil {
		p.now = time.Now
	}
	if p.key == nil {
		p.key = make([]byte, 32)
		if _, err := rand.Read(p.key); err != nil {
			return nil, err
		}
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgroles: target %s: invalid dsn", cfg.Target)
	}
	pc.MaxConns = 2
	pc.MaxConnIdleTime = time.Minute
	if p.pool, err = pgxpool.NewWithConfig(context.Background(), pc); err != nil {
		return nil, fmt.Errorf("pgroles: target %s: %w", cfg.Target, err)
	}
	p.up = pc.ConnConfig.Config.Copy()
	return p, nil
}

// Close releases the admin connections.
func (p *Provisioner) Close() { p.pool.Close() }

// UpstreamLogin returns the login a passthrough session of c runs as:
// the declared login of its node, or the role toolgate provisions for
// its grant node (or node identity), created or brought up to date first.
// release must be called once when the session ends, with the connect
// error when the server refused the login (the role is then provisioned
// again at the next call).
func (p *Provisioner) UpstreamLogin(ctx context.Context, c broker.Caller) (string, string, func(error), error) {
	acc, ok := p.cfg.Policy.Access(c)
	if !ok {
		return "", "", nil, broker.Errorf(broker.CodeForbidden, "node %q has no passthrough entry for target %s", c.Node, p.cfg.Target)
	}
	if err := p.ready(ctx); err != nil {
		return "", "", nil, err
	}
	if acc.Declared == nil && p.cfg.SessionsAsAdmin {
		acc.Declared = &Login{User: p.up.User, Password: p.up.Password}
	}
	if acc.Declared != nil {
		if err := p.checkDeclared(ctx, *acc.Declared); err != nil {
			return "", "", nil, err
		}
		return acc.Declared.User, acc.Declared.Password, func(error) {}, nil
	}
	id := identity{Target: p.cfg.Target, DB: p.database(), Graph: c.Graph, Node: c.Node}
	var until time.Time
	if c.Binding != nil {
		id.Grant, until = c.Binding.GrantID, c.Binding.ExpiresAt
	}
	sp := p.spec(acc, until)
	st := p.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.spec != sp.fingerprint() {
		if err := p.ensure(ctx, id, sp); err != nil {
			p.log.Error("passthrough role could not be provisioned", zap.String("role", id.roleName()), zap.Error(err))
			return "", "", nil, provisionError(err)
		}
		st.spec, st.until = sp.fingerprint(), until
	}
	st.refs++
	st.used = p.now()
	name := id.roleName()
	var once sync.Once
	release := func(err error) {
		once.Do(func() {
			st.mu.Lock()
			defer st.mu.Unlock()
			st.refs--
			st.used = p.now()
			if loginRefused(err) {
				st.spec = ""
			}
		})
	}
	return name, password(p.key, name), release, nil
}

// provisionError is the safe error a session gets when its role could not
// be provisioned.
func provisionError(err error) error {
	var be *broker.Error
	if errors.As(err, &be) {
		return err
	}
	return broker.Wrap(broker.CodeTargetUnavailable, err, "toolgate could not provision this session's database role; see the server log")
}

// loginRefused reports whether err is the server refusing a login
// (SQLSTATE class 28: bad password, no such role, not permitted to log in).
func loginRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28")
}

// state returns this instance's state of a role, creating it.
func (p *Provisioner) state(id identity) *roleState {
	name := id.roleName()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.roles[name]
	if st == nil {
		st = &roleState{id: id}
		p.roles[name] = st
	}
	return st
}

func (p *Provisioner) database() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.db
}

// spec is everything a role is provisioned with.
type spec struct {
	access    Access
	until     time.Time // zero: no expiry
	readOnly  bool
	timeout   time.Duration
	connLimit int
	deny      []string
}

func (p *Provisioner) spec(acc Access, until time.Time) spec {
	acc.Write = acc.Write && !p.cfg.ReadOnly
	acc.Declared = nil
	return spec{access: acc, until: until.UTC().Truncate(time.Second), readOnly: !acc.Write,
		timeout: p.cfg.StatementTimeout, connLimit: p.cfg.ConnLimit, deny: p.cfg.Deny}
}

// fingerprint changes whenever the spec does.
func (s spec) fingerprint() string {
	tables := slices.Clone(s.access.Tables)
	slices.Sort(tables)
	h := sha256.Sum256(fmt.Appendf(nil, "%v|%v|%q|%v|%s|%d|%d|%q", s.access.Read, s.access.Write, tables, s.access.Tables == nil,
		s.until.Format(time.RFC3339), s.timeout.Milliseconds(), s.connLimit, s.deny))
	return hex.EncodeToString(h[:])
}
