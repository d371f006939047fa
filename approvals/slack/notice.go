package slack

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"
)

// Notice posts one line of plain information to the approvals channel,
// with nothing to decide: e.g. that an upstream MCP tool was quarantined.
// The text is escaped (&, < and >), so it cannot mention anyone or link
// anywhere; it must already be safe to show (masked).
func (n *Notifier) Notice(ctx context.Context, text string) error {
	if _, _, err := n.api.PostMessageContext(ctx, n.cfg.Channel, slack.MsgOptionText(mrkdwn.Replace(text), false)); err != nil {
		return fmt.Errorf("post notice to slack: %w", err)
	}
	return nil
}
