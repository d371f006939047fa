package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/door"
	"github.com/toolgate/toolgate/connectors/httpproxy"
	"github.com/toolgate/toolgate/connectors/pgwire"
)

// openPassthrough starts a Postgres wire listener per passthrough.postgres
// entry and mounts an HTTP proxy per passthrough.http entry on mux.
func (a *app) openPassthrough(bg context.Context, mux *http.ServeMux, metaURL string) error {
	cfg := a.cfg
	grants, err := auth.NewSQLGrantStore(a.store)
	if err != nil {
		return fmt.Errorf("grant store: %w", err)
	}
	for i, l := range cfg.Passthrough.Postgres {
		t, ok := cfg.Targets[l.Target]
		if !ok || t.Postgres == nil {
			return fmt.Errorf("passthrough.postgres[%d]: target %q is not a postgres target", i, l.Target)
		}
		roles, err := a.openRoles(bg, i, l, grants)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, roles.Close)
		pc := pgwire.Config{Listen: l.Listen, Target: l.Target, DSN: t.Postgres.DSN, Login: roles,
			StatementTimeout: t.Postgres.StatementTimeout.D(), ReadOnly: t.Postgres.ReadOnly, MaxConnsPerGrant: l.MaxConnsPerGrant,
			MaxPendingLogins: l.MaxPendingLogins,
			MaxMessageBytes:  l.MaxMessageBytes, MaxRowBytes: l.MaxRowBytes, MaxCellBytes: l.MaxCellBytes,
			PreviewTimeout: t.Postgres.PreviewTimeout.D(), PreviewLockTimeout: t.Postgres.PreviewLockTimeout.D(), PreviewRows: cfg.Approvals.Preview.MaxRows}
		if l.TLSCert != "" || l.TLSKey != "" {
			cert, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey)
			if err != nil {
				return fmt.Errorf("passthrough.postgres[%d]: tls_cert/tls_key: %w", i, err)
			}
			pc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		srv, err := pgwire.New(pc, a.broker, a.log)
		if err != nil {
			return fmt.Errorf("passthrough.postgres[%d]: %w", i, err)
		}
		if err := srv.Start(); err != nil {
			return fmt.Errorf("passthrough.postgres[%d]: %w", i, err)
		}
		a.off.svc.AddCloser(srv)
		a.closers = append(a.closers, func() { _ = srv.Close() })
		a.log.Info("postgres passthrough listening", zap.String("listen", srv.Addr().String()), zap.String("target", l.Target))
	}
	for i, h := range cfg.Passthrough.HTTP {
		t, ok := cfg.Targets[h.Target]
		if !ok || t.HTTP == nil {
			return fmt.Errorf("passthrough.http[%d]: target %q is not an http target", i, h.Target)
		}
		p, err := httpproxy.New(httpproxy.Config{
			PathPrefix: h.PathPrefix, Target: h.Target, BaseURL: t.HTTP.BaseURL, Headers: t.HTTP.Headers,
			Timeout: t.HTTP.Timeout.D(), MaxBodyBytes: cfg.Limits.MaxBodyBytes, MaxResponseBytes: t.HTTP.MaxResponseBytes,
			PassContentTypes: h.PassContentTypes, Tracer: a.tracer,
			// An internal failure of the proxy (a response that cannot be
			// masked) is logged once, by the broker, before it is written.
			WriteError: func(w http.ResponseWriter, _ *http.Request, err error) {
				door.WriteError(w, a.broker.Report(err), metaURL)
			},
		}, a.broker, a.log)
		if err != nil {
			return fmt.Errorf("passthrough.http[%d]: %w", i, err)
		}
		mux.Handle(h.PathPrefix+"/", door.Recover(a.broker, p))
	}
	return nil
}
