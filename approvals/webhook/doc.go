// Package webhook tells another system that an approval was decided: when a
// request becomes approved, denied or expired it POSTs
//
//	{"approval_id", "run", "thread", "graph", "node", "tool", "outcome", "decided_at"}
//
// to approvals.on_decision.url, signed with HMAC-SHA256 in the
// X-Toolgate-Signature header ("t=<unix seconds>,v1=<hex HMAC of t.body>"),
// so a receiver (e.g. one that resumes an interrupted LangGraph thread) can
// trust it. Delivery is at least once: failures (network errors, 429, 5xx)
// are retried with exponential backoff up to a bounded number of attempts;
// receivers deduplicate on approval_id.
//
// The Notifier is an approvals.Announcer that wraps another one (Slack) or
// none. It must never block or fail a decision (delivery runs in the
// background from a bounded queue), never send the arguments or the result
// of the call, and never log the secret, the signature or the URL's query.
package webhook
