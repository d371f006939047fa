package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/mcp"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools"
)

// mcpConfig is the connector config of the mcp target name.
func mcpConfig(cfg *config.Config, name string, t *config.MCPTarget) mcp.Config {
	return mcp.Config{
		Name: name, URL: t.URL, Headers: t.Headers, Command: t.Command, Env: t.Env, Dir: t.Dir,
		Timeout: t.Timeout.D(), MaxResultBytes: t.MaxResultBytes, Prefix: t.Prefix, Rename: t.Rename,
		Expose: mcp.Expose(t.Expose), ToolsLock: cfg.ToolsLock,
	}
}

// mcpOptions are the connector options every use of an upstream shares: the
// schema rules of declared tools, a neutral environment for stdio servers
// and this build's version.
func mcpOptions(log *zap.Logger, onEvent func(mcp.Event), redact func(string) string) mcp.Options {
	return mcp.Options{Logger: log, Compile: compileSchemas, OnEvent: onEvent, Redact: redact,
		BaseEnv: mcp.NeutralEnv(os.Environ()), ClientVersion: version}
}

// compileSchemas compiles an upstream tool's schemas by the rules of
// declared tools.
func compileSchemas(source string, input, output json.RawMessage) (mcp.Schemas, error) {
	s, err := tools.CompileSchemas(source, input, output)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// mcpTargets lists the names of the mcp targets, sorted.
func mcpTargets(cfg *config.Config) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(cfg.Targets)) {
		if cfg.Targets[name].MCP != nil {
			out = append(out, name)
		}
	}
	return out
}

// upstreamView is what a compile knows of the upstream MCP servers' tools
// besides the config and the lock file.
type upstreamView struct {
	// snaps are the upstreams' current evaluations by target; a target
	// without one has not been reached (or is not asked: check, explain).
	snaps map[string]*mcp.Snapshot
	// keep, when set, limits the upstream tools to these (by catalog name,
	// as they were last served): a rebuild whose policy does not compile
	// with the new tools still applies what was withdrawn.
	keep map[string]*broker.Tool
}

// joined is what the upstream MCP servers add to a compile.
type joined struct {
	tools    []*broker.Tool
	withheld []broker.Withheld
	// names are the names upstream tools may take, for the policy.
	names []policy.UpstreamTools
	// problems are the config's (load problems); warnings are the
	// upstreams' (a listed tool whose name a declared tool has).
	problems problemList
	warnings []string
}

// join adds the mcp targets to a compile: their configs are checked, the
// lock file read, pinned names that collide with a declared tool reported,
// and each upstream's evaluation turned into catalog tools (with their
// masking) and withheld tools.
func (v upstreamView) join(cfg *config.Config, declared *tools.Catalog, m *mask.Masker) joined {
	var j joined
	names := mcpTargets(cfg)
	if len(names) == 0 {
		return j
	}
	lock, err := mcp.ReadLock(cfg.ToolsLock)
	if err != nil {
		j.problems = append(j.problems, cfg.Problem("tools_lock", err.Error()+"; no upstream tool is exposed until it can be read").String())
		lock = &mcp.Lock{}
	}
	for _, name := range names {
		v.joinTarget(&j, cfg, name, lock, declared, m)
	}
	return j
}

// joinTarget adds one mcp target to j.
func (v upstreamView) joinTarget(j *joined, cfg *config.Config, name string, lock *mcp.Lock, declared *tools.Catalog, m *mask.Masker) {
	t := cfg.Targets[name].MCP
	mc := mcpConfig(cfg, name, t)
	at := "targets." + name
	for _, p := range mc.Problems() {
		key := at
		if p.Key != "" {
			key += "." + p.Key
		}
		j.problems = append(j.problems, cfg.Problem(key, p.Reason).String())
	}
	for _, tool := range slices.Sorted(maps.Keys(t.Tools)) {
		if m == nil {
			break
		}
		if err := m.CheckTool(upstreamMasked(&broker.Tool{Name: tool}, t.Tools[tool])); err != nil {
			j.problems = append(j.problems, cfg.Problem(at+".tools."+tool, err.Error()).String())
		}
	}
	names := policy.UpstreamTools{Prefix: mc.Prefix, Open: mc.Expose == mcp.ExposeAll}
	if names.Prefix == "" {
		names.Prefix = name + "_"
	}
	pinned := lock.Targets[name]
	for _, tool := range slices.Sorted(maps.Keys(pinned)) {
		n, _ := mc.CatalogName(tool)
		if d, clash := declared.Lookup(n); clash {
			j.problems = append(j.problems, cfg.Problem(at, fmt.Sprintf("upstream tool %q is pinned under the catalog name %q, which the tool declared in %s has; give it another name with %s.rename", tool, n, d.Source, at)).String())
			continue
		}
		if n != "" {
			names.Names = append(names.Names, n)
		}
	}
	if names.Open {
		names.Names = append(names.Names, slices.Sorted(maps.Values(t.Rename))...)
	}
	j.names = append(j.names, names)
	snap, reached := v.snaps[name]
	if !reached {
		for _, n := range names.Names {
			if _, clash := declared.Lookup(n); !clash {
				j.withheld = append(j.withheld, broker.Withheld{Name: n, Target: name, Refusal: broker.Errorf(broker.CodeTargetUnavailable,
					"upstream MCP server %s has not been reached yet, so tool %s cannot be called; toolgate keeps trying", name, n)})
			}
		}
		return
	}
	v.joinSnapshot(j, name, snap, t, declared)
}

// joinSnapshot turns one upstream's evaluation into catalog tools and
// withheld tools.
func (v upstreamView) joinSnapshot(j *joined, target string, snap *mcp.Snapshot, t *config.MCPTarget, declared *tools.Catalog) {
	exposed := make(map[string]*broker.Tool, len(snap.Tools))
	for _, tool := range snap.Tools {
		exposed[tool.Name] = tool
	}
	for _, e := range snap.Entries {
		if e.Name == "" {
			continue
		}
		if d, clash := declared.Lookup(e.Name); clash {
			if e.State == mcp.StateExposed {
				j.warnings = append(j.warnings, fmt.Sprintf("upstream tool %q of target %s is not exposed: its catalog name %q is the tool declared in %s; give it another name with targets.%s.rename", e.Tool, target, e.Name, d.Source, target))
			}
			continue
		}
		tool := exposed[e.Name]
		switch {
		case e.State != mcp.StateExposed || tool == nil:
			j.withheld = append(j.withheld, broker.Withheld{Name: e.Name, Target: target, Refusal: withheldRefusal(e)})
		case v.keep != nil && v.keep[e.Name] == nil:
		case v.keep != nil:
			j.tools = append(j.tools, v.keep[e.Name])
		default:
			j.tools = append(j.tools, upstreamMasked(tool, t.Tools[e.Tool]))
		}
	}
}

// withheldRefusal is how a call to an upstream tool that is not exposed is
// refused: tool_definition_changed for a quarantined one, naming what
// changed, unknown_tool saying why for the rest.
func withheldRefusal(e mcp.Entry) *broker.Error {
	if e.State == mcp.StateChanged {
		return &broker.Error{Code: broker.CodeToolDefinitionChanged, Message: fmt.Sprintf("tool %s is quarantined: %s", e.Name, e.Reason)}
	}
	return broker.Errorf(broker.CodeUnknownTool, "tool %s is not exposed: %s", e.Name, e.Reason)
}

// upstreamMasked is an upstream tool with the masking its target declares
// for it (paths relative to structuredContent).
func upstreamMasked(t *broker.Tool, m config.UpstreamTool) *broker.Tool {
	if len(m.Mask) == 0 && len(m.Detectors) == 0 {
		return t
	}
	c := *t
	c.Mask = mask.StructuredPaths(m.Mask)
	c.Detectors = m.Detectors
	return &c
}
