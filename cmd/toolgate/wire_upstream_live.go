package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/mcp"
	"github.com/toolgate/toolgate/internal/config"
)

// noticer posts a line of information where approvers read (the approvals
// Slack channel).
type noticer interface {
	Notice(ctx context.Context, text string) error
}

// upstreamLive is the app's side of the upstream MCP servers: their
// connectors, the events they send, and what was served last. loaded and
// served are guarded by app.reloadMu.
type upstreamLive struct {
	conns  map[string]*mcp.Upstream
	queue  eventQueue
	notice noticer
	// loaded is the configuration loaded last (by start or reload): a
	// rebuild compiles its graphs and tools again with the upstreams'
	// tools of now.
	loaded *config.Config
	// served are the upstream tools the live snapshot serves, by name.
	served map[string]*broker.Tool
}

// eventQueue hands connector events to the app's loop without blocking
// the connector and without dropping any.
type eventQueue struct {
	mu     sync.Mutex
	events []mcp.Event
	wake   chan struct{}
}

func (q *eventQueue) push(e mcp.Event) {
	q.mu.Lock()
	q.events = append(q.events, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []mcp.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.events
	q.events = nil
	return out
}

// upstreamEvent takes a connector's event on the connector's goroutine.
func (a *app) upstreamEvent(e mcp.Event) { a.up.queue.push(e) }

// redactUpstream masks upstream text (a stdio server's stderr, a progress
// message) with the live masker.
func (a *app) redactUpstream(s string) string {
	if a.broker == nil {
		return ""
	}
	return a.broker.Snapshot().Masker().MaskText(s)
}

// view is what the connectors know now: each reached upstream's
// evaluation.
func (a *app) view() upstreamView {
	v := upstreamView{snaps: map[string]*mcp.Snapshot{}}
	for name, u := range a.up.conns {
		if s := u.Snapshot(); s.Connected || len(s.Entries) > 0 {
			v.snaps[name] = s
		}
	}
	return v
}

// startUpstreams connects every upstream MCP server, waits (each at most
// its timeout) for the first attempts so that the tools of those that
// answer are served from the start, builds the catalog with them, and
// runs the loop that follows their events. An upstream that is down does
// not stop the server: its pinned tools answer target_unavailable until it
// comes up, and its tools join then.
func (a *app) startUpstreams(ctx, bg context.Context) {
	a.up.conns = map[string]*mcp.Upstream{}
	for name, exec := range a.targets {
		if u, ok := exec.(*mcp.Upstream); ok {
			a.up.conns[name] = u
		}
	}
	if len(a.up.conns) == 0 {
		return
	}
	var wg sync.WaitGroup
	for name, u := range a.up.conns {
		wait := mcp.DefaultTimeout
		if d := a.cfg.Targets[name].MCP.Timeout.D(); d > 0 {
			wait = d
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 2*wait)
			defer cancel()
			if err := u.Start(sctx); err != nil {
				a.log.Warn("upstream MCP server not reached at start; its tools join when it is", zap.String("target", name), zap.String("reason", err.Error()))
			}
		}()
	}
	wg.Wait()
	a.rebuild()
	a.background(bg, "upstream-mcp", a.followUpstreams)
}

// followUpstreams handles the connectors' events until ctx ends: a
// quarantine is recorded and announced, a new evaluation rebuilds the
// catalog.
func (a *app) followUpstreams(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.up.queue.wake:
		}
		rebuild := false
		for _, e := range a.up.queue.drain() {
			switch e.Kind {
			case mcp.EventEvaluated:
				rebuild = true
			case mcp.EventQuarantined:
				a.quarantined(ctx, e)
			}
		}
		if rebuild {
			a.rebuild()
		}
	}
}

// quarantined records that an upstream tool was quarantined (one
// tool_quarantined audit event per change) and posts a notice to the
// approvals Slack channel when one is configured.
func (a *app) quarantined(ctx context.Context, e mcp.Event) {
	changed := make([]string, len(e.Changes))
	for i, p := range e.Changes {
		changed[i] = string(p)
	}
	now := a.now()
	masker := a.broker.Snapshot().Masker()
	ev := broker.Event{
		ID: broker.NewID("evt", now), Time: now, Kind: broker.EventToolQuarantined, Tool: e.Name, Target: e.Target,
		Status: broker.StatusDenied, ErrorCode: string(broker.CodeToolDefinitionChanged), Error: masker.MaskText(e.Reason),
		Detail: map[string]any{"upstream_tool": e.Tool, "changed": changed},
	}
	if err := a.metrics.Record(context.WithoutCancel(ctx), ev); err != nil {
		a.log.Error("upstream tool quarantined but the audit record failed", zap.String("tool", e.Name), zap.Error(err))
	}
	if a.up.notice == nil {
		return
	}
	what := "its definition"
	if len(changed) > 0 {
		what = "its " + strings.Join(changed, ", ")
	}
	text := fmt.Sprintf("toolgate quarantined tool %s of upstream MCP server %s: %s changed since it was pinned, so its calls are refused. Review the change with `toolgate tools diff` and run `toolgate tools pin` to accept it.", e.Name, e.Target, what)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.up.notice.Notice(nctx, masker.MaskText(text)); err != nil {
		a.log.Warn("quarantine notice not posted", zap.String("tool", e.Name), zap.Error(err))
	}
}

// rebuild compiles the loaded configuration again with the upstreams'
// tools of now and swaps it in, as a reload does, then tells MCP clients
// the tool list changed. When the policy does not compile with a tool that
// joined, the problems are logged and only what was withdrawn (quarantined,
// no longer listed) applies: the tools served before stay, the new ones
// wait.
func (a *app) rebuild() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	v := a.view()
	st, probs := compileAll(a.up.loaded, a.counters, a.log, v)
	if len(probs) > 0 {
		a.log.Error("upstream MCP tools changed but the configuration does not compile with them; only withdrawn tools apply", zap.String("problems", probs.Error()))
		v.keep = a.up.served
		if v.keep == nil {
			v.keep = map[string]*broker.Tool{}
		}
		if st, probs = compileAll(a.up.loaded, a.counters, a.log, v); len(probs) > 0 {
			a.log.Error("upstream MCP tools changed but the catalog cannot be rebuilt; the previous one keeps serving", zap.String("problems", probs.Error()))
			return
		}
	}
	if err := a.swap(st); err != nil {
		a.log.Error("upstream MCP tools changed but the catalog cannot be served; the previous one keeps serving", zap.Error(err))
	}
}

// swap swaps st in (a.reloadMu held): the broker's snapshot, the metrics
// labels, the MCP door's tool table, and what upstream tools are served.
func (a *app) swap(st *static) error {
	if err := a.broker.Reload(st.live(a.cfg)); err != nil {
		return err
	}
	for _, w := range st.warnings {
		a.log.Warn(w)
	}
	a.metrics.SetLabels(metricLabels(a.cfg, st))
	served := map[string]*broker.Tool{}
	for _, t := range st.catalog.Tools() {
		if _, up := a.up.conns[t.Target]; up {
			served[t.Name] = t
		}
	}
	a.up.served = served
	if a.mcp != nil {
		a.mcp.Sync()
	}
	a.log.Debug("catalog served", zap.Strings("upstream_tools", slices.Sorted(maps.Keys(served))))
	return nil
}
