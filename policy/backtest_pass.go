package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"cel.dev/cel-go/cel"

	"github.com/toolgate/toolgate/broker"
)

// statement decides a recorded passthrough statement under the candidate's
// passthrough policy. The record holds the statement as the proxy
// classified it; its text (an HTTP request's path) is recorded masked.
func (bt *backtester) statement(ctx context.Context, ev broker.Event) outcome {
	if ev.Rule == "unclassified" {
		return known(Verdict{Decision: string(broker.EffectDeny), Rule: "unclassified"},
			"the proxy could not classify the statement, so every policy refuses it")
	}
	c := callerOf(ev)
	pp := bt.cfg.Candidate.passFor(c, ev.Target)
	if pp == nil {
		return known(Verdict{Decision: string(broker.EffectDeny), Rule: "default"},
			"node %q has no passthrough entry for target %q", ev.Node, ev.Target)
	}
	sv := readStatement(ev)
	in, err := statementInputs(c, ev, sv)
	if err != nil {
		return known(Verdict{Decision: VerdictError}, "the record cannot be evaluated: %v", err)
	}
	return walk(bt.passRules(ctx, bt.cfg.Candidate, pp, in), bt.passFacts(ctx, ev, c, sv), func() outcome {
		return passLists(pp, sv)
	})
}

// statementView is what a record holds of a statement.
type statementView struct {
	st broker.Statement
	// masked is set when masking changed the text (SQL) or path (HTTP).
	masked bool
}

// readStatement reads the classified statement from a record's detail and
// tells whether its text is exact: the recorded args_hash covers the
// statement's arguments before masking.
func readStatement(ev broker.Event) statementView {
	d := ev.Detail
	str := func(k string) string { s, _ := d[k].(string); return s }
	st := broker.Statement{Kind: str("kind"), Class: str("class"), Command: str("command"), Text: str("statement"),
		Method: str("method"), Path: str("path"), Tables: strList(d["tables"]), Functions: strList(d["functions"])}
	args := map[string]any{"statement": st.Text}
	if st.Kind == broker.KindHTTP {
		args = map[string]any{"method": st.Method, "path": st.Path}
	}
	b, _ := json.Marshal(args)
	sum := sha256.Sum256(b)
	return statementView{st: st, masked: hex.EncodeToString(sum[:]) != ev.ArgsHash}
}

func strList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// statementInputs builds what a passthrough condition reads, with the
// masked text or path unknown.
func statementInputs(c broker.Caller, ev broker.Event, sv statementView) (*inputs, error) {
	act := passActivation(broker.StatementRequest{Caller: c, Target: ev.Target, Statement: sv.st, Now: ev.Time})
	in := &inputs{why: map[string]string{}}
	var pats []*cel.AttributePatternType
	if sv.masked {
		field := "text"
		if sv.st.Kind == broker.KindHTTP {
			field = "path"
		}
		in.why["statement."+field] = "is masked in the record"
		pats = append(pats, cel.AttributePattern("statement").QualString(field))
	}
	vars, err := cel.PartialVars(act, pats...)
	if err != nil {
		return nil, err
	}
	in.vars = vars
	return in, nil
}

// passRules lists a passthrough entry's rules in precedence order.
func (bt *backtester) passRules(ctx context.Context, e *Engine, pp *passPolicy, in *inputs) []condRule {
	var out []condRule
	for _, set := range [...][]*passRule{pp.deny, pp.approve, pp.allow} {
		for _, r := range set {
			out = append(out, in.rule(ctx, r.path, r.rule, r.effect, func() (cel.Program, error) { return bt.passProgram(e, r) }))
		}
	}
	return out
}

func (bt *backtester) passProgram(e *Engine, r *passRule) (cel.Program, error) {
	k := progKey{e: e, path: r.path}
	if p, ok := bt.progs[k]; ok {
		return p, nil
	}
	env, err := passEnv()
	if err != nil {
		return nil, err
	}
	return bt.partialProgram(k, env, r.rule.When)
}

// passFacts reads what the recorded decision proves about the baseline's
// passthrough conditions, when the baseline made it.
func (bt *backtester) passFacts(ctx context.Context, ev broker.Event, c broker.Caller, sv statementView) map[string]bool {
	b := bt.cfg.Baseline
	if b == nil || ev.PolicyVersion == "" || ev.PolicyVersion != b.version {
		return nil
	}
	pp := b.passFor(c, ev.Target)
	if pp == nil {
		return nil
	}
	in, err := statementInputs(c, ev, sv)
	if err != nil {
		return nil
	}
	return factsFrom(bt.passRules(ctx, b, pp, in), ev.Rule, pp.path)
}

// passLists decides a statement no rule matched by the entry's lists. A
// masked HTTP path cannot be matched against the path globs.
func passLists(pp *passPolicy, sv statementView) outcome {
	allow := Verdict{Decision: string(broker.EffectAllow), Rule: pp.path}
	deny := Verdict{Decision: string(broker.EffectDeny), Rule: pp.path}
	if sv.masked && sv.st.Kind == broker.KindHTTP {
		if !pp.methods[sv.st.Method] && !pp.methods["*"] {
			return known(deny, "method %s is not in methods %v", sv.st.Method, sortedSet(pp.methods))
		}
		return outcome{verdict: Verdict{Decision: VerdictUnknown}, possible: []Verdict{allow, deny},
			reason: fmt.Sprintf("statement.path is masked in the record, so it cannot be matched against the paths of %s", pp.path)}
	}
	if why := pp.refuse(sv.st); why != "" {
		return known(deny, "%s", why)
	}
	return known(allow, "%s admits the statement and no rule matches", pp.path)
}
