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
}

// Request is what policy decides on.
type Request struct {
	Caller Caller
	// Node is the caller's node policy as Policy.Node resolved it for this
	// call; a policy engine resolves it from Caller when it is nil.
	Node Node
	Tool *Tool
	Args map[string]any
	Now  time.Time
}

// Policy is the policy engine as the broker sees it: one dependency. Its
// optional abilities (Binder, RowBudget, PassthroughDecider, GraphIndex)
// are found once, when a snapshot is built (NewSnapshot), never per call.
type Policy interface {
	// MayActAs reports whether the principal may act as the graph (send
	// its X-Toolgate-Graph).
	MayActAs(p Principal, graph string) bool
	// Node resolves the caller's node policy: its graph's node entry, an
	// exact key first, then the most specific glob. The broker resolves it
	// once per call or listing and hands it back to every other question
	// about that call. Nil means the caller's graph or node has no policy.
	Node(c Caller) Node
	// Visible reports whether node n may see, and so call, the tool.
	Visible(n Node, tool *Tool) bool
	// Decide decides one call. An error means policy could not answer; the
	// broker then refuses the call.
	Decide(ctx context.Context, req Request) (Decision, error)
}

// Node is a caller's node policy as Policy.Node resolved it. The broker
// does not look inside; it passes it back with each question about the
// call.
type Node interface {
	// Path is the node's place in the configuration, e.g.
	// "graphs.support-bot.nodes.triage".
	Path() string
}

// RowBudget is an optional ability of a Policy: rows budgets, reserved
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

// Allower is an optional ability of a Policy: whether node n's allow list
// names a tool, asked for a tool the snapshot withholds (Live.Withheld),
// which policy was not compiled with. Without it a withheld tool is
// forbidden to every caller.
type Allower interface {
	Allows(n Node, name string) bool
}

// GraphIndex is an optional ability of a Policy: the graphs and nodes it
// declares, so that a caller naming one it does not is told which name is
// unknown (unknown_graph, unknown_node) instead of being refused as
// forbidden or shown no tools.
type GraphIndex interface {
	// HasGraph reports whether graph is declared.
	HasGraph(graph string) bool
	// NodeKeys returns the node keys (paths and globs) graph declares,
	// sorted.
	NodeKeys(graph string) []string
}

// Binder is an optional ability of a Policy: arguments forced from a grant
// scope (DESIGN §5 bind).
type Binder interface {
	// Bound returns the arguments of tool that node n binds, with their
	// values from the caller's scope. An error means a bound value could
	// not be resolved; the call is refused.
	Bound(n Node, caller Caller, tool *Tool) (map[string]any, error)
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
	// PrepareTool compiles the masking of one tool's results: the global,
	// target and tool rules and the detectors that apply to it. The broker
	// prepares every tool, and every passthrough route as the synthetic
	// tool PassthroughTool names, when a snapshot is built (as caddy
	// provisions a module), never per call; an error refuses the snapshot.
	PrepareTool(tool *Tool) (ToolMask, error)
	// MaskRecord masks a JSON document bound for a recording or a log
	// line (arguments, results): every detector applies, email included.
	MaskRecord(doc []byte) ([]byte, error)
	// MaskText masks free text (error messages, log lines) with the
	// detectors.
	MaskText(s string) string
}

// ToolMask masks one tool's results; Masker.PrepareTool made it. An error
// (a document nested too deep, a rule that cannot be applied) means the
// result must be withheld.
type ToolMask interface {
	Mask(doc []byte) ([]byte, MaskStats, error)
}

// ToolMaskFunc adapts a function to ToolMask.
type ToolMaskFunc func(doc []byte) ([]byte, MaskStats, error)

// Mask calls f.
func (f ToolMaskFunc) Mask(doc []byte) ([]byte, MaskStats, error) { return f(doc) }

// MaskStats counts masked values by rule or detector, never the values.
type MaskStats map[string]int
