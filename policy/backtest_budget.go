package policy

import (
	"fmt"

	"github.com/toolgate/toolgate/broker"
)

// budgetCount is what a backtest knows of one budget counter: at least
// sure, at most maybe (no bound when open: an admitted call whose rows the
// record does not hold).
type budgetCount struct {
	sure, maybe int64
	open        bool
}

func (bt *backtester) count(key string) *budgetCount {
	n := bt.budgets[key]
	if n == nil {
		n = &budgetCount{}
		bt.budgets[key] = n
	}
	return n
}

func admits(v Verdict) bool {
	return v.Decision == string(broker.EffectAllow) || v.Decision == string(broker.EffectApprove)
}

// mayAdmit reports whether an outcome admits the call or might.
func mayAdmit(o outcome) bool {
	if o.verdict.Decision != VerdictUnknown {
		return admits(o.verdict)
	}
	for _, v := range o.possible {
		if admits(v) {
			return true
		}
	}
	return false
}

// budget applies the candidate's budgets to a call its rules admit, as
// Decide and MeterRows would, counting in memory: the calls and rows of
// the earlier records the candidate admits.
func (bt *backtester) budget(ev broker.Event, c broker.Caller, tp *toolPolicy, out outcome) outcome {
	if len(tp.budgets) == 0 || !mayAdmit(out) {
		return out
	}
	if c.Run == "" {
		for _, b := range tp.budgets {
			if b.window == 0 {
				return refusedOr(out, known(Verdict{Decision: string(broker.EffectDeny), Rule: b.path, Code: string(broker.CodeInvalidRequest)},
					"%s sets %s, so calls must name their run, and this one names none", b.path, b.name))
			}
		}
	}
	out = bt.checkBudgets(ev, c, tp, out)
	bt.charge(ev, c, tp, &out)
	return out
}

// refusedOr is refusal when out certainly admits the call, and else an
// unknown outcome that refusal is one possibility of.
func refusedOr(out, refusal outcome) outcome {
	if out.verdict.Decision != VerdictUnknown {
		return refusal
	}
	out.possible = appendVerdict(out.possible, refusal.verdict)
	out.reason += "; if admitted: " + refusal.reason
	return out
}

// checkBudgets refuses the call when a budget is certainly used up, and
// makes its outcome unknown when one may be.
func (bt *backtester) checkBudgets(ev broker.Event, c broker.Caller, tp *toolPolicy, out outcome) outcome {
	var maybe *budget
	var maybeLabel string
	for _, b := range tp.budgets {
		key, label := b.key(c, ev.Time)
		n := bt.count(key)
		certain, possible := n.sure+1 > b.limit, n.open || n.maybe+1 > b.limit
		used := fmt.Sprintf("%d earlier calls", n.sure)
		if b.rows() {
			certain, possible = n.sure >= b.limit, n.open || n.maybe >= b.limit
			used = fmt.Sprintf("%d rows", n.sure)
		}
		refusal := known(Verdict{Decision: string(broker.EffectDeny), Rule: b.path, Code: string(broker.CodeBudgetExceeded)},
			"budget %s would be used up (%s)", label, used)
		switch {
		case certain && maybe == nil:
			return refusedOr(out, refusal)
		case certain:
			return uncertainBudget(refusedOr(out, refusal), maybe, maybeLabel)
		case possible && maybe == nil:
			maybe, maybeLabel = b, label
		}
	}
	if maybe != nil {
		return uncertainBudget(out, maybe, maybeLabel)
	}
	return out
}

// uncertainBudget makes an outcome unknown because budget b may be used up.
func uncertainBudget(out outcome, b *budget, label string) outcome {
	refusal := Verdict{Decision: string(broker.EffectDeny), Rule: b.path, Code: string(broker.CodeBudgetExceeded)}
	why := fmt.Sprintf("budget %s may be used up: earlier calls it counts could not be decided or their rows are not recorded", label)
	if out.verdict.Decision == VerdictUnknown {
		out.possible = appendVerdict(out.possible, refusal)
		out.reason += "; " + why
		return out
	}
	return outcome{verdict: Verdict{Decision: VerdictUnknown}, possible: []Verdict{out.verdict, refusal},
		reason: why + "; it would be " + possibleText([]Verdict{out.verdict, refusal})}
}

// charge counts an admitted call, and its rows, against the budgets that
// apply. Rows come from the record: see recordedRows. When the call's own
// rows certainly exceed a rows budget, its result would be withheld.
func (bt *backtester) charge(ev broker.Event, c broker.Caller, tp *toolPolicy, out *outcome) {
	sure := admits(out.verdict)
	if !sure && !mayAdmit(*out) {
		return
	}
	rows, rowsKnown := outcomeRows(ev, *out)
	for _, b := range tp.budgets {
		key, label := b.key(c, ev.Time)
		n := bt.count(key)
		delta := int64(1)
		if b.rows() {
			if !rowsKnown {
				n.open = true
				continue
			}
			delta = rows
		}
		if sure {
			n.sure += delta
		}
		n.maybe += delta
		if b.rows() && sure && delta > 0 {
			withhold(out, n, b, label)
		}
	}
}

// withhold marks a call whose rows push a rows budget over its limit: the
// call ran, but its result would be withheld (MeterRows).
func withhold(out *outcome, n *budgetCount, b *budget, label string) {
	switch {
	case n.sure > b.limit:
		out.verdict.Code = string(broker.CodeBudgetExceeded)
		out.reason = fmt.Sprintf("the call would run, but its result would be withheld: budget %s would be exceeded (%d rows)", label, n.sure)
	case n.open || n.maybe > b.limit:
		*out = uncertainBudget(*out, b, label)
	}
}

// outcomeRows is the rows an outcome's call would return, for rows
// budgets: the largest of its possible admitting verdicts.
func outcomeRows(ev broker.Event, out outcome) (int64, bool) {
	if out.verdict.Decision != VerdictUnknown {
		return recordedRows(ev, out.verdict)
	}
	var most int64
	for _, v := range out.possible {
		if !admits(v) {
			continue
		}
		n, ok := recordedRows(ev, v)
		if !ok {
			return 0, false
		}
		most = max(most, n)
	}
	return most, true
}

// recordedRows is the rows a call decided v would count, as far as the
// record tells: a call allowed that ran in the record returns its recorded
// rows; one allowed that did not run returns rows nobody knows. A call
// held for approval does not run now; when the record held it for approval
// too, the recorded approval outcome is kept.
func recordedRows(ev broker.Event, v Verdict) (int64, bool) {
	ran := ev.Status == broker.StatusOK && (ev.Decision == string(broker.EffectAllow) || ev.ExecMS > 0)
	switch broker.Effect(v.Decision) {
	case broker.EffectAllow:
		if ran {
			return int64(ev.Rows), true
		}
		return 0, false
	case broker.EffectApprove:
		if ran && ev.Decision == string(broker.EffectApprove) {
			return int64(ev.Rows), true
		}
	}
	return 0, true
}
