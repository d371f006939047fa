package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// Outcome is what became of one rule when a call was explained.
type Outcome string

// The outcomes.
const (
	Matched    Outcome = "matched"
	NotMatched Outcome = "not matched"
	Errored    Outcome = "error"
)

// Step is one rule or allow entry considered for a call.
type Step struct {
	// Rule is the config path of the rule or allow entry.
	Rule    string
	Effect  broker.Effect
	Tool    string
	When    string
	Outcome Outcome
	// Why says why the rule matched, did not or failed.
	Why string
}

// Explanation is a decision with every rule that was considered.
type Explanation struct {
	Graph, Node, Tool string
	// NodeEntry is the config path of the node entry the caller's node
	// path resolved to, "" when none did.
	NodeEntry string
	Decision  broker.Decision
	// Err is set when policy could not answer; the broker would refuse.
	Err     error
	Steps   []Step
	Budgets []string
}

// Explain decides a call like Decide and reports every rule it considered.
// It evaluates conditions but calls nothing and charges no budget.
func (e *Engine) Explain(req broker.Request) Explanation {
	x := Explanation{Graph: req.Caller.Graph, Node: req.Caller.Node}
	if req.Tool != nil {
		x.Tool = req.Tool.Name
	}
	gp, np, tp, why := e.lookup(req.Caller, req.Tool)
	if np != nil {
		x.NodeEntry = np.path
		for i, a := range allowEntries(np) {
			st := Step{Rule: fmt.Sprintf("%s.allow[%d]", np.path, i), Effect: broker.EffectAllow, Tool: a, Outcome: NotMatched, Why: "tool does not match"}
			if ok, _ := path.Match(a, x.Tool); ok {
				st.Outcome, st.Why = Matched, "tool matches"
			}
			x.Steps = append(x.Steps, st)
		}
	}
	if tp == nil {
		x.Decision = broker.Decision{Effect: broker.EffectDeny, Rule: "default", Reason: why, PolicyVersion: e.version}
		return x
	}
	act := activation{req: req, args: tp.args, scope: gp.scope, ann: tp.ann}
	refs := map[string]*ruleRef{}
	for _, set := range [...][]*ruleRef{tp.deny, tp.approve, tp.allow} {
		for _, r := range set {
			refs[r.path] = r
		}
	}
	for _, d := range append(append([]*ruleDecl{}, gp.rules...), np.rules...) {
		st := Step{Rule: d.path, Effect: d.effect, Tool: d.rule.Tool, When: d.rule.When}
		r := refs[d.path]
		if r == nil {
			st.Outcome, st.Why = NotMatched, fmt.Sprintf("tool %q does not match %q", x.Tool, d.tool)
			x.Steps = append(x.Steps, st)
			continue
		}
		ok, err := e.eval(context.Background(), r, &act)
		switch {
		case err != nil:
			st.Outcome, st.Why = Errored, err.Error()
		case ok && r.prg == nil:
			st.Outcome, st.Why = Matched, "tool matches and the rule has no condition"
		case ok:
			st.Outcome, st.Why = Matched, "condition is true"
		default:
			st.Outcome, st.Why = NotMatched, "condition is false"
		}
		x.Steps = append(x.Steps, st)
	}
	// The decision comes from the same code as Decide, so the two agree.
	x.Decision, x.Err = e.decide(context.Background(), tp, &act)
	for _, b := range tp.budgets {
		_, label := b.key(req.Caller, req.Now)
		x.Budgets = append(x.Budgets, fmt.Sprintf("%s (%s)", label, b.path))
	}
	return x
}

// allowEntries returns a node's allow list as configured.
func allowEntries(np *nodePolicy) []string {
	return np.allowList
}

// WriteText prints the explanation for a person.
func (x Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "call:     graph %q node %q tool %q\n", x.Graph, x.Node, x.Tool)
	if x.NodeEntry != "" {
		fmt.Fprintf(&b, "node:     %s\n", x.NodeEntry)
	} else {
		b.WriteString("node:     (no matching node entry)\n")
	}
	switch {
	case x.Err != nil:
		fmt.Fprintf(&b, "decision: refused: %v\n", x.Err)
		if c := errors.Unwrap(x.Err); c != nil {
			fmt.Fprintf(&b, "cause:    %v\n", c)
		}
	default:
		fmt.Fprintf(&b, "decision: %s by %s\n", x.Decision.Effect, x.Decision.Rule)
		if x.Decision.Reason != "" {
			fmt.Fprintf(&b, "reason:   %s\n", x.Decision.Reason)
		}
		if x.Decision.Effect == broker.EffectApprove {
			fmt.Fprintf(&b, "approval: %d of %s", x.Decision.MinApprovals, strings.Join(x.Decision.Approvers, ", "))
			if x.Decision.Timeout > 0 {
				fmt.Fprintf(&b, ", timeout %s", x.Decision.Timeout)
			}
			b.WriteString("\n")
		}
	}
	if x.Decision.PolicyVersion != "" {
		fmt.Fprintf(&b, "version:  %s\n", x.Decision.PolicyVersion)
	}
	if len(x.Steps) > 0 {
		b.WriteString("considered:\n")
	}
	for _, s := range x.Steps {
		fmt.Fprintf(&b, "  [%s] %s: %s", s.Outcome, s.Rule, s.Effect)
		if s.Tool != "" {
			fmt.Fprintf(&b, " tool %s", s.Tool)
		}
		if s.When != "" {
			fmt.Fprintf(&b, " when %s", s.When)
		}
		fmt.Fprintf(&b, "\n      %s\n", s.Why)
	}
	if len(x.Budgets) > 0 {
		b.WriteString("budgets (not charged by explain):\n")
		for _, l := range x.Budgets {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
