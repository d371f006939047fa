package pgwire

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/toolgate/toolgate/broker"
)

// UpstreamLogin names the database login a session runs as (lock 2: the
// per-grant role of connectors/pgroles, or an operator-declared one).
// release is called once when the session ends, with the connect error
// when the server refused the login.
type UpstreamLogin interface {
	UpstreamLogin(ctx context.Context, c broker.Caller) (user, password string, release func(error), err error)
}

// login picks the session's upstream login into cfg; the returned release
// must be called once. Without Config.Login the session runs as the DSN's
// login.
func (s *session) login(ctx context.Context, cfg *pgconn.Config) (func(error), error) {
	if s.srv.cfg.Login == nil {
		return func(error) {}, nil
	}
	user, pw, release, err := s.srv.cfg.Login.UpstreamLogin(ctx, s.caller)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, pw
	return release, nil
}

// upstreamError is the safe error a client gets when its session could not
// connect upstream.
func upstreamError(err error, target string) error {
	var be *broker.Error
	if errors.As(err, &be) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53300" {
		return broker.Errorf(broker.CodeTargetUnavailable, "this grant already has as many sessions on target %s as its database role allows (role_conn_limit)", target)
	}
	return broker.Errorf(broker.CodeTargetUnavailable, "target %s is unavailable", target)
}

// loginRefused reports whether the server refused the login itself
// (SQLSTATE class 28): a provisioned role is then provisioned again and
// the login retried once.
func loginRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "28"
}

// classify is the classifier every statement goes through. With lock 1
// switched off (tests only, through export_test.go) every statement is an
// allowed read naming no table, so what holds is lock 2 alone.
func (s *Server) classify(sql string) []broker.Statement {
	if s.lock1Off {
		return []broker.Statement{{Kind: broker.KindSQL, Class: broker.ClassRead, Command: "SELECT", Text: sql}}
	}
	return s.classes.classify(sql)
}
