// Package policy decides whether a caller may call a tool: per-graph and
// per-node allow lists, rules with CEL conditions, scope binding and budgets
// (DESIGN §5).
//
// An Engine is built once from the graphs section of toolgate.yaml and the
// tool catalog. New compiles and type-checks every CEL condition against the
// tools a rule can apply to and reports every problem at once as a
// *LoadError, so a rule that could never be evaluated fails at load, not at
// call time.
//
// The semantics, in the order Decide applies them:
//
//   - Default deny. A caller with no graph, a graph without a policy, or a
//     node path that matches no node entry can call nothing.
//   - Node entries match the caller's node path exactly or as a path.Match
//     glob ("supervisor/*"). An exact entry wins over any glob; among
//     several matching globs the longest pattern wins, and between patterns
//     of the same length the one that sorts first.
//   - A node may call only the tools its allow list names (globs allowed).
//     A tool outside the allow list is denied by "default" even when a rule
//     would allow it: rules refine the allow list, they never widen it.
//   - Rules of the graph (graphs.<g>.rules) and of the node
//     (graphs.<g>.nodes.<n>.rules) whose tool glob matches (an empty tool
//     matches every tool) and whose CEL condition holds are the matching
//     rules. Precedence is deny > approve > allow; between rules of the same
//     effect the first in configuration order (graph rules before node
//     rules) decides. When no rule matches, the allow-list entry decides
//     ("graphs.<g>.nodes.<n>.allow[i]").
//   - Budgets are checked after a call is allowed (or sent for approval):
//     calls_per_run and rows_per_run count within one run, calls_per_minute
//     counts in fixed one-minute windows across runs. Budgets may sit on the
//     graph, on a node (counted per caller node path) and on tools (under
//     budgets.tools, counted per tool pattern). A refused call costs nothing.
//     Calls are counted by Decide, each with one atomic add; rows are
//     reserved by ReserveRows right before the call runs (its row cap, or
//     what is left of the budget) and settled to the rows it returned, so
//     concurrent calls cannot overrun a budget.
//   - An approve decision carries RuleVersion, a hash of its rule's list,
//     tool, effect, condition, approvers and min_approvals: the approval
//     gate binds approvals to it, so only a change to that rule makes them
//     stale.
//
// Conditions see args (each input-schema property typed: integer → int,
// number → double, string, boolean, array → list, object → map; so
// args.amount > "x" is a load error, and args.X must be a declared
// property), caller.principal, caller.groups (names without "group:"),
// caller.auth_method, caller.email, graph, node, run, thread, scope (typed
// by scope_schema when it declares properties), tool.name, tool.target,
// tool.annotations and now. An argument the call omits makes the condition
// fail (and the call be refused) unless the rule guards it with has().
// Conditions run under a cost limit; one whose worst-case cost is provably
// under the limit at load runs without CEL's per-call cost tracker.
//
// Every decision names the rule that made it and the policy version (a short
// SHA-256 of the canonical graphs configuration).
//
// Policy must fail closed: a condition that errors, a budget store that
// cannot answer or a bound value that is missing is a refusal, never an
// allow. It must never skip a deny rule because it could not evaluate it,
// and it must never put argument or scope values into error messages.
// Explain evaluates the rules but calls nothing and charges no budget.
//
// Backtest decides recorded calls and passthrough statements again under a
// candidate Engine, with the same precedence as Decide but three-valued
// conditions: everything a record does not hold exactly (a masked
// argument, a grant's scope, the caller's groups and email) is a CEL
// unknown, so a decision that depends on one is reported as unknown, never
// guessed. A record made by a baseline Engine of the same version proves
// which of its conditions held, and settles the same conditions in the
// candidate. Backtest calls nothing and charges no budget; it counts the
// candidate's budgets in memory from the records. It reads records through
// an iterator: policy never opens the audit store itself.
package policy
