package slack

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

// maxArgsText caps the arguments shown in a message (Slack allows 3000
// characters per text object).
const maxArgsText = 2500

// The bounds of the preview shown in a message: the sample's rows, the
// characters of a cell, and the whole text (within Slack's 3000).
const (
	previewRows  = 10
	previewCell  = 24
	previewChars = 2800
)

// summary is the notification text of a request.
func summary(r approvals.Request) string {
	return mrkdwn.Replace(fmt.Sprintf("Approval %s: %s wants to call %s (%s)", r.ID, r.Principal, r.Tool, r.Status))
}

// mrkdwn escapes the characters Slack reads as markup in mrkdwn text (&, <
// and >, which make links and mentions such as <!channel>), as Slack asks
// of all text it did not write: arguments, runs, reasons and names come
// from callers and approvers.
var mrkdwn = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// blocks renders a request as Block Kit: what is asked, by whom, the masked
// arguments, then the buttons while it is pending or the outcome after.
func blocks(r approvals.Request) []slack.Block {
	md := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
	}
	plain := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
	}
	approved := 0
	for _, v := range r.Votes {
		if v.Approve {
			approved++
		}
	}
	asked := code(r.Principal)
	if r.Via != "" {
		asked += " via " + code(r.Via)
	}
	fields := []*slack.TextBlockObject{
		md("*Requested by*\n" + asked),
		md("*Graph / node / run*\n" + code(r.Graph) + " / " + code(r.Node) + " / " + code(r.Run)),
		md("*Tool*\n" + code(r.Tool)),
		md("*Target*\n" + code(r.Target)),
		md("*Rule*\n" + code(r.Rule)),
		md(fmt.Sprintf("*Approvals*\n%d of %d from %s", approved, r.MinApprovals, mrkdwn.Replace(strings.Join(r.Approvers, ", ")))),
		md("*Expires*\n" + r.ExpiresAt.UTC().Format(time.RFC3339)),
		md("*Approval id*\n" + code(r.ID)),
	}
	args := string(r.Args)
	if len(args) > maxArgsText {
		args = args[:maxArgsText] + "…"
	}
	out := []slack.Block{
		slack.NewSectionBlock(md(fmt.Sprintf("*Approval needed:* %s wants to call %s", code(r.Principal), code(r.Tool))), nil, nil),
		slack.NewSectionBlock(nil, fields, nil),
		slack.NewSectionBlock(md("*Arguments (masked)*\n```"+mrkdwn.Replace(strings.ReplaceAll(args, "```", "'''"))+"```"), nil, nil),
	}
	if r.Preview != nil {
		out = append(out, slack.NewSectionBlock(md(previewText(r.Preview)), nil, nil))
	}
	if r.Status == broker.ApprovalPending {
		confirm := slack.NewConfirmationBlockObject(plain("Approve this call?"),
			md(fmt.Sprintf("%s will run %s with the arguments above%s.", code(r.Principal), code(r.Tool), willChange(r.Preview))), plain("Approve"), plain("Cancel"))
		out = append(out, slack.NewActionBlock("toolgate_decision",
			slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve")).WithStyle(slack.StylePrimary).WithConfirm(confirm),
			slack.NewButtonBlockElement(ActionDeny, r.ID, plain("Deny")).WithStyle(slack.StyleDanger),
		))
	}
	var votes []string
	for _, v := range r.Votes {
		votes = append(votes, mrkdwn.Replace(broker.VoteLine(v)))
	}
	if len(votes) > 0 || r.Status != broker.ApprovalPending {
		text := "*Status:* " + mrkdwn.Replace(outcome(r))
		if len(votes) > 0 {
			text += "\n" + strings.Join(votes, "\n")
		}
		out = append(out, slack.NewContextBlock("toolgate_outcome", md(text)))
	}
	return out
}

// previewText shows a request's preview: its headline, then a compact
// table of its masked sample, cut to fit one text object.
func previewText(p *broker.ApprovalPreview) string {
	head := "*Preview (masked)*\n" + mrkdwn.Replace(broker.PreviewHeadline(p))
	lines := approvals.SampleTable(p.Sample, previewRows, previewCell)
	if p.Unavailable != "" || len(lines) == 0 {
		return head
	}
	for i := range lines {
		lines[i] = mrkdwn.Replace(strings.ReplaceAll(lines[i], "```", "'''"))
	}
	for len(lines) > 1 && len(head)+len(strings.Join(lines, "\n"))+8 > previewChars {
		lines = append(lines[:len(lines)-2], "…")
	}
	table := strings.Join(lines, "\n")
	if len(head)+len(table)+8 > previewChars {
		return head
	}
	return head + "\n```" + table + "```"
}

// willChange adds the previewed row count to the confirmation.
func willChange(p *broker.ApprovalPreview) string {
	if p == nil || p.Unavailable != "" || p.RowsAffected < 0 {
		return ""
	}
	if p.RowsAffected == 1 {
		return ", affecting 1 row as previewed; if that changes, it will not run"
	}
	return fmt.Sprintf(", affecting %d rows as previewed; if that changes, it will not run", p.RowsAffected)
}

// outcome says where the request stands, in words.
func outcome(r approvals.Request) string {
	switch r.Status {
	case broker.ApprovalApproved:
		return "approved; waiting for the agent to call again"
	case broker.ApprovalExecuting:
		return "approved; running"
	case broker.ApprovalConsumed:
		if r.ErrorCode != "" {
			return "approved; the call ran and failed (" + r.ErrorCode + ")"
		}
		return "approved; the call ran"
	case broker.ApprovalDenied:
		if r.Reason != "" {
			return "denied: " + r.Reason
		}
		return "denied"
	case broker.ApprovalExpired:
		return "expired without a decision"
	case broker.ApprovalCancelled:
		return "cancelled"
	case broker.ApprovalStale:
		return broker.StaleLine(r.Reason)
	default:
		return "pending"
	}
}

func code(s string) string {
	if s == "" {
		return "–"
	}
	return "`" + mrkdwn.Replace(strings.ReplaceAll(s, "`", "'")) + "`"
}
