package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

// livePolicy answers the grant service's questions about graphs from the
// policy engine of the broker's live snapshot, so grant minting and calls
// read one configuration, swapped in one step by reload.
type livePolicy struct{ a *app }

var _ auth.GraphInfo = livePolicy{}

// engine is the live policy engine; false before the broker exists.
func (l livePolicy) engine() (*policy.Engine, bool) {
	if l.a.broker == nil {
		return nil, false
	}
	e, ok := l.a.broker.Snapshot().Policy().(*policy.Engine)
	return e, ok
}

// MayActAs asks the live policy.
func (l livePolicy) MayActAs(p broker.Principal, graph string) bool {
	e, ok := l.engine()
	return ok && e.MayActAs(p, graph)
}

// HasNode asks the live policy.
func (l livePolicy) HasNode(graph, node string) bool {
	e, ok := l.engine()
	return ok && e.HasNode(graph, node)
}

// Owners asks the live policy who owns graph; nobody before a policy is
// loaded.
func (l livePolicy) Owners(graph string) []string {
	e, ok := l.engine()
	if !ok {
		return nil
	}
	return e.Owners(graph)
}

// ValidateScope asks the live policy.
func (l livePolicy) ValidateScope(graph string, scope map[string]any) error {
	e, ok := l.engine()
	if !ok {
		return broker.Errorf(broker.CodeUnavailable, "no policy is loaded yet; retry later")
	}
	return e.ValidateScope(graph, scope)
}

// reload re-reads the config file, tools and tools lock and swaps the
// broker's live snapshot (catalog, policy, masking) in one step: a call in flight
// finishes on the configuration it started with, the next one, the MCP
// tool listing and grant minting see the new one. A config with any problem
// is refused and the old one keeps serving. Sections that need a restart
// (listen, store, targets, auth, approvals, passthrough, telemetry) are compared and
// reported, not applied.
func (a *app) reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	env := a.env
	if env == nil {
		env = os.LookupEnv
	}
	cfg, err := config.Load(a.cfg.File, env)
	if err != nil {
		return err
	}
	cfg.PublicURL = a.cfg.PublicURL
	if cfg.Listen != a.cfg.Listen && a.cfg.Listen != "" {
		cfg.Listen = a.cfg.Listen
	}
	st, err := compile(cfg, a.counters, a.log, a.view())
	if err != nil {
		return err
	}
	if err := a.swap(st); err != nil {
		return err
	}
	a.up.loaded = cfg
	for _, u := range a.up.conns {
		u.Refresh() // the tools lock may have changed: evaluate again
	}
	for _, section := range restartNeeded(a.cfg, cfg) {
		a.log.Warn("config section changed but needs a restart to apply", zap.String("section", section))
	}
	now := a.now()
	ev := broker.Event{
		ID: broker.NewID("evt", now), Time: now, Kind: broker.EventPolicyReloaded,
		PolicyVersion: st.policy.PolicyVersion(),
		Detail:        map[string]any{"tools": len(st.catalog.Tools()), "file": a.cfg.File},
	}
	if err := a.metrics.Record(ctx, ev); err != nil {
		a.log.Error("policy reloaded but the audit record failed", zap.Error(err))
	}
	a.log.Info("configuration reloaded", zap.String("policy_version", st.policy.PolicyVersion()), zap.Int("tools", len(st.catalog.Tools())))
	return nil
}

// restartNeeded lists the sections that differ and are not reloadable.
func restartNeeded(old, cur *config.Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"listen": {old.Listen, cur.Listen}, "allowed_origins": {old.AllowedOrigins, cur.AllowedOrigins}, "store": {old.Store, cur.Store}, "targets": {old.Targets, cur.Targets},
		"auth": {old.Auth, cur.Auth}, "approvals": {old.Approvals, cur.Approvals}, "passthrough": {old.Passthrough, cur.Passthrough},
		"recordings": {old.Recordings, cur.Recordings}, "limits": {old.Limits, cur.Limits}, "metrics": {old.Metrics, cur.Metrics},
		"telemetry": {old.Telemetry, cur.Telemetry},
		"console":   {old.Console, cur.Console},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}

// watch reloads when the config file, a tool declaration or the tools lock
// changes from the state last (a fingerprint taken before serving started,
// so no edit slips in unseen), and on each value from hup (SIGHUP). A
// failed reload logs every problem.
func (a *app) watch(ctx context.Context, every time.Duration, hup <-chan os.Signal, last string) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		case <-t.C:
			fp := a.fingerprint()
			if fp == last {
				continue
			}
		}
		last = a.fingerprint()
		if err := a.reload(ctx); err != nil {
			a.log.Error("reload refused; the previous configuration keeps serving", zap.String("problems", err.Error()))
		}
	}
}

// fingerprint summarises the mtimes and sizes of the config file, the
// tool declarations and, with mcp targets, the tools lock.
func (a *app) fingerprint() string {
	type stamp struct {
		Name string
		Mod  int64
		Size int64
	}
	var st []stamp
	add := func(p string) {
		if fi, err := os.Stat(p); err == nil {
			st = append(st, stamp{p, fi.ModTime().UnixNano(), fi.Size()})
		}
	}
	add(a.cfg.File)
	if len(a.up.conns) > 0 {
		add(a.cfg.ToolsLock)
	}
	files, _ := filepath.Glob(filepath.Join(a.cfg.ToolsDir, "*.json"))
	for _, f := range files {
		add(f)
	}
	b, _ := json.Marshal(st)
	return string(b)
}
