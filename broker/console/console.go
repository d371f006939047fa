package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// Channel is the channel name the console passes to Approvals.Decide.
const Channel = "console"

// Identifier establishes who holds a credential: the broker's Identify, the
// only way to a verified caller. The console calls it on every request with
// the credential its session holds, so a revoked key or a disabled
// principal stops working at once.
type Identifier interface {
	Identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error)
}

// IdentifierFunc adapts a function to Identifier.
type IdentifierFunc func(ctx context.Context, cr broker.Credentials) (broker.Caller, error)

var _ Identifier = IdentifierFunc(nil)

// Identify calls f.
func (f IdentifierFunc) Identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error) {
	return f(ctx, cr)
}

// Approvals is the approval gate as the console uses it (implemented by
// approvals.Service, which holds every access and approver rule).
type Approvals interface {
	// Inbox returns the pending requests viewer may approve now.
	Inbox(ctx context.Context, viewer broker.Principal) ([]broker.ApprovalInfo, error)
	// Approvals returns the requests f selects that viewer may see.
	Approvals(ctx context.Context, viewer broker.Principal, f broker.ApprovalFilter) ([]broker.ApprovalInfo, error)
	// Approval returns one request viewer may see; not_found otherwise.
	Approval(ctx context.Context, viewer broker.Principal, id string) (broker.ApprovalInfo, error)
	// Decide records a vote and enforces every approver rule.
	Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error)
}

// RunFilter selects runs; empty fields match everything.
type RunFilter struct {
	Graph string
	Since time.Time
	Limit int
}

// Run is one run of a graph as its audit records tell it.
type Run struct {
	Graph, Run     string
	First, Last    time.Time
	Events, Errors int
	Denied         int
}

// ChainCheck is the verification of the audit chains that hold a run's
// records.
type ChainCheck struct {
	Checked time.Time
	Chains  []string
	// Problems say what is broken, one sentence each; none when intact.
	Problems []string
}

// AuditTrail is the audit trail as auditors read it (implemented over
// recordings.Reader, which holds the auditor rule). Every method refuses a
// viewer who is no auditor with forbidden and reads nothing.
type AuditTrail interface {
	// Auditor returns nil when p may read the audit trail.
	Auditor(p broker.Principal) error
	Runs(ctx context.Context, viewer broker.Principal, f RunFilter) ([]Run, error)
	Trace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error)
	// Export writes run's records to w as jsonl or csv.
	Export(ctx context.Context, viewer broker.Principal, run, format string, w io.Writer) (int, error)
	VerifyRun(ctx context.Context, viewer broker.Principal, run string) (ChainCheck, error)
}

// OIDCConfig is the console's OAuth client at an OIDC issuer.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested; nil means openid, email and profile.
	Scopes []string
	// Algorithms accepted for ID tokens; nil means RS256 and ES256.
	Algorithms []string
	// HTTPClient reaches the issuer; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
}

// Reporter is the broker as the console hands it a failure it must not
// show as is: the broker logs an internal failure once, under an incident
// id, and answers the error to show (door.Reporter; *broker.Broker is one).
type Reporter = door.Reporter

// Config wires a Console. Identifier, Reporter, Approvals, Audit and
// PublicURL are required.
type Config struct {
	Identifier Identifier
	Reporter   Reporter
	Approvals  Approvals
	Audit      AuditTrail
	// PublicURL is where browsers reach toolgate; with https the session
	// cookies are Secure, and the OIDC redirect URI is PublicURL +
	// "/console/auth/callback".
	PublicURL string
	// SessionTTL is how long a sign-in lasts at most; 0 means 8 hours.
	SessionTTL time.Duration
	// IdleTimeout ends a session unused for that long; 0 means 30 minutes.
	IdleTimeout time.Duration
	// MaxSessions caps the sessions kept in memory; 0 means 10,000. The
	// least recently used one goes first.
	MaxSessions int
	// OIDC enables sign-in with the identity provider; nil means API keys
	// only.
	OIDC *OIDCConfig
	// PollEvery is how often the inbox page asks for changes; 0 means 5 s.
	PollEvery time.Duration
	Logger    *zap.Logger
	Now       func() time.Time
}

// Validate reports what is missing or wrong.
func (c Config) Validate() error {
	var problems []string
	if c.Identifier == nil {
		problems = append(problems, "Identifier is required")
	}
	if c.Reporter == nil {
		problems = append(problems, "Reporter is required")
	}
	if c.Approvals == nil {
		problems = append(problems, "Approvals is required")
	}
	if c.Audit == nil {
		problems = append(problems, "Audit is required")
	}
	if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		problems = append(problems, "PublicURL must be an absolute http or https URL")
	}
	if c.OIDC != nil && (c.OIDC.Issuer == "" || c.OIDC.ClientID == "") {
		problems = append(problems, "OIDC needs an issuer and a client id")
	}
	if c.SessionTTL < 0 || c.IdleTimeout < 0 || c.PollEvery < 0 || c.MaxSessions < 0 {
		problems = append(problems, "durations and MaxSessions must not be negative")
	}
	if len(problems) > 0 {
		return errors.New("console config: " + strings.Join(problems, "; "))
	}
	return nil
}

// Console is the web console: an http.Handler for /console/.
type Console struct {
	cfg      Config
	log      *zap.Logger
	now      func() time.Time
	secure   bool
	sessions *sessions
	oidc     *oidcClient
	pages    *pages
	handler  http.Handler
}

// New returns the console for a valid config. Templates are parsed here,
// so a broken one stops the server at start, not at the first request.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 10000
	}
	if cfg.PollEvery == 0 {
		cfg.PollEvery = 5 * time.Second
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, pages: p,
		secure:   strings.HasPrefix(cfg.PublicURL, "https://"),
		sessions: newSessions(cfg.SessionTTL, cfg.IdleTimeout, cfg.MaxSessions, cfg.Now),
	}
	if cfg.OIDC != nil {
		c.oidc = newOIDCClient(*cfg.OIDC, strings.TrimRight(cfg.PublicURL, "/")+pathCallback, cfg.Now)
	}
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves the console; mount it at /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }
