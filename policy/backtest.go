package policy

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/toolgate/toolgate/broker"
)

// BacktestConfig says which policy to backtest and which records to report.
type BacktestConfig struct {
	// Candidate is the policy every record is decided again under. It is
	// never asked to Decide: nothing is charged to its budget counters.
	Candidate *Engine
	// Baseline, when set, is the policy the records were most likely made
	// under. For a record whose policy version equals the baseline's, the
	// recorded decision says which conditions held for the real (unmasked)
	// arguments; a candidate condition with the same text, on a tool typed
	// the same way, then needs no masked value. Nil turns this off.
	Baseline *Engine
	// Since is the first record time reported. Earlier records only count
	// towards the candidate's budgets. Zero reports every record.
	Since time.Time
	// Node and Tool select the records reported by exact node path and
	// tool name; "" selects all. Every record counts towards budgets.
	Node, Tool string
}

// ReadSince is the first record time a backtest must read to report from
// Since: the candidate's budgets count from the start of a run (every
// record) or of a window (the window Since falls in).
func (c BacktestConfig) ReadSince() time.Time {
	if c.Since.IsZero() || c.Candidate == nil {
		return c.Since
	}
	from := c.Since
	for b := range c.Candidate.allBudgets() {
		if b.window == 0 {
			return time.Time{}
		}
		if start := c.Since.Truncate(b.window); start.Before(from) {
			from = start
		}
	}
	return from
}

// allBudgets yields every budget of the policy.
func (e *Engine) allBudgets() iter.Seq[*budget] {
	return func(yield func(*budget) bool) {
		for _, g := range e.graphs {
			nodes := append(slices.Collect(maps.Values(g.exact)), g.globs...)
			for _, bs := range append([][]*budget{g.budgets}, nodeBudgets(nodes)...) {
				for _, b := range bs {
					if !yield(b) {
						return
					}
				}
			}
		}
	}
}

func nodeBudgets(nodes []*nodePolicy) [][]*budget {
	out := make([][]*budget, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.budgets)
	}
	return out
}

// Verdict is a decision as a backtest reports it.
type Verdict struct {
	// Decision is allow, approve, deny, error (a condition could not be
	// evaluated, so the call would be refused) or unknown.
	Decision string `json:"decision"`
	// Rule is the config path of the deciding rule, "default" for default
	// deny, a budget path for a budget refusal; "" when not recorded.
	Rule string `json:"rule,omitempty"`
	// Code is the refusal code that is not a rule's effect:
	// budget_exceeded, unknown_tool, forbidden (a bind), invalid_request.
	Code string `json:"code,omitempty"`
}

// The decisions a Verdict holds besides the three effects.
const (
	VerdictError   = "error"
	VerdictUnknown = "unknown"
)

// BacktestChange is one record whose decision would change, or could not
// be decided, under the candidate.
type BacktestChange struct {
	Record string           `json:"record"`
	Time   time.Time        `json:"time"`
	Kind   broker.EventKind `json:"kind"`
	Graph  string           `json:"graph"`
	Node   string           `json:"node"`
	Tool   string           `json:"tool"`
	Before Verdict          `json:"before"`
	After  Verdict          `json:"after"`
	// Possible lists, for an unknown After, the decisions the record
	// leaves open, in the order the policy would try them.
	Possible []Verdict `json:"possible,omitempty"`
	Reason   string    `json:"reason"`
}

// BacktestReport is what a backtest found.
type BacktestReport struct {
	// Evaluated counts the reported records that reached a policy decision
	// when they were recorded.
	Evaluated int `json:"evaluated"`
	// Changed counts those whose decision, rule or refusal code would differ.
	Changed int `json:"changed"`
	// Unknown counts those the candidate's decision could not be told for.
	Unknown int `json:"unknown"`
	// Skipped counts the reported records that never reached a decision
	// (refused while identifying the caller, an unknown tool, invalid
	// arguments, a bind or a condition error).
	Skipped int `json:"skipped"`
	// Changes lists the changed and the unknown records, oldest first.
	Changes []BacktestChange `json:"changes"`
}

// Backtest decides every recorded tool call and passthrough statement again
// under the candidate policy and reports what would change. Records must
// come oldest first, as the store exports them.
//
// It calls nothing, writes nothing and charges no budget: conditions are
// evaluated with CEL partial evaluation, where every input the record does
// not hold exactly (a masked argument, the grant scope, the caller's groups
// and email) is an unknown value, so a condition whose result depends on one
// is reported as unknown, never guessed. Budgets are counted in memory from
// the records.
func Backtest(ctx context.Context, cfg BacktestConfig, records iter.Seq2[broker.Event, error]) (*BacktestReport, error) {
	if cfg.Candidate == nil {
		return nil, errors.New("policy: a backtest needs a candidate policy")
	}
	bt := &backtester{cfg: cfg, progs: map[progKey]cel.Program{}, envs: map[progKey]*cel.Env{}, budgets: map[string]*budgetCount{}}
	rep := &BacktestReport{Changes: []BacktestChange{}}
	for ev, err := range records {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bt.record(ctx, ev, rep)
	}
	return rep, nil
}

// backtester holds the state of one backtest.
type backtester struct {
	cfg BacktestConfig
	// progs and envs cache conditions compiled for partial evaluation.
	progs map[progKey]cel.Program
	envs  map[progKey]*cel.Env
	// budgets counts the candidate's budgets by counter key.
	budgets map[string]*budgetCount
}

// progKey names a condition compiled for one engine and one tool.
type progKey struct {
	e          *Engine
	path, tool string
}

// record decides one record and adds it to the report when selected.
func (bt *backtester) record(ctx context.Context, ev broker.Event, rep *BacktestReport) {
	before, decided, ok := recordedVerdict(ev)
	if !ok {
		return
	}
	selected := bt.selected(ev)
	if !decided {
		if selected {
			rep.Skipped++
		}
		return
	}
	var out outcome
	if ev.Kind == broker.EventStatement {
		out = bt.statement(ctx, ev)
	} else {
		out = bt.call(ctx, ev)
	}
	if !selected {
		return
	}
	rep.Evaluated++
	switch {
	case out.verdict.Decision == VerdictUnknown:
		rep.Unknown++
	case sameVerdict(before, out.verdict):
		return
	default:
		rep.Changed++
	}
	rep.Changes = append(rep.Changes, BacktestChange{
		Record: ev.ID, Time: ev.Time.UTC(), Kind: ev.Kind, Graph: ev.Graph, Node: ev.Node, Tool: ev.Tool,
		Before: before, After: out.verdict, Possible: out.possible, Reason: out.reason,
	})
}

func (bt *backtester) selected(ev broker.Event) bool {
	return !ev.Time.Before(bt.cfg.Since) &&
		(bt.cfg.Node == "" || ev.Node == bt.cfg.Node) &&
		(bt.cfg.Tool == "" || ev.Tool == bt.cfg.Tool)
}

// recordedVerdict reads the decision a record holds. ok is false for
// records that are not decisions (other kinds, the outcome of a statement
// that ran); decided is false for calls refused before policy answered.
func recordedVerdict(ev broker.Event) (v Verdict, decided, ok bool) {
	switch ev.Kind {
	case broker.EventToolCall:
	case broker.EventStatement:
		if ev.Detail["phase"] == "done" {
			return Verdict{}, false, false
		}
	default:
		return Verdict{}, false, false
	}
	budget := ev.ErrorCode == string(broker.CodeBudgetExceeded)
	switch {
	case ev.Decision != "":
		v = Verdict{Decision: ev.Decision, Rule: ev.Rule}
		if budget {
			// The call ran, but its rows used up a budget and its result
			// was withheld.
			v.Code = ev.ErrorCode
		}
		return v, true, true
	case budget:
		// Policy admitted the call; a budget refused it.
		return Verdict{Decision: string(broker.EffectDeny), Code: ev.ErrorCode}, true, true
	}
	return Verdict{}, false, true
}

// sameVerdict compares a recorded verdict with the candidate's. A rule the
// record does not name (a budget refusal) is not compared.
func sameVerdict(before, after Verdict) bool {
	return before.Decision == after.Decision && before.Code == after.Code &&
		(before.Rule == "" || before.Rule == after.Rule)
}
