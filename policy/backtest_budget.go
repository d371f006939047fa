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
	rulesAdmit := admits(out.verdict)
	out, open := bt.checkBudgets(ev, c, tp, out)
	bt.charge(ev, c, tp, &out, rulesAdmit, open)
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
// makes its outcome unknown when one may be; open lists those budgets.
func (bt *backtester) checkBudgets(ev broker.Event, c broker.Caller, tp *toolPolicy, out outcome) (_ outcome, open []*budget) {
	for _, b := range tp.budgets {
		key, label := b.key(c, ev.Time)
		n := bt.count(key)
		certain, possible := n.sure+1 > b.limit, n.open || n.maybe+1 > b.limit
		used := fmt.Sprintf("%d earlier calls", n.sure)
		if b.rows() {
			certain, possible = n.sure >= b.limit, n.open || n.maybe >= b.limit
			used = fmt.Sprintf("%d rows", n.sure)
		}
		switch {
		case certain:
			out = refusedOr(out, known(Verdict{Decision: string(broker.EffectDeny), Rule: b.path, Code: string(broker.CodeBudgetExceeded)},
				"budget %s would be used up (%s)", label, used))
			for _, o := range open {
				_, l := o.key(c, ev.Time)
				out = uncertainBudget(out, o, l)
			}
			return out, nil
		case possible:
			open = append(open, b)
		}
	}
	for _, o := range open {
		_, l := o.key(c, ev.Time)
		out = uncertainBudget(out, o, l)
	}
	return out, open
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

// charge counts a call that is or may be admitted against the budgets
// that apply, keeping for each counter the least and the most it can be.
// A call budget never counts past its limit (a refused call is refunded),
// so when the rules admit the call and only this budget may refuse it, the
// counter ends at the smaller of one more and the limit either way. Rows
// come from the record (see recordedRows); when the call's own rows
// certainly exceed a rows budget, its result would be withheld.
func (bt *backtester) charge(ev broker.Event, c broker.Caller, tp *toolPolicy, out *outcome, rulesAdmit bool, open []*budget) {
	sure := admits(out.verdict)
	if !sure && !mayAdmit(*out) {
		return
	}
	rows, rowsKnown := outcomeRows(ev, *out)
	for _, b := range tp.budgets {
		key, label := b.key(c, ev.Time)
		n := bt.count(key)
		if !b.rows() {
			switch {
			case sure:
				n.sure++
			case rulesAdmit && len(open) == 1 && open[0] == b:
				n.sure = min(n.sure+1, b.limit)
			}
			n.maybe = min(n.maybe+1, b.limit)
			continue
		}
		if !rowsKnown {
			n.open = true
			continue
		}
		if sure {
			n.sure += rows
		}
		n.maybe += rows
		if sure && rows > 0 {
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
