package broker

import (
	"context"
	"time"
)

// Effect is what policy decided.
type Effect string

// The effects, in increasing precedence: deny > approve > allow.
const (
	EffectAllow   Effect = "allow"
	EffectApprove Effect = "approve"
	EffectDeny    Effect = "deny"
)

// Decision is a policy decision. Every decision names the rule that made it.
type Decision struct {
	Effect Effect `json:"effect"`
	// Rule is the config path of the deciding rule, e.g.
	// "graphs.support-bot.nodes.refund.rules[0]", or "default" for
	// default deny.
	Rule   string `json:"rule"`
	Reason string `json:"reason,omitempty"`
	// PolicyVersion is a hash of the loaded policy.
	PolicyVersion string `json:"policy_version,omitempty"`
	// RuleVersion is a hash of the deciding rule alone (for approve: its
	// place, tool, condition, approvers and min_approvals), so an approval
	// survives reloads that leave its rule alone and goes stale when the
	// rule changes. Empty when the decider does not set one; the approval
	// gate then derives it from Rule, Approvers and MinApprovals.
	RuleVersion string `json:"rule_version,omitempty"`
	// Approvers and MinApprovals apply to EffectApprove.
	Approvers    []string      `json:"approvers,omitempty"`
	MinApprovals int           `json:"min_approvals,omitempty"`
	Timeout      time.Duration `json:"timeout,omitempty"`
	// Bind maps argument names to the values forced from the grant scope.
	Bind map[string]any `json:"-"`
}

// Request is what policy decides on.
type Request struct {
	Caller Caller
	Tool   *Tool
	Args   map[string]any
	Now    time.Time
}

// Decider is policy as the broker sees it.
type Decider interface {
	// Decide decides one call. An error means policy could not answer; the
	// broker then refuses the call.
	Decide(ctx context.Context, req Request) (Decision, error)
	// Visible reports whether the caller may see the tool in a listing.
	Visible(caller Caller, tool *Tool) bool
}

// RowBudget is an optional ability of a Decider: rows budgets, reserved
// before a call runs so that concurrent calls cannot overrun them.
type RowBudget interface {
	// ReserveRows reserves rows for req, which Decide allowed, right before
	// it runs. want is the most rows the call can return (its row cap), or
	// a negative number when the connector cannot say. The reservation
	// says how many rows the call may return; the broker lowers the call's
	// row cap to it. A budget with nothing left refuses with
	// budget_exceeded and nothing runs. Settle must be called once the call
	// ended, with the rows it returned (0 when it failed).
	ReserveRows(ctx context.Context, req Request, want int) (RowReservation, error)
}

// RowReservation is rows reserved for one call.
type RowReservation struct {
	// Limited is set when a rows budget applies; Rows is then the most rows
	// the call may return.
	Limited bool
	Rows    int
	// Settle turns the reservation into the rows the call returned; nil
	// when nothing was reserved.
	Settle func(ctx context.Context, rows int)
}

// RowCapper is an optional ability of an Executor: the most rows op can
// return (its max_rows, else the target's), for rows budgets to reserve.
type RowCapper interface {
	RowCap(op Operation) int
}

// Binder forces arguments from a grant scope (DESIGN §5 bind).
type Binder interface {
	// Bound returns the arguments of tool that the caller's node binds,
	// with their values from the caller's scope. An error means a bound
	// value could not be resolved; the call is refused.
	Bound(caller Caller, tool *Tool) (map[string]any, error)
}

// GraphAccess decides whether a principal may act as a graph (send its
// X-Toolgate-Graph) and whether that graph has such a node.
type GraphAccess interface {
	MayActAs(p Principal, graph string) bool
}

// Authenticator verifies a bearer token.
type Authenticator interface {
	// Authenticate returns the principal the token proves and, for a grant
	// token, its binding. Any failure is an *Error with
	// CodeUnauthenticated; the message never contains the token.
	Authenticate(ctx context.Context, token string) (Principal, *Binding, error)
}

// Masker masks values before they leave the broker.
type Masker interface {
	// MaskResult masks a tool's result document.
	MaskResult(tool *Tool, doc []byte) ([]byte, MaskStats, error)
	// MaskRecord masks a JSON document bound for a recording or a log
	// line (arguments, results): every detector applies, email included.
	MaskRecord(doc []byte) ([]byte, error)
	// MaskText masks free text (error messages, log lines) with the
	// detectors.
	MaskText(s string) string
}

// MaskStats counts masked values by rule or detector, never the values.
type MaskStats map[string]int
