// Package approvals is the approval gate of DESIGN §6: durable approval
// requests bound to a call (the caller's credential identity, graph, node,
// run, tool, SHA-256 of the canonical arguments, the version of the
// governing rule, expiry), the votes of approvers, and the single-use claim
// that lets an approved call run exactly once.
//
// Every request records who asked: the human or service principal behind
// the call, for a grant token the principal that minted the grant. Every
// channel (Slack, the HTTP API, the CLI, the console) decides through
// Service.Decide, which enforces the approver rules in one place, and sees
// requests through Service.Approval, Approvals and Inbox, which hold the
// viewing rule (MayView: the approvers, who asked, and the credential it was
// asked with) in one place too. Both compare
// principal names in one normal form (broker.PrincipalName), so who asked
// cannot approve under any alias. A vote and the decision it causes are one
// conditional transaction, so an acknowledged vote has taken effect; every
// other status change is a conditional UPDATE on the current status, so a
// replayed click, a duplicate delivery or a second broker instance never
// changes a request twice. At most one request per call is pending (a
// partial unique index), so concurrent identical calls converge on it. A
// request whose rule changed (RuleVersion) is stale and no longer counts.
// Waiters wake through a Notifier: in-process, or Postgres LISTEN/NOTIFY
// across instances.
//
// A new request stores the masked effect preview the broker takes for it
// (broker.ApprovalRequest.Preview, called once, when the request is made)
// and is bound to the preview's hash; the claim hands the stored preview
// back so the run matches it. A call refused because the data changed
// since the preview (approval_stale) uses its request up: it ends stale
// and the next call makes a new request with a fresh preview. Slack, the CLI
// and the console say a request in the same words (broker.VoteLine,
// broker.PreviewHeadline, broker.SampleGridOf); show.go's SampleTable
// aligns a sample for the text channels.
//
// The package must never store or show unmasked arguments or results, never
// let a requester approve their own call, never run a call on an approval
// bound to other arguments, another run or another node, and never answer
// "approved" when the store cannot say so (fail closed).
package approvals
