package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// Config is what an Engine is built from.
type Config struct {
	// Graphs is the graphs section of toolgate.yaml.
	Graphs map[string]config.Graph
	// Catalog is the loaded tool catalog. Rules, allow lists and binds are
	// checked against it, and CEL conditions are typed by its input schemas.
	Catalog broker.Catalog
	// Counters keeps budget counters. It is required when any budget is set.
	Counters Counters
	// Upstream names the tools that may join the catalog without a new
	// configuration: those of upstream MCP servers, which come and go with
	// their server and their pins. A glob, allow entry or tool name that
	// matches no tool of the catalog is not a problem when it may name one
	// of them; rules over such a tool are compiled when it joins (the
	// policy is compiled again whenever an upstream's tools change).
	Upstream []UpstreamTools
	// CostLimit caps the CEL cost of one condition evaluation; 0 means
	// DefaultCostLimit.
	CostLimit uint64
	Logger    *zap.Logger
}

// Validate reports every problem with the configuration as a *LoadError,
// exactly as New would.
func (c Config) Validate() error {
	_, err := New(c)
	return err
}

// UpstreamTools are the catalog names one upstream MCP server's tools may
// take.
type UpstreamTools struct {
	// Names are the catalog names of the server's pinned tools (and, when
	// Open, of its renamed ones).
	Names []string
	// Prefix starts the catalog name of each of its tools not renamed.
	Prefix string
	// Open is set when tools with no pin are exposed too (expose: all): a
	// name under Prefix may then join. Otherwise a tool's exact name must
	// be one of Names; a glob may match nothing now if it may match a name
	// under Prefix.
	Open bool
}

// Problem is one thing wrong with the policy configuration.
type Problem struct {
	// Path is the config path, e.g.
	// "graphs.support-bot.nodes.refund.rules[0].when".
	Path   string
	Reason string
}

// LoadError lists every problem found while building an Engine.
type LoadError struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Path, p.Reason)
	}
	return b.String()
}

// loader accumulates problems while compiling.
type loader struct {
	cfg      Config
	tools    []*broker.Tool
	props    map[string]props // by tool name
	problems []Problem
	// progs caches compiled conditions by rule path and tool name.
	progs map[string]map[string]cel.Program
	// loops records which conditions contain a comprehension.
	loops map[string]bool
	// envs caches each graph's environment per tool.
	envs map[string]*cel.Env
}

func (l *loader) problem(p, format string, args ...any) {
	l.problems = append(l.problems, Problem{Path: p, Reason: fmt.Sprintf(format, args...)})
}

// New compiles the policy. Every problem is reported in one *LoadError.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.CostLimit == 0 {
		cfg.CostLimit = DefaultCostLimit
	}
	l := &loader{cfg: cfg, props: map[string]props{}, progs: map[string]map[string]cel.Program{}, loops: map[string]bool{}}
	if cfg.Catalog == nil {
		l.problem("tools", "no tool catalog was given, so rules and allow lists cannot be checked")
		return nil, &LoadError{Problems: l.problems}
	}
	l.tools = cfg.Catalog.Tools()
	for _, t := range l.tools {
		ps, err := toolProps(t)
		if err != nil {
			l.problem("tools."+t.Name+".input_schema", "%v", err)
			ps = props{}
		}
		l.props[t.Name] = ps
	}
	e := &Engine{
		graphs:    map[string]*graphPolicy{},
		counters:  cfg.Counters,
		log:       cfg.Logger,
		costLimit: cfg.CostLimit,
		version:   Version(cfg.Graphs),
		catalog:   cfg.Catalog,
	}
	e.acts.New = func() any { return new(activation) }
	for _, g := range slices.Sorted(maps.Keys(cfg.Graphs)) {
		if gp := l.graph(g, cfg.Graphs[g]); gp != nil {
			e.graphs[g] = gp
		}
	}
	e.pass = l.passthrough(e, cfg.Graphs)
	if e.usesBudgets() && cfg.Counters == nil {
		l.problem("graphs", "budgets are configured but no budget counter store was given, so they could not be enforced")
	}
	if len(l.problems) > 0 {
		return nil, &LoadError{Problems: l.problems}
	}
	cfg.Logger.Debug("policy loaded", zap.Int("graphs", len(e.graphs)), zap.String("version", e.version))
	return e, nil
}

// ruleVersion identifies a rule for the approvals it governs
// (broker.Decision.RuleVersion): a hash of the rule list it is in (its
// config path without the index, so adding or removing another rule does
// not change it), its tool glob, effect, condition text, approvers (in
// normal form, sorted) and min_approvals. A reload that changes any of
// these makes the rule's pending and unused approvals stale; edits anywhere
// else do not.
func ruleVersion(list string, r config.Rule) string {
	approvers := broker.PrincipalNames(r.Approvers)
	sort.Strings(approvers)
	b, _ := json.Marshal([]any{list, r.Tool, r.Effect, strings.TrimSpace(r.When), approvers, max(1, r.MinApprovals)})
	sum := sha256.Sum256(b)
	return "r_" + hex.EncodeToString(sum[:8])
}

// Version returns the policy version of a graphs configuration: the first
// 12 hex digits of the SHA-256 of its canonical JSON encoding (map keys
// sorted, struct fields in declaration order).
func Version(graphs map[string]config.Graph) string {
	b, err := json.Marshal(graphs)
	if err != nil {
		// Graphs are plain data; a marshal failure means a value JSON
		// cannot hold (a NaN in a scope schema). Hash its printed form.
		b = []byte(fmt.Sprintf("%#v", graphs))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// validGlob reports whether pattern is a valid path.Match pattern.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// matchingTools returns the tools whose names match pattern.
func (l *loader) matchingTools(pattern string) []*broker.Tool {
	var out []*broker.Tool
	for _, t := range l.tools {
		if ok, _ := path.Match(pattern, t.Name); ok {
			out = append(out, t)
		}
	}
	return out
}

// upstreamAllow is the key under which a node's allowed set records that
// an allow entry may admit upstream tools that have not joined the catalog
// (no tool is named "").
const upstreamAllow = ""

// mayJoin reports whether pattern (a glob or an exact name) may name an
// upstream MCP server's tool that is not in the catalog now (Upstream).
func (l *loader) mayJoin(pattern string) bool {
	lit, glob := pattern, false
	if i := strings.IndexAny(pattern, "*?[\\"); i >= 0 {
		lit, glob = pattern[:i], true
	}
	for _, u := range l.cfg.Upstream {
		for _, n := range u.Names {
			if matchTool(pattern, n) {
				return true
			}
		}
		switch {
		case glob && (strings.HasPrefix(lit, u.Prefix) || strings.HasPrefix(u.Prefix, lit)):
			return true
		case !glob && u.Open && len(pattern) > len(u.Prefix) && strings.HasPrefix(pattern, u.Prefix):
			return true
		}
	}
	return false
}

func (l *loader) graph(name string, g config.Graph) *graphPolicy {
	gpath := "graphs." + name
	gp := &graphPolicy{name: name, path: gpath, principals: map[string]bool{}, exact: map[string]*nodePolicy{}}
	for i, p := range g.Principals {
		if strings.TrimSpace(p) == "" {
			l.problem(fmt.Sprintf("%s.principals[%d]", gpath, i), "a principal may not be empty")
		}
		// Compared with the caller's names in normal form (Principal.Names).
		gp.principals[broker.PrincipalName(p)] = true
	}
	gp.owners = broker.PrincipalNames(g.Owners)
	gp.scope = schemaProps(g.ScopeSchema)
	if len(g.ScopeSchema) > 0 {
		sch, err := compileScopeSchema(g.ScopeSchema)
		if err != nil {
			l.problem(gpath+".scope_schema", "is not a valid JSON Schema: %v", err)
		}
		gp.scopeSchema = sch
	}
	env, err := baseEnv(gp.scope)
	if err != nil {
		l.problem(gpath+".scope_schema", "cannot build the CEL environment: %v", err)
		return nil
	}
	l.envs = map[string]*cel.Env{}
	graphRules := l.rules(gpath+".rules", g.Rules, nil)
	for _, r := range graphRules {
		l.compileRule(env, gp, r)
	}
	gp.rules = graphRules
	gp.budgets = l.budgets(gpath+".budgets", g.Budgets, levelGraph)

	for _, key := range slices.Sorted(maps.Keys(g.Nodes)) {
		np := l.node(env, gp, key, g.Nodes[key])
		if np == nil {
			continue
		}
		if strings.ContainsAny(key, "*?[\\") {
			gp.globs = append(gp.globs, np)
		} else {
			gp.exact[key] = np
		}
	}
	sort.SliceStable(gp.globs, func(i, j int) bool {
		if len(gp.globs[i].key) != len(gp.globs[j].key) {
			return len(gp.globs[i].key) > len(gp.globs[j].key)
		}
		return gp.globs[i].key < gp.globs[j].key
	})
	return gp
}

// rules validates rule declarations. allowed, when not nil, is the set of
// tools the node allows: a node rule must name one of them.
func (l *loader) rules(prefix string, rs []config.Rule, allowed map[string]bool) []*ruleDecl {
	out := make([]*ruleDecl, 0, len(rs))
	for i, r := range rs {
		rp := fmt.Sprintf("%s[%d]", prefix, i)
		d := &ruleDecl{path: rp, rule: r, effect: broker.Effect(r.Effect), tool: r.Tool, version: ruleVersion(prefix, r)}
		ok := true
		switch d.effect {
		case broker.EffectAllow, broker.EffectDeny, broker.EffectApprove:
		case "":
			l.problem(rp+".effect", "effect is required: allow, deny or approve")
			ok = false
		default:
			l.problem(rp+".effect", "unknown effect %q: use allow, deny or approve", r.Effect)
			ok = false
		}
		if d.tool == "" {
			d.tool = "*"
		}
		if !validGlob(d.tool) {
			l.problem(rp+".tool", "%q is not a valid glob pattern", r.Tool)
			ok = false
		} else if len(l.matchingTools(d.tool)) == 0 {
			switch {
			case !l.mayJoin(d.tool):
				l.problem(rp+".tool", "%q matches no tool in the catalog", r.Tool)
				ok = false
			case allowed != nil && !allowed[upstreamAllow]:
				l.problem(rp+".tool", "%q matches no tool in this node's allow list; rules refine the allow list, they do not widen it", d.tool)
				ok = false
			}
		} else if allowed != nil {
			hit := false
			for _, t := range l.matchingTools(d.tool) {
				hit = hit || allowed[t.Name]
			}
			switch {
			case hit || l.mayJoin(d.tool) && allowed[upstreamAllow]:
			case r.Tool == "":
				l.problem(rp+".tool", "the rule applies to every tool, but this node's allow list admits none")
				ok = false
			default:
				l.problem(rp+".tool", "%q matches no tool in this node's allow list; rules refine the allow list, they do not widen it", d.tool)
				ok = false
			}
		}
		if d.effect == broker.EffectApprove {
			if len(r.Approvers) == 0 {
				l.problem(rp+".approvers", "an approve rule needs at least one approver")
				ok = false
			}
			if r.MinApprovals < 0 {
				l.problem(rp+".min_approvals", "must not be negative")
				ok = false
			}
			if r.Timeout < 0 {
				l.problem(rp+".timeout", "must not be negative")
				ok = false
			}
		} else if len(r.Approvers) > 0 || r.MinApprovals != 0 || r.Timeout != 0 {
			l.problem(rp, "approvers, min_approvals and timeout apply only to effect approve")
			ok = false
		}
		for j, a := range r.Approvers {
			if strings.TrimSpace(a) == "" {
				l.problem(fmt.Sprintf("%s.approvers[%d]", rp, j), "an approver may not be empty")
				ok = false
			}
		}
		if ok {
			out = append(out, d)
		}
	}
	return out
}

// compileRule parses a rule's condition once and type-checks it against
// every tool its glob matches, caching one program per tool.
func (l *loader) compileRule(env *cel.Env, gp *graphPolicy, d *ruleDecl) {
	if d.rule.When == "" {
		return
	}
	wp := d.path + ".when"
	parsed, iss := env.Parse(d.rule.When)
	if iss.Err() != nil {
		l.problem(wp, "syntax error: %s", oneLine(iss.Err().Error()))
		return
	}
	tools := l.matchingTools(d.tool)
	progs := map[string]cel.Program{}
	loops := hasComprehension(parsed)
	unknownEverywhere := map[string]int{}
	for _, t := range tools {
		tenv, err := l.toolEnv(env, gp, t)
		if err != nil {
			l.problem(wp, "cannot build the CEL environment for tool %s: %v", t.Name, err)
			return
		}
		checked, iss := tenv.Check(parsed)
		if iss.Err() != nil {
			l.problem(wp, "%s: %s", forTool(tools, t), oneLine(iss.Err().Error()))
			return
		}
		if !checked.OutputType().IsExactType(cel.BoolType) {
			l.problem(wp, "the condition must be a bool, but it is a %s", checked.OutputType())
			return
		}
		for _, f := range unknownRefs(checked, "args", l.props[t.Name]) {
			unknownEverywhere[f]++
		}
		if len(gp.scope) > 0 {
			if u := unknownRefs(checked, "scope", gp.scope); len(u) > 0 {
				l.problem(wp, "scope.%s is not a property of %s.scope_schema", u[0], gp.path)
				return
			}
		}
		popts := []cel.ProgramOption{cel.InterruptCheckFrequency(100), cel.EvalOptions(cel.OptOptimize)}
		if !provablyCheap(tenv, checked, l.cfg.CostLimit) {
			popts = append(popts, cel.CostLimit(l.cfg.CostLimit))
		}
		prg, err := tenv.Program(checked, popts...)
		if err != nil {
			l.problem(wp, "cannot plan the condition: %v", err)
			return
		}
		progs[t.Name] = prg
	}
	for _, f := range slices.Sorted(maps.Keys(unknownEverywhere)) {
		if unknownEverywhere[f] == len(tools) {
			if len(tools) == 1 {
				l.problem(wp, "args.%s is not a property of the input schema of tool %s", f, tools[0].Name)
			} else {
				l.problem(wp, "args.%s is not a property of the input schema of any tool %q matches", f, d.tool)
			}
			return
		}
	}
	l.progs[d.path] = progs
	l.loops[d.path] = loops
}

func forTool(tools []*broker.Tool, t *broker.Tool) string {
	if len(tools) == 1 {
		return "type error"
	}
	return "type error for tool " + t.Name
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: ")
	lines := strings.Split(s, "\n")
	return strings.TrimSpace(lines[0])
}

func (l *loader) toolEnv(env *cel.Env, gp *graphPolicy, t *broker.Tool) (*cel.Env, error) {
	if e, ok := l.envs[t.Name]; ok {
		return e, nil
	}
	e, err := env.Extend(propVars("args", l.props[t.Name])...)
	if err != nil {
		return nil, err
	}
	l.envs[t.Name] = e
	return e, nil
}

func (l *loader) node(env *cel.Env, gp *graphPolicy, key string, n config.Node) *nodePolicy {
	npath := gp.path + ".nodes." + key
	np := &nodePolicy{graph: gp, key: key, path: npath, tools: map[string]*toolPolicy{}, binds: map[string][]bind{}, allowList: n.Allow}
	if strings.TrimSpace(key) == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		l.problem(npath, "a node key must be a node path like \"triage\" or \"supervisor/*\"")
		return nil
	}
	if !validGlob(key) {
		l.problem(npath, "%q is not a valid glob pattern", key)
		return nil
	}
	allowed := map[string]bool{}
	allowRule := map[string]string{}
	for i, a := range n.Allow {
		ap := fmt.Sprintf("%s.allow[%d]", npath, i)
		if !validGlob(a) {
			l.problem(ap, "%q is not a valid glob pattern", a)
			continue
		}
		ts := l.matchingTools(a)
		switch {
		case len(ts) == 0 && l.mayJoin(a):
			allowed[upstreamAllow] = true
		case len(ts) == 0:
			l.problem(ap, "%q matches no tool in the catalog", a)
		}
		for _, t := range ts {
			if !allowed[t.Name] {
				allowed[t.Name] = true
				allowRule[t.Name] = ap
			}
		}
	}
	nodeRules := l.rules(npath+".rules", n.Rules, allowed)
	for _, r := range nodeRules {
		l.compileRule(env, gp, r)
	}
	np.rules = nodeRules
	np.budgets = l.budgets(npath+".budgets", n.Budgets, levelNode)
	np.bindsCfg = l.binds(npath+".bind", gp, n.Bind, allowed)
	for _, b := range np.bindsCfg {
		np.binds[b.tool] = append(np.binds[b.tool], b)
	}

	all := append(append([]*ruleDecl{}, gp.rules...), nodeRules...)
	for _, t := range l.tools {
		if !allowed[t.Name] {
			continue
		}
		tp := &toolPolicy{tool: t, allowRule: allowRule[t.Name], args: l.props[t.Name], ann: annotations(t)}
		for _, d := range all {
			if ok, _ := path.Match(d.tool, t.Name); !ok {
				continue
			}
			ref := &ruleRef{ruleDecl: d}
			if d.rule.When != "" {
				ref.prg = l.progs[d.path][t.Name]
				ref.loops = l.loops[d.path]
				if ref.prg == nil {
					// The condition failed to compile; a problem is
					// already recorded and no Engine is returned.
					continue
				}
			} else if d.effect == broker.EffectDeny {
				tp.denied = true
			}
			switch d.effect {
			case broker.EffectDeny:
				tp.deny = append(tp.deny, ref)
			case broker.EffectApprove:
				tp.approve = append(tp.approve, ref)
			default:
				tp.allow = append(tp.allow, ref)
			}
		}
		for _, b := range append(append([]*budget{}, gp.budgets...), np.budgets...) {
			if b.tools == "" || matchTool(b.tools, t.Name) {
				tp.budgets = append(tp.budgets, b)
			}
		}
		np.tools[t.Name] = tp
	}
	return np
}

func matchTool(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

func (l *loader) binds(prefix string, gp *graphPolicy, bs map[string]map[string]string, allowed map[string]bool) []bind {
	var out []bind
	for _, tool := range slices.Sorted(maps.Keys(bs)) {
		tp := prefix + "." + tool
		if _, ok := l.cfg.Catalog.Lookup(tool); !ok {
			if !l.mayJoin(tool) {
				l.problem(tp, "no tool named %q in the catalog (bind names tools exactly, not by glob)", tool)
			}
			continue
		}
		if !allowed[tool] {
			l.problem(tp, "tool %q is not in this node's allow list, so binding its arguments has no effect", tool)
			continue
		}
		for _, arg := range slices.Sorted(maps.Keys(bs[tool])) {
			ap := tp + "." + arg
			if _, ok := l.props[tool][arg]; !ok {
				l.problem(ap, "%q is not a property of the input schema of tool %s", arg, tool)
				continue
			}
			src := bs[tool][arg]
			field, ok := strings.CutPrefix(src, "scope.")
			if !ok || field == "" {
				l.problem(ap, "%q must name a scope field, like scope.customer_id", src)
				continue
			}
			parts := strings.Split(field, ".")
			if len(gp.scope) > 0 {
				if _, ok := gp.scope[parts[0]]; !ok {
					l.problem(ap, "scope.%s is not a property of %s.scope_schema", parts[0], gp.path)
					continue
				}
			}
			out = append(out, bind{tool: tool, arg: arg, source: src, field: parts, path: ap})
		}
	}
	return out
}

func (l *loader) budgets(prefix string, b config.Budgets, lvl level) []*budget {
	var out []*budget
	add := func(p string, bb config.Budgets, tools string) {
		for _, c := range []struct {
			name  string
			limit int
		}{
			{"calls_per_run", bb.CallsPerRun},
			{"rows_per_run", bb.RowsPerRun},
			{"calls_per_minute", bb.CallsPerMinute},
		} {
			if c.limit < 0 {
				l.problem(p+"."+c.name, "must not be negative")
				continue
			}
			if c.limit == 0 {
				continue
			}
			bd := &budget{path: p + "." + c.name, name: c.name, limit: int64(c.limit), level: lvl, tools: tools}
			if c.name == "calls_per_minute" {
				bd.window = time.Minute
			}
			out = append(out, bd)
		}
	}
	add(prefix, b, "")
	for _, pat := range slices.Sorted(maps.Keys(b.Tools)) {
		tp := prefix + ".tools." + pat
		if !validGlob(pat) {
			l.problem(tp, "%q is not a valid glob pattern", pat)
			continue
		}
		if len(l.matchingTools(pat)) == 0 && !l.mayJoin(pat) {
			l.problem(tp, "%q matches no tool in the catalog", pat)
			continue
		}
		if len(b.Tools[pat].Tools) > 0 {
			l.problem(tp+".tools", "tool budgets do not nest")
			continue
		}
		add(tp, b.Tools[pat], pat)
	}
	return out
}
