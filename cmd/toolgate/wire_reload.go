package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

// livePolicy is the policy engine currently serving; reload swaps it.
type livePolicy struct{ p atomic.Pointer[policy.Engine] }

// MayActAs asks the current policy.
func (l *livePolicy) MayActAs(p broker.Principal, graph string) bool {
	return l.p.Load().MayActAs(p, graph)
}

// HasNode asks the current policy.
func (l *livePolicy) HasNode(graph, node string) bool { return l.p.Load().HasNode(graph, node) }

// ValidateScope asks the current policy.
func (l *livePolicy) ValidateScope(graph string, scope map[string]any) error {
	return l.p.Load().ValidateScope(graph, scope)
}

// reload re-reads the config file and tools and swaps the catalog, policy
// and masker atomically: a call in flight finishes on the configuration it
// started with, the next one sees the new one. A config with any problem is
// refused and the old one keeps serving. Sections that need a restart
// (listen, store, targets, auth, approvals, passthrough) are compared and
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
	st, err := compile(cfg, a.counters, a.log)
	if err != nil {
		return err
	}
	bc := a.brokerCfg
	bc.Catalog, bc.Policy, bc.Graphs, bc.Binder, bc.Masker = st.catalog, st.policy, st.policy, st.policy, st.masker
	if err := a.mcp.SetCatalog(st.catalog); err != nil {
		return fmt.Errorf("mcp catalog: %w", err)
	}
	if err := a.broker.Reload(bc); err != nil {
		return err
	}
	a.brokerCfg = bc
	a.live.p.Store(st.policy)
	a.metrics.SetLabels(metricLabels(a.cfg, st))
	for _, section := range restartNeeded(a.cfg, cfg) {
		a.log.Warn("config section changed but needs a restart to apply", zap.String("section", section))
	}
	ev := broker.Event{
		ID: broker.NewID("evt"), Time: time.Now(), Kind: broker.EventPolicyReloaded,
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
		"listen": {old.Listen, cur.Listen}, "store": {old.Store, cur.Store}, "targets": {old.Targets, cur.Targets},
		"auth": {old.Auth, cur.Auth}, "approvals": {old.Approvals, cur.Approvals}, "passthrough": {old.Passthrough, cur.Passthrough},
		"recordings": {old.Recordings, cur.Recordings}, "limits": {old.Limits, cur.Limits}, "metrics": {old.Metrics, cur.Metrics},
		"console": {old.Console, cur.Console},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}

// watch reloads when the config file or a tool declaration changes from
// the state last (a fingerprint taken before serving started, so no edit
// slips in unseen), and on each value from hup (SIGHUP). A failed reload
// logs every problem.
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

// fingerprint summarises the mtimes and sizes of the config file and the
// tool declarations.
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
	files, _ := filepath.Glob(filepath.Join(a.cfg.ToolsDir, "*.json"))
	for _, f := range files {
		add(f)
	}
	b, _ := json.Marshal(st)
	return string(b)
}
