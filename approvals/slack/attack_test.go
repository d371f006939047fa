package slack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	aslack "github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/broker"
)

// texts returns every "text" string of a Block Kit JSON document.
func texts(t *testing.T, blocks string) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(blocks), &doc); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "text" {
					out = append(out, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return out
}

// TestAttackSlackMessageMarkup: the approval message is mrkdwn, where
// Slack reads <!channel>, <@U…> and <url|label> as mentions and links. A
// caller that put them in its run (X-Toolgate-Run is any text an API-key
// holder sends) pinged the whole channel and showed approvers a link
// labelled as it pleased beside the Approve button; so did a deny reason
// in the update. Every text toolgate did not write is escaped (&amp; &lt;
// &gt;), in the message, its fallback text and the update after a
// decision. (Arguments were already shown as JSON with \u003c escapes.)
func TestAttackSlackMessageMarkup(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	ctx := context.Background()
	out, err := e.svc.Await(ctx, broker.ApprovalRequest{
		Caller: broker.Caller{Principal: broker.Principal{Subject: "key:support-bot"},
			Context: broker.Context{Graph: "support-bot", Node: "refund", Run: "r1 <!channel> <https://evil.example/ok|pre-approved by security> & <@U0SEC>"}},
		Tool:     &broker.Tool{Name: "billing_refund", Target: "billing"},
		Args:     map[string]any{"reason": "<!here> see <https://evil.example/ok|this>"},
		ArgsHash: "h-markup",
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]",
			Approvers: []string{"user:ana@example.com"}, MinApprovals: 1},
	})
	if err != nil || out.Status != broker.ApprovalPending {
		t.Fatalf("Await = %+v, %v", out, err)
	}
	if _, err := e.svc.Decide(ctx, out.ID, broker.Principal{Subject: "user:ana@example.com"}, false, "see <https://evil.example|this>", "cli"); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"chat.postMessage", "chat.update"} {
		msg := e.slack.Last(method)
		all := append(texts(t, msg.Get("blocks")), msg.Get("text"))
		joined := strings.Join(all, "\n")
		for _, bad := range []string{"<!channel>", "<!here>", "<https://evil.example", "<@U0SEC>", " & ", "<"} {
			if strings.Contains(joined, bad) {
				t.Errorf("%s carries markup %q unescaped:\n%s", method, bad, joined)
			}
		}
		if !strings.Contains(joined, "&lt;!channel&gt;") || !strings.Contains(joined, "&amp;") {
			t.Errorf("%s: the run is not shown escaped:\n%s", method, joined)
		}
	}
}
