// Package approvals is the approval gate of DESIGN §6: durable approval
// requests bound to a call (caller, graph, node, run, tool, SHA-256 of the
// canonical arguments, policy version, expiry), the votes of approvers, and
// the single-use claim that lets an approved call run exactly once.
//
// Every channel (Slack, the HTTP API, the CLI) decides through
// Service.Decide, which enforces the approver rules in one place. Every
// status change is a conditional UPDATE on the current status, so a
// replayed click, a duplicate delivery or a second broker instance never
// changes a request twice. Waiters wake through a Notifier: in-process, or
// Postgres LISTEN/NOTIFY across instances.
//
// The package must never store or show unmasked arguments or results, never
// let a requester approve their own call, never run a call on an approval
// bound to other arguments, another run or another node, and never answer
// "approved" when the store cannot say so (fail closed).
package approvals
