// Package slack announces approval requests in a Slack channel and turns
// Approve / Deny clicks into approvals.Service decisions (DESIGN §6). It
// speaks to Slack with github.com/slack-go/slack, in Socket Mode (an app
// token, no public URL) or over HTTP interactivity (/slack/interactions,
// verified with the signing secret).
//
// A click is only a claim: the package maps the Slack user to a principal
// (an explicit link in config, or a verified email from users.info for a
// full member), checks the click's team, app, channel and message against
// the stored request, and hands the decision to Decide, which enforces every
// approver rule. It must never decide anything itself, never trust a payload
// whose signature, timestamp or origin does not check out, never read a
// payload from a query string, and never post an unmasked value: messages
// show only what the approval request stored, already masked.
package slack
