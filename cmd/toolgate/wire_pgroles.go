package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/connectors/pgroles"
	"github.com/toolgate/toolgate/connectors/pgwire"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy/mask"
)

// roleSweepEvery is how often passthrough roles are swept: the longest a
// revoked grant's role keeps its privileges.
const roleSweepEvery = 2 * time.Second

var (
	_ pgroles.Grants       = (*auth.SQLGrantStore)(nil)
	_ pgwire.UpstreamLogin = (*pgroles.Provisioner)(nil)
)

// passAccess is the current policy's passthrough entry of a caller for
// target, as the role provisioner needs it.
func (a *app) passAccess(target string) pgroles.PolicyFunc {
	return func(c broker.Caller) (pgroles.Access, bool) {
		e, ok := livePolicy{a}.engine()
		if !ok {
			return pgroles.Access{}, false
		}
		pa, ok := e.PassthroughAccess(c, target)
		if !ok {
			return pgroles.Access{}, false
		}
		acc := pgroles.ClassAccess(pa.Statements, pa.Tables)
		if pa.Role != nil {
			acc.Declared = &pgroles.Login{User: pa.Role.User, Password: pa.Role.Password}
		}
		return acc, true
	}
}

// openRoles starts lock 2 for passthrough listener i: the role provisioner
// of its target, checked before the listener opens, and its sweeper. A
// check that fails refuses the start; a target that cannot be reached
// only delays the checks to the first session.
func (a *app) openRoles(ctx context.Context, i int, l config.PostgresListener, grants *auth.SQLGrantStore) (*pgroles.Provisioner, error) {
	cfg := a.cfg
	t := cfg.Targets[l.Target]
	pg := t.Postgres
	declared, provision := declaredRoles(cfg, l.Target)
	pc := pgroles.Config{
		Target: l.Target, DSN: pg.DSN, StatementTimeout: pg.StatementTimeout.D(), ReadOnly: pg.ReadOnly,
		ConnLimit: l.RoleConnLimit, Deny: denyColumns(cfg, t), Provision: provision && !l.SessionsAsAdmin,
		Declared: declared, SessionsAsAdmin: l.SessionsAsAdmin, AllowPrivileged: l.AllowPrivilegedLogin,
		Policy: a.passAccess(l.Target), Grants: grants, Logger: a.log,
	}
	if cfg.Passthrough.RoleKey != "" {
		pc.Key = []byte(cfg.Passthrough.RoleKey)
	} else if cfg.Store.Driver == "postgres" && pc.Provision {
		a.log.Warn("passthrough.role_key is not set: each instance keys the passthrough roles' passwords on its own; set it when several instances serve one target")
	}
	for _, w := range lock2Warnings(l, i) {
		a.log.Warn(w)
	}
	p, err := pgroles.New(pc)
	if err != nil {
		return nil, fmt.Errorf("passthrough.postgres[%d]: %w", i, err)
	}
	warnings, err := p.Preflight(ctx)
	switch {
	case errors.Is(err, pgroles.ErrUnreachable):
		a.log.Warn("passthrough target unreachable at start; its role checks run before the first session", zap.String("target", l.Target), zap.Error(err))
	case err != nil:
		p.Close()
		return nil, fmt.Errorf("passthrough.postgres[%d] (target %s): %w", i, l.Target, err)
	}
	for _, w := range warnings {
		a.log.Warn("passthrough target grants PUBLIC a write no role can be denied", zap.String("target", l.Target), zap.String("fix", w))
	}
	ticker := time.NewTicker(roleSweepEvery)
	a.background(ctx, "passthrough role sweep "+l.Target, func(ctx context.Context) error {
		defer ticker.Stop()
		return p.Run(ctx, ticker.C)
	})
	return p, nil
}

// declaredRoles lists the operator-declared logins of a target's nodes and
// reports whether some node with a passthrough entry for it has none.
func declaredRoles(cfg *config.Config, target string) ([]pgroles.Login, bool) {
	var out []pgroles.Login
	provision := false
	for _, g := range cfg.Graphs {
		for _, n := range g.Nodes {
			pp, ok := n.Passthrough[target]
			switch {
			case !ok:
			case pp.Role == nil:
				provision = true
			default:
				out = append(out, pgroles.Login{User: pp.Role.User, Password: pp.Role.Password})
			}
		}
	}
	return out, provision
}

// denyColumns are the target's "table.column" keys masked with deny.
func denyColumns(cfg *config.Config, t config.Target) []string {
	var out []string
	for _, rules := range []map[string]string{t.Mask, cfg.Masking.Rules} {
		for k, action := range rules {
			if n := strings.Count(k, "."); action == mask.ActionDeny && (n == 1 || n == 2) && !strings.Contains(k, "..") &&
				!strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") {
				out = append(out, k)
			}
		}
	}
	return out
}

// lock2Warnings are the warnings the opt-outs of a listener earn at every
// start and in `toolgate check`.
func lock2Warnings(l config.PostgresListener, i int) []string {
	var out []string
	if l.SessionsAsAdmin {
		out = append(out, fmt.Sprintf("passthrough.postgres[%d].sessions_as_admin: sessions of target %s without a declared role run as its dsn login, not as per-grant roles: the database does not enforce the grants (lock 2 is off)", i, l.Target))
	}
	if l.AllowPrivilegedLogin {
		out = append(out, fmt.Sprintf("passthrough.postgres[%d].allow_privileged_login: sessions of target %s may run as a superuser or a member of the server-file, server-program or all-data roles: a statement toolgate misreads could run programs or read files on the database host", i, l.Target))
	}
	return out
}
