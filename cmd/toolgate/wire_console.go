package main

import (
	"context"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/console"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/recordings"
)

// The approvals service and the recordings Reader are what the console
// reads and decides through: one code path with the HTTP API, the CLI and
// Slack.
var (
	_ console.Approvals  = (*approvals.Service)(nil)
	_ console.AuditTrail = consoleAudit{}
	_ console.Identifier = (*broker.Broker)(nil)
)

// openConsole builds the web console served under /console/.
func openConsole(cfg *config.Config, b *broker.Broker, svc *approvals.Service, reader *recordings.Reader, log *zap.Logger) (*console.Console, error) {
	public := cfg.PublicURL
	if public == "" {
		public = "http://" + cfg.Listen // serve sets public_url from the bound address
	}
	ccfg := console.Config{
		Identifier: b, Reporter: b, Approvals: svc, Audit: consoleAudit{reader}, PublicURL: public,
		SessionTTL: cfg.Console.SessionTTL.D(), IdleTimeout: cfg.Console.IdleTimeout.D(), Logger: log.Named("console"),
	}
	if o := cfg.Console.OIDC; o != nil && cfg.Auth.OIDC != nil {
		ccfg.OIDC = &console.OIDCConfig{Issuer: cfg.Auth.OIDC.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			Scopes: o.Scopes, Algorithms: cfg.Auth.OIDC.Algorithms}
	}
	c, err := console.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return c, nil
}

// consoleAudit is the recordings Reader as the console reads it.
type consoleAudit struct{ r *recordings.Reader }

// Auditor implements console.AuditTrail.
func (a consoleAudit) Auditor(p broker.Principal) error { return a.r.Auditor(p) }

// Runs implements console.AuditTrail.
func (a consoleAudit) Runs(ctx context.Context, viewer broker.Principal, f console.RunFilter) ([]console.Run, error) {
	list, err := a.r.Runs(ctx, viewer, recordings.RunFilter{Graph: f.Graph, Since: f.Since, Limit: f.Limit})
	if err != nil {
		return nil, readError(err)
	}
	out := make([]console.Run, len(list))
	for i, r := range list {
		out[i] = console.Run(r)
	}
	return out, nil
}

// Trace implements console.AuditTrail.
func (a consoleAudit) Trace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error) {
	evs, err := a.r.Trace(ctx, viewer, run)
	return evs, readError(err)
}

// Export implements console.AuditTrail: the run's records, as `audit
// export --run` writes them.
func (a consoleAudit) Export(ctx context.Context, viewer broker.Principal, run, format string, w io.Writer) (int, error) {
	n, err := a.r.Export(ctx, viewer, recordings.Filter{Run: run}, format, w)
	return n, readError(err)
}

// VerifyRun implements console.AuditTrail; each problem reads as `audit
// verify` prints it.
func (a consoleAudit) VerifyRun(ctx context.Context, viewer broker.Principal, run string) (console.ChainCheck, error) {
	rc, err := a.r.VerifyRun(ctx, viewer, run)
	if err != nil {
		return console.ChainCheck{}, readError(err)
	}
	out := console.ChainCheck{Checked: rc.Checked, Chains: rc.Chains}
	for _, p := range rc.Problems {
		out.Problems = append(out.Problems, problemLine(p))
	}
	return out, nil
}
