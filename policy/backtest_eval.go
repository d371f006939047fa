package policy

import (
	"context"
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// tri is the value of a condition evaluated over a record: it may depend
// on a value the record does not hold.
type tri uint8

const (
	isFalse tri = iota
	isTrue
	isUnknown
	isError
)

// outcome is the candidate's answer for one record.
type outcome struct {
	// verdict is the decision; its Decision is VerdictUnknown when the
	// record does not settle it.
	verdict Verdict
	reason  string
	// possible lists what an unknown outcome could be, in rule order.
	possible []Verdict
}

func known(v Verdict, format string, args ...any) outcome {
	return outcome{verdict: v, reason: fmt.Sprintf(format, args...)}
}

// condRule is one rule in the order precedence applies it.
type condRule struct {
	path, when string
	effect     broker.Effect
	// reason is the rule's configured reason.
	reason string
	// eval evaluates the condition over the record and names the inputs
	// an unknown result depends on; nil for a rule without a condition.
	eval func() (tri, []string)
}

// walk applies rules the way Decide does (the first matching rule decides,
// an error refuses, rest decides when none matches), with three-valued
// conditions: a rule whose condition is unknown might have decided, so
// every later answer is only possible. facts settles conditions by their
// text (see factsFrom).
func walk(rules []condRule, facts map[string]bool, rest func() outcome) outcome {
	var open []condRule
	var reads []string
	for _, r := range rules {
		v, in := isTrue, []string(nil)
		if r.eval != nil {
			v, in = r.eval()
		}
		if f, ok := facts[r.when]; ok && v == isUnknown {
			v = isFalse
			if f {
				v = isTrue
			}
		}
		switch v {
		case isFalse:
			continue
		case isUnknown:
			open = append(open, r)
			reads = appendNew(reads, in...)
			continue
		case isError:
			return settle(open, reads, known(Verdict{Decision: VerdictError, Rule: r.path},
				"the condition of %s cannot be evaluated for this call, so the call would be refused", r.path))
		}
		return settle(open, reads, matched(r))
	}
	return settle(open, reads, rest())
}

func matched(r condRule) outcome {
	o := known(Verdict{Decision: string(r.effect), Rule: r.path}, "the condition of %s holds", r.path)
	if r.eval == nil {
		o.reason = fmt.Sprintf("%s applies to every call of the tool", r.path)
	}
	if r.reason != "" {
		o.reason += " (" + r.reason + ")"
	}
	return o
}

// settle turns the final answer into an unknown one when a rule before it
// could not be evaluated.
func settle(open []condRule, reads []string, final outcome) outcome {
	if len(open) == 0 {
		return final
	}
	out := outcome{verdict: Verdict{Decision: VerdictUnknown}}
	paths := make([]string, 0, len(open))
	for _, r := range open {
		paths = append(paths, r.path)
		out.possible = appendVerdict(out.possible, Verdict{Decision: string(r.effect), Rule: r.path})
	}
	tail := final.possible
	if final.verdict.Decision != VerdictUnknown {
		tail = []Verdict{final.verdict}
	}
	for _, v := range tail {
		out.possible = appendVerdict(out.possible, v)
	}
	out.reason = fmt.Sprintf("%s cannot be decided from the record: %s; it would be %s",
		strings.Join(paths, ", "), strings.Join(reads, ", "), possibleText(out.possible))
	if final.verdict.Decision == VerdictUnknown && final.reason != "" {
		out.reason += "; " + final.reason
	}
	return out
}

func possibleText(vs []Verdict) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		s := v.Decision
		if v.Rule != "" {
			s += " by " + v.Rule
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " or ")
}

func appendVerdict(vs []Verdict, v Verdict) []Verdict {
	for _, x := range vs {
		if x == v {
			return vs
		}
	}
	return append(vs, v)
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, x := range list {
			found = found || x == it
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

// factsFrom reads what a recorded decision proves about the conditions of
// the policy that made it: every rule before the deciding one did not
// match, and the deciding one did. recorded is the recorded rule and
// fallback the rule that decides when none matches. The facts are keyed by
// condition text, which decides the same way for the same inputs and
// types. A record the rules contradict (a rule before the deciding one
// matches here) proves nothing, and factsFrom returns nil.
func factsFrom(rules []condRule, recorded, fallback string) map[string]bool {
	facts := map[string]bool{}
	set := func(when string, v bool) bool {
		if old, ok := facts[when]; ok && old != v {
			return false
		}
		facts[when] = v
		return true
	}
	for _, r := range rules {
		v := isTrue
		if r.eval != nil {
			v, _ = r.eval()
		}
		if r.path == recorded {
			if v == isFalse || v == isError || (r.when != "" && !set(r.when, true)) {
				return nil
			}
			return facts
		}
		if v == isTrue || v == isError || r.when == "" || !set(r.when, false) {
			return nil
		}
	}
	if recorded != "" && recorded == fallback {
		return facts
	}
	return nil
}

// inputs is what a record lets a condition read: the activation, with
// every value the record does not hold exactly marked unknown.
type inputs struct {
	vars cel.PartialActivation
	// why says, by input name, why the record does not hold it.
	why map[string]string
}

// unknownPattern adds the patterns that make name unknown: the variable
// "root.field" CEL declares for a typed property, and root["field"].
func unknownPattern(pats []*cel.AttributePatternType, root, field string) []*cel.AttributePatternType {
	if field == "" {
		return append(pats, cel.AttributePattern(root))
	}
	return append(pats, cel.AttributePattern(root).QualString(field), cel.AttributePattern(root+"."+field))
}

// describe names an unknown input for a reason, with why.
func (in *inputs) describe(name string) string {
	if w, ok := in.why[name]; ok {
		return name + " " + w
	}
	root, _, _ := strings.Cut(name, ".")
	if w, ok := in.why[root]; ok {
		return name + " " + w
	}
	return name + " is not in the record"
}

// rule is a configured rule as walk sees it, its condition evaluated over
// in; compile gives the condition's program for partial evaluation.
func (in *inputs) rule(ctx context.Context, path string, r config.Rule, effect broker.Effect, compile func() (cel.Program, error)) condRule {
	cr := condRule{path: path, when: r.When, effect: effect, reason: r.Reason}
	if r.When != "" {
		cr.eval = func() (tri, []string) {
			prg, err := compile()
			if err != nil {
				return isError, nil
			}
			return in.eval(ctx, prg)
		}
	}
	return cr
}

// eval runs a program compiled for partial evaluation over in.
func (in *inputs) eval(ctx context.Context, prg cel.Program) (tri, []string) {
	out, _, err := prg.ContextEval(ctx, in.vars)
	if u, ok := out.(*types.Unknown); ok {
		var names []string
		for _, id := range u.IDs() {
			trails, _ := u.GetAttributeTrails(id)
			for _, t := range trails {
				names = appendNew(names, in.describe(t.String()))
			}
		}
		return isUnknown, names
	}
	if err != nil {
		return isError, nil
	}
	b, ok := out.(types.Bool)
	switch {
	case !ok:
		return isError, nil
	case bool(b):
		return isTrue, nil
	}
	return isFalse, nil
}
