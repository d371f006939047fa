package policy

import (
	"context"
	"fmt"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"path"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// Engine is a compiled policy. It is immutable and safe for concurrent use;
// a new configuration means a new Engine.
type Engine struct {
	graphs    map[string]*graphPolicy
	counters  Counters
	log       *zap.Logger
	costLimit uint64
	version   string
	acts      sync.Pool
	// pass holds the passthrough policies (passthrough.go).
	pass map[*nodePolicy]map[string]*passPolicy
	// catalog is the tool catalog the policy was compiled against.
	catalog broker.Catalog
}

// Compile-time proofs of the broker interfaces Engine implements.
var (
	_ broker.Policy     = (*Engine)(nil)
	_ broker.Binder     = (*Engine)(nil)
	_ broker.RowBudget  = (*Engine)(nil)
	_ broker.Allower    = (*Engine)(nil)
	_ broker.GraphIndex = (*Engine)(nil)
	_ broker.Node       = (*nodePolicy)(nil)
)

type graphPolicy struct {
	name       string
	path       string
	principals map[string]bool
	// owners are the graph's owners in normal form (graphs.<g>.owners).
	owners []string
	scope  props
	// scopeSchema validates grant scopes; nil when the graph declares none.
	scopeSchema *jsonschema.Schema
	rules       []*ruleDecl
	budgets     []*budget
	exact       map[string]*nodePolicy
	// globs are sorted most specific (longest) first.
	globs []*nodePolicy
}

type nodePolicy struct {
	graph     *graphPolicy
	key       string
	path      string
	allowList []string
	rules     []*ruleDecl
	budgets   []*budget
	bindsCfg  []bind
	binds     map[string][]bind
	// tools holds the tools the allow list admits, by name.
	tools map[string]*toolPolicy
}

// ruleDecl is a validated rule as configured.
type ruleDecl struct {
	path   string
	rule   config.Rule
	effect broker.Effect
	// tool is the rule's glob, "*" when the rule names none.
	tool string
	// version identifies the rule for the approvals it governs (ruleVersion).
	version string
}

// ruleRef is a rule applied to one tool, with its condition compiled
// against that tool's argument types (nil when it has none).
type ruleRef struct {
	*ruleDecl
	prg cel.Program
	// loops is set when the condition has a comprehension, the only
	// construct whose evaluation checks for cancellation.
	loops bool
}

// toolPolicy is what applies to one allowed tool of one node.
type toolPolicy struct {
	tool      *broker.Tool
	allowRule string
	args      props
	ann       map[string]any
	// deny, approve and allow are the rules that can apply, in
	// configuration order (graph rules first).
	deny, approve, allow []*ruleRef
	// denied is set when an unconditional deny rule applies.
	denied  bool
	budgets []*budget
}

type bind struct {
	tool, arg, source, path string
	field                   []string
}

// PolicyVersion returns the version every decision carries.
func (e *Engine) PolicyVersion() string { return e.version }

// resolve finds the node entry for a caller: an exact key first, then the
// most specific matching glob.
func (e *Engine) resolve(c broker.Caller) (*graphPolicy, *nodePolicy) {
	gp := e.graphs[c.Graph]
	if gp == nil {
		return nil, nil
	}
	if np := gp.exact[c.Node]; np != nil {
		return gp, np
	}
	for _, np := range gp.globs {
		if ok, _ := path.Match(np.key, c.Node); ok {
			return gp, np
		}
	}
	return gp, nil
}

// Node returns the caller's node policy (broker.Policy), nil when the
// caller's graph or node has none.
func (e *Engine) Node(c broker.Caller) broker.Node {
	if _, np := e.resolve(c); np != nil {
		return np
	}
	return nil
}

// Path is the node entry's config path.
func (np *nodePolicy) Path() string { return np.path }

// nodeOf is the *nodePolicy a broker.Node from Node holds, resolved from
// the caller when n is nil.
func (e *Engine) nodeOf(n broker.Node, c broker.Caller) *nodePolicy {
	if np, ok := n.(*nodePolicy); ok {
		return np
	}
	_, np := e.resolve(c)
	return np
}

// lookup returns the policy for the caller and tool, or a default-deny
// reason.
func (e *Engine) lookup(c broker.Caller, tool *broker.Tool) (*graphPolicy, *nodePolicy, *toolPolicy, string) {
	return e.lookupIn(nil, c, tool)
}

// lookupIn is lookup for a caller whose node policy n may already be
// resolved (nil: resolve it).
func (e *Engine) lookupIn(n broker.Node, c broker.Caller, tool *broker.Tool) (*graphPolicy, *nodePolicy, *toolPolicy, string) {
	if c.Graph == "" {
		return nil, nil, nil, "the caller names no graph, and a caller with no graph can call nothing"
	}
	var gp *graphPolicy
	np := e.nodeOf(n, c)
	if np != nil {
		gp = np.graph
	} else {
		gp = e.graphs[c.Graph]
	}
	switch {
	case gp == nil:
		return nil, nil, nil, fmt.Sprintf("graph %q has no policy", c.Graph)
	case np == nil:
		return gp, nil, nil, fmt.Sprintf("node %q matches no node of graph %q", c.Node, c.Graph)
	case tool == nil:
		return gp, np, nil, "no tool"
	}
	tp := np.tools[tool.Name]
	if tp == nil {
		return gp, np, nil, fmt.Sprintf("tool %q is not in the allow list of %s", tool.Name, np.path)
	}
	return gp, np, tp, ""
}

// MayActAs reports whether the graph has a policy and one of the
// principal's names is among its principals.
func (e *Engine) MayActAs(p broker.Principal, graph string) bool {
	gp := e.graphs[graph]
	if gp == nil {
		return false
	}
	for _, n := range p.Names() {
		if gp.principals[n] {
			return true
		}
	}
	return false
}

// Visible reports whether node n (from Node) allows the tool and no
// unconditional deny rule removes it.
func (e *Engine) Visible(n broker.Node, tool *broker.Tool) bool {
	np, _ := n.(*nodePolicy)
	if np == nil || tool == nil {
		return false
	}
	tp := np.tools[tool.Name]
	return tp != nil && !tp.denied
}

// Allows reports whether node n's allow list names the tool, and no
// unconditional deny rule of the node or its graph does (broker.Allower):
// asked for a tool the catalog withholds, which the policy was not
// compiled with.
func (e *Engine) Allows(n broker.Node, name string) bool {
	np, _ := n.(*nodePolicy)
	if np == nil {
		return false
	}
	allowed := false
	for _, a := range np.allowList {
		allowed = allowed || matchTool(a, name)
	}
	for _, d := range append(append([]*ruleDecl{}, np.graph.rules...), np.rules...) {
		if d.effect == broker.EffectDeny && d.rule.When == "" && matchTool(d.tool, name) {
			return false
		}
	}
	return allowed
}

// Bound returns the arguments node n (from Node; nil resolves the caller's)
// binds for tool, with their values from the caller's grant scope.
func (e *Engine) Bound(n broker.Node, c broker.Caller, tool *broker.Tool) (map[string]any, error) {
	if tool == nil {
		return nil, nil
	}
	np := e.nodeOf(n, c)
	if np == nil || len(np.binds[tool.Name]) == 0 {
		return nil, nil
	}
	scope := c.Scope()
	out := make(map[string]any, len(np.binds[tool.Name]))
	for _, b := range np.binds[tool.Name] {
		if scope == nil {
			return nil, &broker.Error{Code: broker.CodeForbidden, Field: b.arg, Message: fmt.Sprintf(
				"argument %q of tool %s is bound to %s (%s), so this call needs a grant token whose scope has %s; the caller presented no grant",
				b.arg, tool.Name, b.source, b.path, strings.Join(b.field, "."))}
		}
		v, ok := scopeValue(scope, b.field)
		if !ok {
			return nil, &broker.Error{Code: broker.CodeForbidden, Field: b.arg, Message: fmt.Sprintf(
				"argument %q of tool %s is bound to %s (%s), but the grant's scope has no %s; mint a grant with that scope",
				b.arg, tool.Name, b.source, b.path, strings.Join(b.field, "."))}
		}
		out[b.arg] = v
	}
	return out, nil
}

func scopeValue(scope map[string]any, field []string) (any, bool) {
	var cur any = scope
	for _, f := range field {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[f]; !ok {
			return nil, false
		}
	}
	if cur == nil {
		return nil, false
	}
	return cur, true
}

// Decide decides one call and charges its call budgets. An error means the
// policy could not answer (a condition failed to evaluate, the budget store
// is down) or a budget is used up; the broker refuses the call either way.
func (e *Engine) Decide(ctx context.Context, req broker.Request) (broker.Decision, error) {
	gp, _, tp, why := e.lookupIn(req.Node, req.Caller, req.Tool)
	if tp == nil {
		return broker.Decision{Effect: broker.EffectDeny, Rule: "default", Reason: why, PolicyVersion: e.version}, nil
	}
	// Activations are reused: evaluating conditions builds no per-call maps
	// and, with a warm pool, allocates no activation either.
	act := e.acts.Get().(*activation)
	*act = activation{req: req, args: tp.args, scope: gp.scope, ann: tp.ann}
	dec, err := e.decide(ctx, tp, act)
	*act = activation{}
	e.acts.Put(act)
	if err != nil {
		return broker.Decision{}, err
	}
	if dec.Effect != broker.EffectDeny && len(tp.budgets) > 0 {
		if err := e.charge(ctx, tp, &req); err != nil {
			return broker.Decision{}, err
		}
	}
	return dec, nil
}

func (e *Engine) decide(ctx context.Context, tp *toolPolicy, act *activation) (broker.Decision, error) {
	for _, set := range [...][]*ruleRef{tp.deny, tp.approve, tp.allow} {
		for _, r := range set {
			ok, err := e.eval(ctx, r, act)
			if err != nil {
				// The CEL error can quote argument values, so it is not
				// logged here; it travels as the refusal's private cause
				// and `toolgate policy explain` shows it.
				e.log.Warn("policy condition could not be evaluated; refusing the call", zap.String("rule", r.path), zap.String("tool", act.req.Tool.Name))
				return broker.Decision{}, broker.Wrap(broker.CodeForbidden, err, fmt.Sprintf(
					"policy rule %s could not be evaluated for this call, so the call is refused; `toolgate policy explain` shows why", r.path))
			}
			if ok {
				return e.decision(r), nil
			}
		}
	}
	return broker.Decision{Effect: broker.EffectAllow, Rule: tp.allowRule, PolicyVersion: e.version}, nil
}

func (e *Engine) decision(r *ruleRef) broker.Decision {
	d := broker.Decision{Effect: r.effect, Rule: r.path, Reason: r.rule.Reason, PolicyVersion: e.version, RuleVersion: r.version}
	if r.effect == broker.EffectApprove {
		d.Approvers = r.rule.Approvers
		d.MinApprovals = r.rule.MinApprovals
		if d.MinApprovals == 0 {
			d.MinApprovals = 1
		}
		d.Timeout = r.rule.Timeout.D()
	}
	return d
}

// eval runs one condition; a rule without one always matches.
func (e *Engine) eval(ctx context.Context, r *ruleRef, act *activation) (bool, error) {
	if r.prg == nil {
		return true, nil
	}
	// CEL checks the context only inside comprehensions, so a condition
	// without one is evaluated without the per-call cancellation wrapper
	// ContextEval builds; the context is still checked before it runs.
	var out ref.Val
	var err error
	if r.loops {
		out, _, err = r.prg.ContextEval(ctx, act)
	} else if err = ctx.Err(); err == nil {
		out, _, err = r.prg.Eval(act)
	}
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// now returns the request time; budgets need one.
func requestTime(req *broker.Request) (time.Time, error) {
	if req.Now.IsZero() {
		return time.Time{}, broker.Errorf(broker.CodeInternal, "the request carries no time, so rate budgets cannot be counted")
	}
	return req.Now, nil
}
