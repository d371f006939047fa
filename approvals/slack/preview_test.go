package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	aslack "github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/broker"
)

// heldWith asks for approval of a call whose preview is p.
func (e *env) heldWith(t *testing.T, hash string, p broker.ApprovalPreview) string {
	t.Helper()
	out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: "key:support-bot"}, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: "r1"}},
		Tool:     &broker.Tool{Name: "promo_retier", Target: "crm"},
		Args:     map[string]any{"from_tier": "gold"},
		ArgsHash: hash,
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]",
			Approvers: []string{"user:ana@example.com"}, MinApprovals: 1},
		Preview: func(context.Context) broker.ApprovalPreview { return p },
	})
	if err != nil || out.Status != broker.ApprovalPending {
		t.Fatalf("Await = %+v, %v", out, err)
	}
	return out.ID
}

// TestAttackSlackPreviewMarkup: a preview's sample is data the agent's
// target holds, so it is shown like the arguments: escaped (a cell that
// says <!channel> pings nobody, ``` cannot close the table early), cut to
// fit one Slack text object, and never longer than Slack takes.
func TestAttackSlackPreviewMarkup(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	var rows []string
	for i := range 40 {
		rows = append(rows, fmt.Sprintf(`{"id":%d,"note":"<!channel> `+"```"+` <https://evil.example|ok> & %s"}`, i, strings.Repeat("y", 300)))
	}
	p := broker.Preview{RowsAffected: 40, Sample: json.RawMessage("[" + strings.Join(rows, ",") + "]"), Truncated: true, Image: broker.ImageAfter}
	p.Hash = p.Sum()
	e.heldWith(t, "h-preview", broker.ApprovalPreview{Preview: p})
	msg := e.slack.Last("chat.postMessage")
	var preview string
	for _, s := range texts(t, msg.Get("blocks")) {
		if strings.HasPrefix(s, "*Preview (masked)*") {
			preview = s
		}
	}
	if preview == "" || len(preview) > 3000 {
		t.Fatalf("preview text (%d chars): %q", len(preview), preview)
	}
	if !strings.Contains(preview, "rows affected: 40; below: 40 rows as they would be after the change (not every row is shown)") ||
		!strings.Contains(preview, "&lt;!channel&gt;") || !strings.Contains(preview, "…") {
		t.Errorf("preview text: %s", preview)
	}
	body := strings.TrimSuffix(preview[strings.Index(preview, "```")+3:], "```")
	for _, bad := range []string{"<!channel>", "<https://", " & ", "```"} {
		if strings.Contains(body, bad) {
			t.Errorf("the sample carries %q unescaped: %s", bad, body)
		}
	}
	if confirm := msg.Get("blocks"); !strings.Contains(confirm, "affecting 40 rows as previewed") {
		t.Errorf("the confirmation does not repeat the count: %s", confirm)
	}
}

// TestSlackShowsWhyNoPreview: a request without a preview says why, and a
// request refused for stale data says so once it is over.
func TestSlackShowsWhyNoPreview(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	e.heldWith(t, "h-none", broker.ApprovalPreview{Unavailable: "the tool opts out: it emails the customer", Code: broker.CodePreviewUnavailable})
	if blocks := e.slack.Last("chat.postMessage").Get("blocks"); !strings.Contains(blocks, "no preview: the tool opts out: it emails the customer") {
		t.Errorf("message without a preview: %s", blocks)
	}

	p := broker.Preview{RowsAffected: 2, Sample: json.RawMessage(`[{"id":1},{"id":2}]`), Image: broker.ImageAfter}
	p.Hash = p.Sum()
	id := e.heldWith(t, "h-stale", broker.ApprovalPreview{Preview: p})
	ctx := context.Background()
	if _, err := e.svc.Decide(ctx, id, broker.Principal{Subject: "user:ana@example.com"}, true, "", "cli"); err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.Await(ctx, broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: "key:support-bot"}, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: "r1"}},
		Tool:     &broker.Tool{Name: "promo_retier", Target: "crm"},
		ArgsHash: "h-stale",
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]", Approvers: []string{"user:ana@example.com"}, MinApprovals: 1},
	})
	if err != nil || out.Status != broker.ApprovalApproved || out.Preview == nil || out.Preview.Hash != p.Hash {
		t.Fatalf("claim = %+v, %v", out, err)
	}
	if err := e.svc.Complete(ctx, id, nil, broker.StaleError(2, 3)); err != nil {
		t.Fatal(err)
	}
	up := e.slack.Last("chat.update").Get("blocks")
	if !strings.Contains(up, "no longer counts: the data changed since it was approved: 2 rows previewed, 3 now") {
		t.Errorf("update after the stale run: %s", up)
	}
}
