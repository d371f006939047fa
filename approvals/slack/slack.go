package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"go.uber.org/zap"
)

// The modes of Config.Mode.
const (
	ModeSocket = "socket"
	ModeHTTP   = "http"
)

// The action ids of the buttons.
const (
	ActionApprove = "toolgate_approve"
	ActionDeny    = "toolgate_deny"
)

// Channel is the channel name passed to Decide for Slack votes.
const Channel = "slack"

// AuthSlack is the auth method of principals mapped from Slack users.
const AuthSlack broker.AuthMethod = "slack"

// Config configures the Slack notifier (approvals.slack in toolgate.yaml).
type Config struct {
	// Mode is "socket" (AppToken required) or "http" (SigningSecret
	// required).
	Mode          string
	BotToken      string
	AppToken      string
	SigningSecret string
	// Channel is where requests are posted ("#approvals" or an id).
	Channel string
	// APIURL overrides the Slack API base URL (ends with "/"); "" means
	// Slack's.
	APIURL string
	// TeamID, when set, is the workspace the app is installed in: a click
	// made in another workspace, or by a user of another (a Slack Connect
	// member of a shared channel), is refused. EnterpriseID, when set, is
	// the Enterprise Grid organization clicks must come from, whose id
	// Slack may report as a user's team. AppID, when set, refuses
	// interactions addressed to another app.
	TeamID       string
	EnterpriseID string
	AppID        string
	// Users links Slack user ids to principals ("U123": "user:ana@example.com").
	// A linked user is not looked up by email.
	Users  map[string]string
	Logger *zap.Logger
	Now    func() time.Time
}

// Validate reports what is missing.
func (c Config) Validate() error {
	var problems []string
	switch c.Mode {
	case ModeSocket:
		if c.AppToken == "" {
			problems = append(problems, "socket mode needs app_token")
		}
	case ModeHTTP:
		if c.SigningSecret == "" {
			problems = append(problems, "http mode needs signing_secret")
		}
	default:
		problems = append(problems, fmt.Sprintf("mode %q must be socket or http", c.Mode))
	}
	if c.BotToken == "" {
		problems = append(problems, "bot_token is required")
	}
	if c.Channel == "" {
		problems = append(problems, "channel is required")
	}
	for id, p := range c.Users {
		if !strings.Contains(p, ":") {
			problems = append(problems, fmt.Sprintf("users.%s: %q is not a principal name like user:ana@example.com", id, p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("approvals.slack: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Decider is the approval gate as the Slack notifier sees it
// (approvals.Service).
type Decider interface {
	Get(ctx context.Context, id string) (approvals.Request, error)
	Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error)
}

// Notifier posts approval requests to Slack and handles the clicks.
type Notifier struct {
	cfg      Config
	api      *slack.Client
	log      *zap.Logger
	now      func() time.Time
	inflight sync.WaitGroup
}

var (
	_ approvals.Announcer = (*Notifier)(nil)
	_ Decider             = (*approvals.Service)(nil)
)

// New returns a Notifier for a valid config.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []slack.Option{}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	return &Notifier{cfg: cfg, api: slack.New(cfg.BotToken, opts...), log: cfg.Logger, now: cfg.Now}, nil
}

// Announce posts the request with Approve and Deny buttons and returns
// "channel:ts", the handle Update and click checks use.
func (n *Notifier) Announce(ctx context.Context, r approvals.Request) (string, error) {
	ch, ts, err := n.api.PostMessageContext(ctx, n.cfg.Channel, slack.MsgOptionText(summary(r), false), slack.MsgOptionBlocks(blocks(r)...))
	if err != nil {
		return "", fmt.Errorf("post approval %s to slack: %w", r.ID, err)
	}
	return ch + ":" + ts, nil
}

// Update redraws the request's message: votes so far, then the outcome
// with the buttons removed.
func (n *Notifier) Update(ctx context.Context, r approvals.Request) error {
	if r.Ref == "" {
		return nil // never posted: nothing to redraw
	}
	ch, ts, ok := strings.Cut(r.Ref, ":")
	if !ok {
		return fmt.Errorf("approval %s has no slack message", r.ID)
	}
	if _, _, _, err := n.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(summary(r), false), slack.MsgOptionBlocks(blocks(r)...)); err != nil {
		return fmt.Errorf("update slack message of approval %s: %w", r.ID, err)
	}
	return nil
}

// Wait blocks until every click being processed is done.
func (n *Notifier) Wait() { n.inflight.Wait() }

// handle processes one interaction: every Approve or Deny click in it is
// checked and passed to Decide; refusals are answered ephemerally.
func (n *Notifier) handle(ctx context.Context, d Decider, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil || (a.ActionID != ActionApprove && a.ActionID != ActionDeny) {
			continue
		}
		if err := n.click(ctx, d, cb, a.Value, a.ActionID == ActionApprove); err != nil {
			e, incident := broker.AsError(err)
			if incident != "" {
				n.log.Error("slack click failed", zap.String("incident", incident), zap.Error(err))
			}
			n.log.Info("slack click refused", zap.String("approval", a.Value), zap.String("slack_user", cb.User.ID), zap.String("code", string(e.Code)))
			n.ephemeral(ctx, cb, "Not recorded: "+e.Message)
		}
	}
}

// click checks one click's origin and decides.
func (n *Notifier) click(ctx context.Context, d Decider, cb slack.InteractionCallback, id string, approve bool) error {
	if err := n.fromHome(cb); err != nil {
		return err
	}
	r, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	if r.Ref == "" || r.Ref != cb.Channel.ID+":"+ts {
		return broker.Errorf(broker.CodeForbidden, "this button does not belong to the message of approval %s", id)
	}
	p, err := n.principal(ctx, cb.User.ID)
	if err != nil {
		return err
	}
	_, err = d.Decide(ctx, id, p, approve, "", Channel)
	return err
}

// fromHome refuses an interaction from outside the configured app,
// organization and workspace. Two teams are checked: the one the click was
// made in (cb.Team), and the clicking user's own (cb.User.TeamID), which
// for a Slack Connect member of a shared channel is their organization's,
// not ours. Slack signs both (HTTP mode) or sends them over the app's own
// socket.
func (n *Notifier) fromHome(cb slack.InteractionCallback) error {
	c := n.cfg
	if c.AppID != "" && cb.APIAppID != c.AppID {
		return broker.Errorf(broker.CodeForbidden, "this click came from another Slack app")
	}
	if c.EnterpriseID != "" {
		org := cb.Enterprise.ID
		if org == "" {
			org = cb.Team.EnterpriseID
		}
		if org != c.EnterpriseID {
			return broker.Errorf(broker.CodeForbidden, "this click came from outside the Slack organization toolgate is installed in")
		}
	}
	if c.TeamID == "" {
		return nil
	}
	if cb.Team.ID != c.TeamID {
		return broker.Errorf(broker.CodeForbidden, "this click came from another Slack workspace")
	}
	if u := cb.User.TeamID; u != c.TeamID && (c.EnterpriseID == "" || u != c.EnterpriseID) {
		return broker.Errorf(broker.CodeForbidden, "your Slack account belongs to another workspace (a Slack Connect member of a shared channel), so you may not decide approvals here")
	}
	return nil
}

// principal maps a Slack user to a principal: an explicit link, else a
// full member's confirmed email.
func (n *Notifier) principal(ctx context.Context, userID string) (broker.Principal, error) {
	if userID == "" {
		return broker.Principal{}, broker.Errorf(broker.CodeForbidden, "the click carries no Slack user")
	}
	if name, ok := n.cfg.Users[userID]; ok {
		p := broker.Principal{Subject: broker.PrincipalName(name), Method: AuthSlack, TokenID: "slack:" + userID}
		if email, ok := strings.CutPrefix(p.Subject, "user:"); ok && strings.Contains(email, "@") {
			p.Email = email
		}
		return p, nil
	}
	u, err := n.api.GetUserInfoContext(ctx, userID)
	if err != nil {
		return broker.Principal{}, broker.Wrap(broker.CodeUnavailable, err, "your Slack profile could not be read, so the vote was not recorded; try again")
	}
	switch {
	case u.IsBot:
		return broker.Principal{}, broker.Errorf(broker.CodeForbidden, "bots may not decide approvals")
	case u.Deleted:
		return broker.Principal{}, broker.Errorf(broker.CodeForbidden, "deactivated Slack accounts may not decide approvals")
	case u.IsRestricted || u.IsUltraRestricted:
		return broker.Principal{}, broker.Errorf(broker.CodeForbidden, "Slack guests may not decide approvals")
	case u.Profile.Email == "" || !u.IsEmailConfirmed:
		return broker.Principal{}, broker.Errorf(broker.CodeForbidden, "your Slack account has no confirmed email and no link in approvals.slack.users, so toolgate cannot tell who you are")
	}
	subject := broker.PrincipalName("user:" + u.Profile.Email)
	return broker.Principal{Subject: subject, Email: strings.TrimPrefix(subject, "user:"), Method: AuthSlack, TokenID: "slack:" + userID}, nil
}

// ephemeral answers the clicking user only.
func (n *Notifier) ephemeral(ctx context.Context, cb slack.InteractionCallback, text string) {
	if cb.Channel.ID == "" || cb.User.ID == "" {
		return
	}
	if _, err := n.api.PostEphemeralContext(ctx, cb.Channel.ID, cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		n.log.Warn("slack ephemeral reply failed", zap.Error(err))
	}
}

// errPayload marks an interaction body that cannot be parsed.
var errPayload = errors.New("no interaction payload in the body")
