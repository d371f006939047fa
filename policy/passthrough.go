package policy

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

var _ broker.PassthroughDecider = (*Engine)(nil)

// passPolicy is one node's compiled passthrough policy for one target
// (graphs.<g>.nodes.<n>.passthrough.<target>).
type passPolicy struct {
	path       string
	statements map[string]bool
	tables     []string
	methods    map[string]bool
	paths      []string
	// functions extend the classifier's built-in list of functions.
	functions map[string]bool
	// deny, approve and allow are the rules, in configuration order.
	deny, approve, allow []*passRule
	// decisions caches decisions when no rule reads statement.text: the
	// decision is then a function of the caller and the classification.
	decisions *decisionCache
	// role is the operator-declared database login (passgrant.go).
	role *config.PassthroughRole
}

// decisionCacheSize bounds a decisionCache; a full cache is emptied.
const decisionCacheSize = 4096

// decisionCache remembers passthrough decisions by decisionKey.
type decisionCache struct {
	mu sync.RWMutex
	m  map[string]broker.Decision
}

// statementRef is a reference to the statement variable in a condition.
var statementRef = regexp.MustCompile(`\bstatement\b(\.[A-Za-z_][A-Za-z0-9_]*)?`)

// readsOnlyFields reports whether a condition reads the statement only
// through plain field selections other than text (statement.class, ...).
// Anything else (statement.text, statement['text'], the map as a whole)
// makes the answer false, and the node's decisions are not cached.
func readsOnlyFields(cond string) bool {
	for _, m := range statementRef.FindAllStringSubmatch(cond, -1) {
		if m[1] == "" || m[1] == ".text" {
			return false
		}
	}
	return true
}

// decisionKey is every input of DecideStatement a text-free rule can
// read: the caller variables, the target and the classification.
func decisionKey(req broker.StatementRequest) string {
	st := req.Statement
	var b strings.Builder
	for _, s := range [...]string{req.Caller.Principal.Subject, req.Caller.Graph, req.Caller.Node, req.Caller.Run, req.Target,
		st.Kind, st.Class, st.Command, st.Method, st.Path} {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, list := range [...][]string{st.Tables, st.Functions} {
		b.WriteString(strconv.Itoa(len(list)))
		b.WriteByte('[')
		for _, s := range list {
			b.WriteString(strconv.Itoa(len(s)))
			b.WriteByte(':')
			b.WriteString(s)
		}
	}
	return b.String()
}

type passRule struct {
	path   string
	rule   config.Rule
	effect broker.Effect
	prg    cel.Program
}

// passEnv is the CEL environment of passthrough rules: the statement as
// the proxy classified it, and who sends it.
func passEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("statement", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("caller.principal", cel.StringType),
		cel.Variable("graph", cel.StringType),
		cel.Variable("node", cel.StringType),
		cel.Variable("run", cel.StringType),
		cel.Variable("target", cel.StringType),
	)
}

// passthrough compiles every node's passthrough entries, keyed by the
// node's policy and the target name.
func (l *loader) passthrough(e *Engine, graphs map[string]config.Graph) map[*nodePolicy]map[string]*passPolicy {
	out := map[*nodePolicy]map[string]*passPolicy{}
	env, err := passEnv()
	if err != nil {
		l.problem("graphs", "passthrough CEL environment: %v", err)
		return out
	}
	for gname, gp := range e.graphs {
		nodes := make([]*nodePolicy, 0, len(gp.exact)+len(gp.globs))
		for _, np := range gp.exact {
			nodes = append(nodes, np)
		}
		nodes = append(nodes, gp.globs...)
		for _, np := range nodes {
			node, ok := graphs[gname].Nodes[np.key]
			if !ok || len(node.Passthrough) == 0 {
				continue
			}
			m := map[string]*passPolicy{}
			for target, pc := range node.Passthrough {
				m[target] = l.passPolicy(env, np.path+".passthrough."+target, pc)
			}
			out[np] = m
		}
	}
	return out
}

func (l *loader) passPolicy(env *cel.Env, p string, pc config.PassthroughPolicy) *passPolicy {
	pp := &passPolicy{path: p, statements: map[string]bool{}, methods: map[string]bool{}, functions: map[string]bool{}, role: pc.Role}
	for _, s := range pc.Statements {
		switch s {
		case broker.ClassRead, broker.ClassWrite, broker.ClassDDL:
			pp.statements[s] = true
		default:
			l.problem(p+".statements", "unknown statement class %q; use read, write or ddl", s)
		}
	}
	for i, g := range pc.Tables {
		if _, err := path.Match(g, ""); err != nil {
			l.problem(fmt.Sprintf("%s.tables[%d]", p, i), "bad glob %q: %v", g, err)
		}
		pp.tables = append(pp.tables, strings.ToLower(g))
	}
	for i, f := range pc.Functions {
		if why := checkFunction(f); why != "" {
			l.problem(fmt.Sprintf("%s.functions[%d]", p, i), "%s", why)
			continue
		}
		pp.functions[f] = true
	}
	for _, m := range pc.Methods {
		pp.methods[strings.ToUpper(m)] = true
	}
	for i, g := range pc.Paths {
		if _, err := path.Match(g, ""); err != nil || !strings.HasPrefix(g, "/") {
			l.problem(fmt.Sprintf("%s.paths[%d]", p, i), "bad path glob %q: it must start with / and be a valid glob", g)
		}
		pp.paths = append(pp.paths, g)
	}
	cacheable := true
	for i, r := range pc.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", p, i)
		if !readsOnlyFields(r.When) {
			cacheable = false
		}
		pr := &passRule{path: rp, rule: r, effect: broker.Effect(r.Effect)}
		switch pr.effect {
		case broker.EffectAllow, broker.EffectApprove, broker.EffectDeny:
		default:
			l.problem(rp+".effect", "unknown effect %q; use allow, approve or deny", r.Effect)
			continue
		}
		if r.When != "" {
			ast, iss := env.Compile(r.When)
			if iss.Err() != nil {
				l.problem(rp+".when", "%v", iss.Err())
				continue
			}
			if ast.OutputType() != cel.BoolType {
				l.problem(rp+".when", "the condition must be a bool, not %s", ast.OutputType())
				continue
			}
			prg, err := env.Program(ast, cel.CostLimit(l.cfg.CostLimit))
			if err != nil {
				l.problem(rp+".when", "%v", err)
				continue
			}
			pr.prg = prg
		}
		switch pr.effect {
		case broker.EffectDeny:
			pp.deny = append(pp.deny, pr)
		case broker.EffectApprove:
			pp.approve = append(pp.approve, pr)
		default:
			pp.allow = append(pp.allow, pr)
		}
	}
	if cacheable {
		pp.decisions = &decisionCache{m: map[string]broker.Decision{}}
	}
	return pp
}

// passFor finds the caller's passthrough policy for a target.
func (e *Engine) passFor(c broker.Caller, target string) *passPolicy {
	if c.Graph == "" {
		return nil
	}
	_, np := e.resolve(c)
	if np == nil {
		return nil
	}
	return e.pass[np][target]
}

// MayConnect reports whether the caller's node has a passthrough entry for
// the target.
func (e *Engine) MayConnect(c broker.Caller, target string) bool {
	return e.passFor(c, target) != nil
}

// DecideStatement decides one passthrough statement. Rules come first
// (deny, then approve, then allow, each in configuration order); an allow
// rule that matches admits the statement even past the statements, tables
// and functions checks, which is the only way to admit a statement of
// class "other" or one that calls a function off the lists. Without a
// matching rule, the statement must be of an allowed class, name only
// allowed tables and call only functions on the classifier's built-in
// list or the entry's functions (which may not name a function known to
// have side effects); an HTTP request must use an allowed method and path.
func (e *Engine) DecideStatement(ctx context.Context, req broker.StatementRequest) (broker.Decision, error) {
	pp := e.passFor(req.Caller, req.Target)
	if pp == nil {
		return broker.Decision{Effect: broker.EffectDeny, Rule: "default", PolicyVersion: e.version,
			Reason: fmt.Sprintf("node %q has no passthrough entry for target %q", req.Caller.Node, req.Target)}, nil
	}
	var key string
	if pp.decisions != nil {
		key = decisionKey(req)
		pp.decisions.mu.RLock()
		d, ok := pp.decisions.m[key]
		pp.decisions.mu.RUnlock()
		if ok {
			d.Approvers = slices.Clone(d.Approvers)
			return d, nil
		}
	}
	d, err := e.decideStatement(ctx, pp, req)
	if err == nil && pp.decisions != nil {
		pp.decisions.mu.Lock()
		if len(pp.decisions.m) >= decisionCacheSize {
			clear(pp.decisions.m)
		}
		pp.decisions.m[key] = d
		pp.decisions.mu.Unlock()
	}
	return d, err
}

func (e *Engine) decideStatement(ctx context.Context, pp *passPolicy, req broker.StatementRequest) (broker.Decision, error) {
	act := passActivation(req)
	for _, set := range [...][]*passRule{pp.deny, pp.approve, pp.allow} {
		for _, r := range set {
			ok, err := evalPass(ctx, r, act)
			if err != nil {
				e.log.Warn("passthrough condition could not be evaluated; refusing the statement", zap.String("rule", r.path))
				return broker.Decision{}, broker.Wrap(broker.CodeForbidden, err, fmt.Sprintf("the condition of %s could not be evaluated, so the statement is refused", r.path))
			}
			if !ok {
				continue
			}
			d := broker.Decision{Effect: r.effect, Rule: r.path, Reason: r.rule.Reason, PolicyVersion: e.version}
			if r.effect == broker.EffectApprove {
				d.Approvers, d.MinApprovals, d.Timeout = r.rule.Approvers, r.rule.MinApprovals, r.rule.Timeout.D()
				if d.MinApprovals == 0 {
					d.MinApprovals = 1
				}
			}
			return d, nil
		}
	}
	if why := pp.refuse(req.Statement); why != "" {
		return broker.Decision{Effect: broker.EffectDeny, Rule: pp.path, Reason: why, PolicyVersion: e.version}, nil
	}
	return broker.Decision{Effect: broker.EffectAllow, Rule: pp.path, PolicyVersion: e.version}, nil
}

// refuse returns why the statement falls outside the entry's lists, "" when
// it is inside them.
func (pp *passPolicy) refuse(st broker.Statement) string {
	if st.Kind == broker.KindHTTP {
		if !pp.methods[st.Method] && !pp.methods["*"] {
			return fmt.Sprintf("method %s is not in methods %v", st.Method, sortedSet(pp.methods))
		}
		if !globAny(pp.paths, st.Path) {
			return fmt.Sprintf("path %s matches none of paths %v", st.Path, pp.paths)
		}
		return ""
	}
	if why := pp.refuseFunctions(st.Functions); why != "" {
		return why
	}
	if !pp.statements[st.Class] {
		return fmt.Sprintf("%s statements are not in statements %v", st.Class, sortedSet(pp.statements))
	}
	if len(pp.tables) > 0 {
		for _, t := range st.Tables {
			if !tableAllowed(pp.tables, t) {
				return fmt.Sprintf("table %s matches none of tables %v", t, pp.tables)
			}
		}
	}
	return ""
}

// refuseFunctions returns why calls off the lists are refused, naming
// them, or "".
func (pp *passPolicy) refuseFunctions(funcs []string) string {
	var names, marks []string
	for _, f := range funcs {
		switch {
		case pp.functions[f]:
		case functionName(f) == "":
			names = append(names, f)
		default:
			marks = append(marks, f) // "copy file or program"
		}
	}
	if len(marks) > 0 {
		return fmt.Sprintf("it uses %s, which only an explicit allow rule admits", strings.Join(marks, ", "))
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("it calls %s, which toolgate does not know to be free of side effects and of reads outside the grant "+
		"(add a function that is to %s.functions, or admit the statement with an allow rule)", strings.Join(names, ", "), pp.path)
}

// tableAllowed matches a table name against globs; a name in schema public
// also matches by its bare name.
func tableAllowed(globs []string, table string) bool {
	if globAny(globs, table) {
		return true
	}
	if bare, ok := strings.CutPrefix(table, "public."); ok {
		return globAny(globs, bare)
	}
	return false
}

func globAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func passActivation(req broker.StatementRequest) map[string]any {
	st := req.Statement
	tables := st.Tables
	if tables == nil {
		tables = []string{}
	}
	funcs := st.Functions
	if funcs == nil {
		funcs = []string{}
	}
	return map[string]any{
		"statement": map[string]any{
			"kind": st.Kind, "class": st.Class, "command": st.Command, "tables": tables,
			"functions": funcs, "text": st.Text, "method": st.Method, "path": st.Path,
		},
		"caller.principal": req.Caller.Principal.Subject,
		"graph":            req.Caller.Graph,
		"node":             req.Caller.Node,
		"run":              req.Caller.Run,
		"target":           req.Target,
	}
}

func evalPass(ctx context.Context, r *passRule, act map[string]any) (bool, error) {
	if r.prg == nil {
		return true, nil
	}
	out, _, err := r.prg.ContextEval(ctx, act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}
