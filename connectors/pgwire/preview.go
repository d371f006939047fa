package pgwire

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
)

// Effect previews of held writes. The broker asks for one (through
// broker.StatementCall.Preview) only when a write statement is held for a
// new approval: the proxy then runs the statement on a connection of its
// own, logged in as the session's database role (lock 2), inside a
// transaction that is always rolled back (postgres.PreviewConn), and hands
// back the rows unmasked; the broker masks them. The target's admin login
// never runs a preview: a session that runs as it (sessions_as_admin) gets
// none.

// previewHook is the Preview of a StatementCall for st: nil for anything
// but a classified write.
func (s *session) previewHook(st broker.Statement) func(context.Context) (broker.Preview, error) {
	if st.Kind != broker.KindSQL || st.Class != broker.ClassWrite || st.Unclassified != "" {
		return nil
	}
	caller, params, text := s.caller, s.params, st.Text
	return func(ctx context.Context) (broker.Preview, error) {
		return s.srv.preview(ctx, caller, params, text)
	}
}

// preview runs one preview of text as caller's database role.
func (srv *Server) preview(ctx context.Context, caller broker.Caller, params map[string]string, text string) (broker.Preview, error) {
	target := srv.cfg.Target
	if srv.cfg.Login == nil {
		return broker.Preview{}, broker.NoPreview(broker.CodePreviewUnavailable, "sessions on target %s run as its admin login, which never runs a preview", target)
	}
	user, pw, release, err := srv.cfg.Login.UpstreamLogin(ctx, caller)
	if err != nil {
		return broker.Preview{}, previewLoginError(err, target)
	}
	if user == srv.up.User {
		release(nil)
		return broker.Preview{}, broker.NoPreview(broker.CodePreviewUnavailable, "this node's sessions on target %s run as its admin login (sessions_as_admin), which never runs a preview", target)
	}
	cc, err := pgx.ParseConfig(srv.cfg.DSN)
	if err != nil {
		release(nil)
		return broker.Preview{}, broker.NoPreview(broker.CodeTargetUnavailable, "target %s has no usable dsn", target)
	}
	cc.Config = *srv.up.Copy()
	cc.User, cc.Password = user, pw
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	for k, v := range upstreamParams(params, srv.cfg) {
		cc.RuntimeParams[k] = v
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := pgx.ConnectConfig(dctx, cc)
	cancel()
	if err != nil {
		release(err)
		return broker.Preview{}, broker.NoPreview(broker.CodeTargetUnavailable, "the session's database role could not connect to target %s for a preview", target)
	}
	defer func() {
		_ = conn.Close(context.WithoutCancel(ctx))
		release(nil)
	}()
	return postgres.PreviewConn(ctx, conn, text, nil, srv.previewOptions())
}

// previewOptions bound a preview as the target's tools' previews are.
func (srv *Server) previewOptions() postgres.PreviewOptions {
	timeout := srv.cfg.PreviewTimeout
	if timeout <= 0 {
		timeout = postgres.DefaultPreviewTimeout
	}
	if srv.cfg.StatementTimeout > 0 {
		timeout = min(timeout, srv.cfg.StatementTimeout)
	}
	return postgres.PreviewOptions{Target: srv.cfg.Target, Timeout: timeout, LockTimeout: srv.cfg.PreviewLockTimeout,
		Rows: srv.cfg.PreviewRows, ReadOnly: srv.cfg.ReadOnly, Log: srv.log}
}

// previewLoginError is why the session's role could not be had for a
// preview, safe to show.
func previewLoginError(err error, target string) error {
	var be *broker.Error
	if errors.As(err, &be) {
		return broker.NoPreview(be.Code, "the session's database role on target %s is not available: %s", target, be.Message)
	}
	return broker.NoPreview(broker.CodeTargetUnavailable, "the session's database role on target %s is not available", target)
}
