package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/mark3labs/mcp-go/server"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/door"
	bhttp "github.com/toolgate/toolgate/broker/httpapi"
	bmcp "github.com/toolgate/toolgate/broker/mcp"
	"github.com/toolgate/toolgate/broker/principals"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/metrics"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/counters"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/recordings"
	"github.com/toolgate/toolgate/tools"
)

// static is what a config compiles to, with what is known of the upstream
// MCP servers' tools: the tool catalog (declared tools and the upstream
// tools served now), the tools withheld, the policy engine and the masker.
// `check`, `tools list` and `policy explain` use it; `serve` builds on it.
type static struct {
	catalog  *tools.Catalog
	withheld []broker.Withheld
	policy   *policy.Engine
	masker   *mask.Masker
	// warnings are what the upstreams' tools got wrong, which does not
	// stop the config from loading (the tool concerned is not served).
	warnings []string
}

// problemList gathers load problems from every part of the config as
// "file:line: path: reason" lines.
type problemList []string

func (p problemList) Error() string { return strings.Join(p, "\n") }

// compile builds the static parts and reports every problem it finds.
func compile(cfg *config.Config, counters policy.Counters, log *zap.Logger, up upstreamView) (*static, error) {
	st, probs := compileAll(cfg, counters, log, up)
	if len(probs) > 0 {
		return nil, probs
	}
	return st, nil
}

// compileAll is compile that also returns what did compile when there are
// problems: the catalog (with stand-ins for broken tool files) always, the
// policy and masker when they compiled. Only `check` looks at it then.
func compileAll(cfg *config.Config, counters policy.Counters, log *zap.Logger, up upstreamView) (*static, problemList) {
	var probs problemList
	cat, err := tools.Load(cfg.ToolsDir, cfg.TargetKinds())
	var le *tools.LoadError
	switch {
	case cat == nil:
		probs = append(probs, cfg.Problem("tools_dir", toolsDirReason(err)).String())
		cat, _ = tools.NewCatalog() // the policy's own problems are still reported
	case errors.As(err, &le):
		// The catalog holds what loaded plus stand-ins for broken files, so
		// the policy below reports its own problems only.
		for _, p := range le.Problems {
			probs = append(probs, p.String())
		}
	}
	m, err := mask.New(mask.FromConfig(*cfg), log)
	if err != nil {
		probs = append(probs, cfg.Problem("masking", err.Error()).String())
	}
	j := up.join(cfg, cat, m)
	probs = append(probs, j.problems...)
	full, err := tools.NewCatalog(append(cat.Tools(), j.tools...)...)
	if err != nil {
		// join keeps upstream tools off declared names; fail closed anyway.
		probs = append(probs, cfg.Problem("targets", err.Error()).String())
		full = cat
	}
	pol, err := policy.New(policy.Config{Graphs: cfg.Graphs, Catalog: full, Upstream: j.names, Counters: counters, Logger: log})
	var pe *policy.LoadError
	switch {
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			probs = append(probs, cfg.Problem(p.Path, p.Reason).String())
		}
	case err != nil:
		probs = append(probs, cfg.Problem("graphs", err.Error()).String())
	}
	if m != nil {
		for _, t := range cat.Tools() {
			if err := m.CheckTool(t); err != nil {
				probs = append(probs, toolProblem(t, "/mask", err.Error()))
			}
		}
	}
	return &static{catalog: full, withheld: j.withheld, policy: pol, masker: m, warnings: j.warnings}, probs
}

// live is what the broker serves from st: its catalog, policy, masker and
// withheld tools, and the passthrough routes of the running configuration
// cfg (routes need a restart to change, so a reload keeps those of cfg).
func (st *static) live(cfg *config.Config) broker.Live {
	l := broker.Live{Catalog: st.catalog, Policy: st.policy, Masker: st.masker, Withheld: st.withheld}
	for _, p := range cfg.Passthrough.Postgres {
		l.Routes = append(l.Routes, broker.Route{Kind: broker.KindSQL, Target: p.Target})
	}
	for _, h := range cfg.Passthrough.HTTP {
		l.Routes = append(l.Routes, broker.Route{Kind: broker.KindHTTP, Target: h.Target})
	}
	return l
}

// toolsDirReason is why the tools folder could not be read.
func toolsDirReason(err error) string {
	var le *tools.LoadError
	if errors.As(err, &le) && len(le.Problems) > 0 {
		p := le.Problems[0]
		return p.File + ": " + p.Reason
	}
	return fmt.Sprint(err)
}

// toolProblem is a problem at a JSON pointer of a tool's declaration file.
func toolProblem(t *broker.Tool, pointer, reason string) string {
	line := 0
	if sp, ok := t.Spec.(*tools.Spec); ok {
		line = sp.Line(pointer)
	}
	return tools.Problem{File: t.Source, Line: line, Path: pointer, Reason: reason}.String()
}

// app is a running toolgate: store, connectors, broker and HTTP handler.
type app struct {
	cfg      *config.Config
	log      *zap.Logger
	store    *db.DB
	recorder *recordings.Store
	// reader is the audit trail for auditors (auth.auditors) at the doors.
	reader   *recordings.Reader
	broker   *broker.Broker
	mcp      *bmcp.Server
	grants   *auth.Grants
	metrics  *metrics.Recorder
	approver *approvals.Service
	// off is keys, owners and offboarding.
	off *offboarding
	// counters hold budget counts; they outlive reloads.
	counters policy.Counters
	// targets are the connectors, by target name.
	targets map[string]broker.Executor
	// up follows the upstream MCP servers.
	up upstreamLive
	// now is the clock every part of the app is given.
	now func() time.Time
	// tracer traces calls and passthrough requests; nil when tracing is
	// off (telemetry.go).
	tracer trace.Tracer
	// env resolves ${ENV} when the config is reloaded.
	env config.Env
	// reloadMu serialises reloads.
	reloadMu sync.Mutex
	handler  http.Handler
	closers  []func()
	// stop ends the background loops (sweeper, notifier, retention).
	stop  context.CancelFunc
	loops sync.WaitGroup
}

// background runs f until the app closes, logging its error.
func (a *app) background(ctx context.Context, name string, f func(ctx context.Context) error) {
	a.loops.Add(1)
	go func() {
		defer a.loops.Done()
		if err := f(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("background loop stopped", zap.String("loop", name), zap.Error(err))
		}
	}()
}

// Close releases everything in reverse order.
func (a *app) Close() {
	if a.stop != nil {
		a.stop()
		a.loops.Wait()
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// openApp opens the store, connects the targets and wires the broker, on
// the system clock.
func openApp(ctx context.Context, cfg *config.Config, log *zap.Logger) (*app, error) {
	return openAppClock(ctx, cfg, log, time.Now)
}

// openAppClock is openApp with the clock every part of the app reads.
func openAppClock(ctx context.Context, cfg *config.Config, log *zap.Logger, now func() time.Time) (*app, error) {
	a := &app{cfg: cfg, log: log, now: now}
	a.up = upstreamLive{loaded: cfg, queue: eventQueue{wake: make(chan struct{}, 1)}}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	tel, err := openTelemetry(ctx, cfg.Telemetry, os.LookupEnv, log)
	if err != nil {
		return nil, err
	}
	a.tracer = tel.tracer
	a.closers = append(a.closers, func() { tel.flush(log) })
	if err := a.openStores(ctx, bg); err != nil {
		return nil, err
	}
	st, err := compile(cfg, a.counters, log, upstreamView{})
	if err != nil {
		return nil, err
	}
	env := targetEnv{log: log, onEvent: a.upstreamEvent, redact: a.redactUpstream}
	if a.targets, err = openTargets(ctx, cfg, env, &a.closers); err != nil {
		return nil, err
	}
	// Everything that records goes through the metrics recorder, which
	// counts what the store accepted for /metrics.
	a.metrics = metrics.NewRecorder(a.recorder)
	a.metrics.SetLabels(metricLabels(cfg, st))
	ap, err := openAuth(cfg, a.store, livePolicy{a}, a.metrics, a.now, log)
	if err != nil {
		return nil, err
	}
	a.grants = ap.grants
	a.background(bg, "key-usage", ap.usage.Run)
	svc, slackN, err := openApprovals(bg, a, a.store, st.masker, a.metrics)
	if err != nil {
		return nil, err
	}
	a.approver = svc
	if slackN != nil {
		a.up.notice = slackN
	}
	if err := a.openOffboarding(bg, ap.keyStore, a.metrics); err != nil {
		return nil, err
	}
	if slackN != nil && cfg.Approvals.Slack.Mode == "socket" {
		a.background(bg, "slack-socket-mode", func(ctx context.Context) error { return slackN.RunSocketMode(ctx, slackDecider{svc, a.off.svc}) })
	}
	a.broker, err = broker.New(broker.Config{
		Live: st.live(cfg), Targets: a.targets, Auth: principals.NewGate(ap.authn, a.off.svc), Recorder: a.metrics,
		Approvals: svc, Logger: log, Now: a.now, RecordResults: cfg.Recordings.Results == "masked", Tracer: a.tracer,
		PreviewRows: cfg.Approvals.Preview.MaxRows, PreviewBytes: cfg.Approvals.Preview.MaxBytes,
	})
	if err != nil {
		return nil, err
	}
	if a.handler, err = a.routes(bg, slackN); err != nil {
		return nil, err
	}
	a.startUpstreams(ctx, bg)
	ok = true
	return a, nil
}

// openStores opens the store and what lives in it beside grants and
// approvals: the recordings (with their retention loop) and the budget
// counters (with their purge loop).
func (a *app) openStores(ctx, bg context.Context) error {
	cfg, log := a.cfg, a.log
	store, err := db.Open(ctx, db.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN}, log)
	if err != nil {
		return fmt.Errorf("open store (%s): %w", cfg.Store.Driver, err)
	}
	a.store = store
	a.closers = append(a.closers, func() { _ = store.Close() })
	rc := recordingsConfig(cfg)
	rc.Now = a.now
	rec, err := recordings.NewStore(store, rc, log)
	if err != nil {
		return fmt.Errorf("open recordings: %w", err)
	}
	a.recorder = rec
	if a.reader, err = recordings.NewReader(recordings.ReaderConfig{Store: rec, Auditors: cfg.Auth.Auditors, Now: a.now}); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { _ = rec.Close() })
	if keep := cfg.Recordings.Retention.D(); keep > 0 {
		a.background(bg, "retention", func(ctx context.Context) error { return rec.RunRetention(ctx, keep, time.Hour) })
	}
	// Budgets live in the store, so they hold across restarts and are
	// shared by every instance on it.
	budgets, err := counters.New(store, a.now)
	if err != nil {
		return err
	}
	a.background(bg, "budget counters purge", func(ctx context.Context) error {
		return purgeCounters(ctx, budgets, cfg.Recordings.Retention.D(), a.now, log)
	})
	a.counters = budgets
	return nil
}

// routes is the HTTP handler: the MCP door (serving only pages of the
// allowed origins), the HTTP API, the Slack interactions endpoint, the
// protected-resource metadata, the probes, /metrics and the HTTP
// passthrough mounts (opening the Postgres passthrough listeners too),
// behind the cap on request headers.
func (a *app) routes(bg context.Context, slackN *slack.Notifier) (http.Handler, error) {
	cfg, b := a.cfg, a.broker
	metaURL := strings.TrimRight(cfg.PublicURL, "/") + "/.well-known/oauth-protected-resource"
	srv, err := bmcp.New(b, bmcp.Options{Name: "toolgate", Version: version, ResourceMetadataURL: metaURL, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("mcp: %w", err)
	}
	a.mcp = srv
	a.off.svc.AddCloser(srv)
	origins, err := door.NewOrigins(cfg.PublicURL, cfg.AllowedOrigins...)
	if err != nil {
		return nil, fmt.Errorf("allowed_origins: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", origins.Check(srv.Handler()))
	mux.Handle("/mcp/", origins.Check(srv.Handler()))
	apiOpts := bhttp.Options{Logger: a.log, MaxBodyBytes: cfg.Limits.MaxBodyBytes, ResourceMetadataURL: metaURL}
	mux.Handle("/v1/", bhttp.New(b, apiOpts))
	audit := bhttp.NewAudit(b, auditStore{a.reader}, apiOpts)
	mux.Handle("/v1/audit/", audit)
	mux.Handle("/v1/runs/", audit)
	mux.Handle("/v1/approvals", bhttp.NewApprovals(b, a.approver, apiOpts))
	mux.Handle("/v1/approvals/", bhttp.NewApprovals(b, a.approver, apiOpts))
	mux.Handle("/v1/grants", bhttp.NewGrants(b, grantService{a.grants, a.now}, apiOpts))
	mux.Handle("/v1/grants/", bhttp.NewGrants(b, grantService{a.grants, a.now}, apiOpts))
	if err := a.mountOffboarding(mux, b, apiOpts); err != nil {
		return nil, err
	}
	con, err := openConsole(cfg, b, a.approver, a.reader, a.log)
	if err != nil {
		return nil, err
	}
	mux.Handle("/console/", con)
	if slackN != nil && cfg.Approvals.Slack.Mode == "http" {
		mux.Handle("/slack/interactions", slackN.Handler(slackDecider{a.approver, a.off.svc}))
	}
	prm := server.ProtectedResourceMetadataConfig{Resource: strings.TrimRight(cfg.PublicURL, "/") + "/mcp", BearerMethodsSupported: []string{"header"}}
	if cfg.Auth.OIDC != nil {
		prm.AuthorizationServers = []string{cfg.Auth.OIDC.Issuer}
	}
	mux.Handle("/.well-known/oauth-protected-resource", server.NewProtectedResourceMetadataHandler(prm))
	mux.Handle("/.well-known/oauth-protected-resource/", server.NewProtectedResourceMetadataHandler(prm))
	mux.Handle("/metrics", a.metrics.Handler(cfg.Metrics.Token))
	mux.Handle("/healthz", bhttp.Health())
	mux.Handle("/readyz", bhttp.Ready(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return a.store.SQL().PingContext(ctx)
	}))
	if err := a.openPassthrough(bg, mux, metaURL); err != nil {
		return nil, err
	}
	return door.CapHeaders(maxHeaderBytes(cfg), mux), nil
}

// maxHeaderBytes is the cap on a request's header fields
// (limits.max_header_bytes, default 64 KiB).
func maxHeaderBytes(cfg *config.Config) int {
	if cfg.Limits.MaxHeaderBytes > 0 {
		return cfg.Limits.MaxHeaderBytes
	}
	return config.DefaultMaxHeaderBytes
}

// metricLabels are the names a /metrics tool label may take: the catalog's
// tools and the passthrough pseudo-tools of the configured targets.
func metricLabels(cfg *config.Config, st *static) metrics.Labels {
	l := metrics.Labels{}
	for _, t := range st.catalog.Tools() {
		l.Tools = append(l.Tools, t.Name)
	}
	for name := range cfg.Targets {
		l.Targets = append(l.Targets, name)
	}
	return l
}

// purgeCounters forgets budget counters whose window has passed every hour,
// and run counters untouched for longer than keep when keep > 0 (the
// recordings retention), until ctx ends.
func purgeCounters(ctx context.Context, c *counters.Store, keep time.Duration, now func() time.Time, log *zap.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		var runsBefore time.Time
		if keep > 0 {
			runsBefore = now().Add(-keep)
		}
		if n, err := c.Purge(ctx, runsBefore); err != nil {
			log.Warn("budget counters purge failed", zap.Error(err))
		} else if n > 0 {
			log.Info("purged budget counters", zap.Int64("counters", n))
		}
	}
}
