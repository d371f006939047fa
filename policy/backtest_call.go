package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/toolgate/toolgate/broker"
)

// call decides a recorded tool call under the candidate, in the broker's
// order: the tool exists and is visible, binds, conditions, budgets.
func (bt *backtester) call(ctx context.Context, ev broker.Event) outcome {
	cand := bt.cfg.Candidate
	tool, ok := cand.catalog.Lookup(ev.Tool)
	if !ok {
		return known(Verdict{Decision: string(broker.EffectDeny), Code: string(broker.CodeUnknownTool)},
			"the candidate has no tool named %q", ev.Tool)
	}
	c := callerOf(ev)
	gp, np, tp, why := cand.lookup(c, tool)
	if tp == nil {
		return known(Verdict{Decision: string(broker.EffectDeny), Rule: "default"}, "%s", why)
	}
	if tp.denied {
		return known(Verdict{Decision: string(broker.EffectDeny), Rule: "default"},
			"a deny rule without a condition (%s) hides tool %s from this node", firstUnconditional(tp.deny), tool.Name)
	}
	if bs := np.binds[tool.Name]; len(bs) > 0 && ev.AuthMethod != string(broker.AuthGrant) {
		return known(Verdict{Decision: string(broker.EffectDeny), Rule: bs[0].path, Code: string(broker.CodeForbidden)},
			"argument %q is bound to %s, so the call needs a grant token, and it was made with %s", bs[0].arg, bs[0].source, ev.AuthMethod)
	}
	av := readArgs(ev)
	in, err := callInputs(ev, tool, gp, tp, av)
	if err != nil {
		return known(Verdict{Decision: VerdictError}, "the record cannot be evaluated: %v", err)
	}
	rules := bt.callRules(ctx, cand, gp, tp, in)
	out := walk(rules, bt.callFacts(ctx, ev, c, gp, tp, av), func() outcome {
		return known(Verdict{Decision: string(broker.EffectAllow), Rule: tp.allowRule},
			"%s allows the tool and no rule matches", tp.allowRule)
	})
	return bt.budget(ev, c, tp, out)
}

func firstUnconditional(rs []*ruleRef) string {
	for _, r := range rs {
		if r.prg == nil {
			return r.path
		}
	}
	return "a deny rule"
}

// callerOf is the caller a record names. Its groups, email and grant scope
// are not recorded; callInputs marks them unknown.
func callerOf(ev broker.Event) broker.Caller {
	return broker.Caller{
		Principal: broker.Principal{Subject: ev.Principal, Method: broker.AuthMethod(ev.AuthMethod), TokenID: ev.TokenID},
		Context:   broker.Context{Graph: ev.Graph, Node: ev.Node, Run: ev.Run, Thread: ev.Thread, ToolCallID: ev.ToolCallID},
	}
}

// callRules lists the rules that apply to a tool in precedence order, each
// evaluated over in.
func (bt *backtester) callRules(ctx context.Context, e *Engine, gp *graphPolicy, tp *toolPolicy, in *inputs) []condRule {
	var out []condRule
	for _, set := range [...][]*ruleRef{tp.deny, tp.approve, tp.allow} {
		for _, r := range set {
			out = append(out, in.rule(ctx, r.path, r.rule, r.effect, func() (cel.Program, error) { return bt.callProgram(e, gp, tp, r) }))
		}
	}
	return out
}

// callProgram compiles a rule's condition for one tool with partial
// evaluation, in the same environment the engine compiled it in.
func (bt *backtester) callProgram(e *Engine, gp *graphPolicy, tp *toolPolicy, r *ruleRef) (cel.Program, error) {
	k := progKey{e: e, path: r.path, tool: tp.tool.Name}
	if p, ok := bt.progs[k]; ok {
		return p, nil
	}
	ek := progKey{e: e, path: gp.path, tool: tp.tool.Name}
	env, ok := bt.envs[ek]
	if !ok {
		base, err := baseEnv(gp.scope)
		if err != nil {
			return nil, err
		}
		if env, err = base.Extend(propVars("args", tp.args)...); err != nil {
			return nil, err
		}
		bt.envs[ek] = env
	}
	return bt.partialProgram(k, env, r.rule.When)
}

// partialProgram compiles a condition for partial evaluation, under the
// engine's cost limit, and caches it under k.
func (bt *backtester) partialProgram(k progKey, env *cel.Env, when string) (cel.Program, error) {
	ast, iss := env.Compile(when)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptPartialEval), cel.CostLimit(k.e.costLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, err
	}
	bt.progs[k] = prg
	return prg, nil
}

// callFacts reads what the recorded decision proves about the baseline's
// conditions, when the baseline made it and types the tool as the
// candidate does.
func (bt *backtester) callFacts(ctx context.Context, ev broker.Event, c broker.Caller, gp *graphPolicy, tp *toolPolicy, av argsView) map[string]bool {
	b := bt.cfg.Baseline
	if b == nil || ev.PolicyVersion == "" || ev.PolicyVersion != b.version {
		return nil
	}
	btool, ok := b.catalog.Lookup(ev.Tool)
	if !ok {
		return nil
	}
	bgp, _, btp, _ := b.lookup(c, btool)
	if btp == nil || !maps.Equal(bgp.scope, gp.scope) || !maps.Equal(btp.args, tp.args) ||
		!reflect.DeepEqual(btp.ann, tp.ann) || btool.Target != tp.tool.Target {
		return nil
	}
	in, err := callInputs(ev, btool, bgp, btp, av)
	if err != nil {
		return nil
	}
	return factsFrom(bt.callRules(ctx, b, bgp, btp, in), ev.Rule, btp.allowRule)
}

// argsView is what a record holds of a call's arguments.
type argsView struct {
	values map[string]any
	// masked lists the top-level arguments that hold a masked value.
	masked []string
	// all is set when no argument can be trusted; why says why.
	all bool
	why string
}

// The marks masking leaves: "[REDACTED:<kind>]", and a card's digits as
// stars but the last four (a card has 13 to 19 digits).
var cardMark = regexp.MustCompile(`\*{9,}[0-9]{4}`)

const redactedMark = "[REDACTED"

// readArgs reads a record's arguments. When their canonical encoding
// hashes to the recorded args_hash (taken before masking), masking changed
// nothing and every value is exact. Otherwise the arguments holding a mask
// mark are unknown; masking changes values only by leaving such a mark, so
// the others are exact. If no argument holds one, none is trusted.
func readArgs(ev broker.Event) argsView {
	if len(ev.Args) == 0 {
		return argsView{values: map[string]any{}, all: true, why: "is not in the record (the call was refused before its arguments were read)"}
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Args))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return argsView{values: map[string]any{}, all: true, why: "cannot be read from the record"}
	}
	if canon, err := json.Marshal(m); err == nil && ev.ArgsHash != "" {
		sum := sha256.Sum256(canon)
		if hex.EncodeToString(sum[:]) == ev.ArgsHash {
			return argsView{values: m}
		}
	}
	av := argsView{values: m}
	for k, v := range m {
		if holdsMark(k) {
			return argsView{values: m, all: true, why: "is masked in the record (an argument name was masked)"}
		}
		if holdsMark(v) {
			av.masked = append(av.masked, k)
		}
	}
	if len(av.masked) == 0 {
		return argsView{values: m, all: true, why: "does not match the recorded args_hash"}
	}
	sort.Strings(av.masked)
	return av
}

// holdsMark reports whether a decoded JSON value holds a mask mark.
func holdsMark(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, redactedMark) || cardMark.MatchString(x)
	case map[string]any:
		for k, e := range x {
			if holdsMark(k) || holdsMark(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if holdsMark(e) {
				return true
			}
		}
	}
	return false
}

// callInputs builds what a tool condition reads from a record: the
// recorded caller, arguments and time, with the masked arguments, the
// caller's groups and email (not recorded) and a grant's scope (not
// recorded) unknown. A caller without a grant has no scope, exactly.
func callInputs(ev broker.Event, tool *broker.Tool, gp *graphPolicy, tp *toolPolicy, av argsView) (*inputs, error) {
	req := broker.Request{Caller: callerOf(ev), Tool: tool, Args: av.values, Now: ev.Time}
	act := &activation{req: req, args: tp.args, scope: gp.scope, ann: tp.ann}
	in := &inputs{why: map[string]string{}}
	var pats []*cel.AttributePatternType
	if av.all {
		in.why["args"] = av.why
		pats = unknownPattern(pats, "args", "")
		for _, f := range slices.Sorted(maps.Keys(tp.args)) {
			pats = append(pats, cel.AttributePattern("args."+f))
		}
	}
	for _, f := range av.masked {
		in.why[trailName("args", f)] = "is masked in the record"
		pats = unknownPattern(pats, "args", f)
	}
	if ev.AuthMethod == string(broker.AuthGrant) {
		in.why["scope"] = "is not recorded (it is the grant's scope)"
		pats = unknownPattern(pats, "scope", "")
		for _, f := range slices.Sorted(maps.Keys(gp.scope)) {
			pats = append(pats, cel.AttributePattern("scope."+f))
		}
	}
	for _, v := range []string{"caller.groups", "caller.email"} {
		in.why[v] = "is not recorded"
		pats = append(pats, cel.AttributePattern(v))
	}
	vars, err := cel.PartialVars(act, pats...)
	if err != nil {
		return nil, err
	}
	in.vars = vars
	return in, nil
}

// trailName is how CEL names root.field in an unknown value.
func trailName(root, field string) string {
	return types.QualifyAttribute(types.NewAttributeTrail(root), field).String()
}
