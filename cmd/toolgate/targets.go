package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/httptarget"
	"github.com/toolgate/toolgate/connectors/mcp"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/connectors/sqlite"
	"github.com/toolgate/toolgate/internal/config"
)

// connector opens the connector of one target of its kind; close releases
// it (nil when there is nothing to release).
type connector func(ctx context.Context, name string, t config.Target, env targetEnv) (exec broker.Executor, close func(), err error)

// targetEnv is what opening a connector may need besides its target.
type targetEnv struct {
	log *zap.Logger
	cfg *config.Config
	// onEvent receives the events of upstream MCP connectors; nil drops
	// them.
	onEvent func(mcp.Event)
	// redact masks upstream text before it is logged or relayed; nil
	// drops relayed text.
	redact func(string) string
}

// connectors is each target kind's connector, by kind name: the wiring
// half of the kinds config.Kinds declares (TestEveryKindHasAConnector keeps
// the two in step).
func connectors() map[string]connector {
	return map[string]connector{
		config.KindPostgres: openPostgres,
		config.KindSQLite:   openSQLite,
		config.KindHTTP:     openHTTP,
		config.KindMCP:      openMCP,
	}
}

func openPostgres(ctx context.Context, name string, t config.Target, env targetEnv) (broker.Executor, func(), error) {
	pg := t.Postgres
	c, err := postgres.New(ctx, postgres.Config{Name: name, DSN: pg.DSN, ReadOnly: pg.ReadOnly, MaxRows: pg.MaxRows,
		StatementTimeout: pg.StatementTimeout.D(), MaxConns: int32(pg.MaxConns),
		PreviewTimeout: pg.PreviewTimeout.D(), PreviewLockTimeout: pg.PreviewLockTimeout.D()}, env.log)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

func openSQLite(_ context.Context, name string, t config.Target, env targetEnv) (broker.Executor, func(), error) {
	sl := t.SQLite
	c, err := sqlite.New(sqlite.Config{Name: name, Path: sl.Path, ReadOnly: sl.ReadOnly, MaxRows: sl.MaxRows, StatementTimeout: sl.StatementTimeout.D()}, env.log)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

func openHTTP(_ context.Context, name string, t config.Target, env targetEnv) (broker.Executor, func(), error) {
	h := t.HTTP
	c, err := httptarget.New(httptarget.Config{Name: name, BaseURL: h.BaseURL, Headers: h.Headers, Timeout: h.Timeout.D(), MaxResponseBytes: h.MaxResponseBytes}, env.log)
	if err != nil {
		return nil, nil, err
	}
	return c, nil, nil
}

// openMCP opens the connector of an upstream MCP server. It starts
// nothing: startUpstreams connects once the broker serves.
func openMCP(_ context.Context, name string, t config.Target, env targetEnv) (broker.Executor, func(), error) {
	opt := mcpOptions(env.log, env.onEvent, env.redact)
	c, err := mcp.New(mcpConfig(env.cfg, name, t.MCP), opt)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

// openTargets connects every configured target. Connectors connect lazily,
// so a target that is down at start makes its calls fail with
// target_unavailable rather than stopping the server.
func openTargets(ctx context.Context, cfg *config.Config, env targetEnv, closers *[]func()) (map[string]broker.Executor, error) {
	open := connectors()
	env.cfg = cfg
	out := map[string]broker.Executor{}
	for name, t := range cfg.Targets {
		connect, ok := open[t.Kind]
		if !ok || t.Section() == nil {
			return nil, fmt.Errorf("target %s: unknown kind %q", name, t.Kind)
		}
		exec, closeFn, err := connect(ctx, name, t, env)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		if closeFn != nil {
			*closers = append(*closers, closeFn)
		}
		out[name] = exec
	}
	return out, nil
}
