package config

import (
	"fmt"
	"time"
)

// Config is the whole toolgate.yaml document.
type Config struct {
	Listen    string `yaml:"listen" json:"listen,omitempty"`
	PublicURL string `yaml:"public_url" json:"public_url,omitempty"`
	// AllowedOrigins are the web page origins, beside public_url's, whose
	// requests /mcp serves; a request from any other origin is refused.
	AllowedOrigins []string          `yaml:"allowed_origins" json:"allowed_origins,omitempty"`
	Store          Store             `yaml:"store" json:"store"`
	Auth           Auth              `yaml:"auth" json:"auth"`
	Targets        map[string]Target `yaml:"targets" json:"targets,omitempty"`
	ToolsDir       string            `yaml:"tools_dir" json:"tools_dir,omitempty"`
	Graphs         map[string]Graph  `yaml:"graphs" json:"graphs,omitempty"`
	Approvals      Approvals         `yaml:"approvals" json:"approvals"`
	Masking        Masking           `yaml:"masking" json:"masking"`
	Recordings     Recordings        `yaml:"recordings" json:"recordings"`
	Passthrough    Passthrough       `yaml:"passthrough" json:"passthrough"`
	Limits         Limits            `yaml:"limits" json:"limits"`
	Metrics        Metrics           `yaml:"metrics" json:"metrics"`
	Telemetry      Telemetry         `yaml:"telemetry" json:"telemetry"`
	Console        Console           `yaml:"console" json:"console"`
	// ToolsLock is the lock file that pins the definitions of the mcp
	// targets' tools (default tools.lock beside the config).
	ToolsLock string `yaml:"tools_lock" json:"tools_lock,omitempty"`

	// File is the path the config was loaded from; relative paths inside
	// it (tools_dir, store.path, target paths) resolve against its folder.
	File string `yaml:"-" json:"-"`
	// lines maps each config path to its line in File.
	lines map[string]int
}

// Line returns the line in File of a config path such as
// "graphs.g.nodes.n.allow[1]", or of its nearest parent that is in the file;
// 0 when it is unknown (a Config built in code).
func (c *Config) Line(path string) int { return lineOf(c.lines, path) }

// Problem is a problem at a config path, located at its line in File.
func (c *Config) Problem(path, reason string) Problem {
	return Problem{File: c.File, Line: c.Line(path), Path: path, Reason: reason}
}

// Store is where grants, approvals, budgets and recordings live.
type Store struct {
	Driver string `yaml:"driver" json:"driver,omitempty"` // sqlite | postgres
	Path   string `yaml:"path" json:"path,omitempty"`     // sqlite
	DSN    string `yaml:"dsn" json:"-"`                   // postgres; secret
}

// Auth configures how callers authenticate.
type Auth struct {
	OIDC    *OIDC    `yaml:"oidc" json:"oidc,omitempty"`
	APIKeys []APIKey `yaml:"api_keys" json:"api_keys,omitempty"`
	// Auditors are principals allowed to read recordings over HTTP.
	Auditors []string `yaml:"auditors" json:"auditors,omitempty"`
	// GrantMaxTTL caps the TTL of JIT grants.
	GrantMaxTTL Duration `yaml:"grant_max_ttl" json:"grant_max_ttl,omitempty"`
	// Admins are principals allowed to manage API keys and disable or
	// enable principals.
	Admins []string `yaml:"admins" json:"admins,omitempty"`
	// Keys configures the API keys made at run time (POST /v1/keys).
	Keys Keys `yaml:"keys" json:"keys,omitempty"`
	// SCIM, when set, serves SCIM 2.0 at /scim/v2 for the identity
	// provider's user provisioning.
	SCIM *SCIM `yaml:"scim" json:"scim,omitempty"`
	// Workload names the workload identity issuers whose tokens are
	// accepted as principals workload:<name>:<sub>.
	Workload map[string]Workload `yaml:"workload" json:"workload,omitempty"`
}

// Keys configures API keys made at run time.
type Keys struct {
	// MaxTTL caps a key's lifetime (default 90d).
	MaxTTL Duration `yaml:"max_ttl" json:"max_ttl,omitempty"`
}

// SCIM configures the SCIM 2.0 endpoint.
type SCIM struct {
	// Token is the bearer token the identity provider sends; secret, use
	// ${ENV}.
	Token string `yaml:"token" json:"-"`
}

// Workload is one workload identity issuer (a Kubernetes cluster, a CI
// system).
type Workload struct {
	Issuer     string   `yaml:"issuer" json:"issuer"`
	Audience   string   `yaml:"audience" json:"audience"`
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// MaxLifetime refuses tokens that live longer (default 2h).
	MaxLifetime Duration `yaml:"max_lifetime" json:"max_lifetime,omitempty"`
	// Claims are required claim values by JSON pointer.
	Claims map[string][]string `yaml:"claims" json:"claims,omitempty"`
	// CAFile is a PEM file of the CA certificates that sign the issuer's
	// TLS certificate (a cluster's own CA), besides the system's.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
}

// OIDC configures the OIDC issuer whose tokens are accepted.
type OIDC struct {
	Issuer      string   `yaml:"issuer" json:"issuer"`
	Audience    string   `yaml:"audience" json:"audience"`
	GroupsClaim string   `yaml:"groups_claim" json:"groups_claim,omitempty"`
	Algorithms  []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// AssumeEmailVerified trusts an email claim that comes without an
	// email_verified claim, for issuers that only issue verified emails.
	AssumeEmailVerified bool `yaml:"assume_email_verified" json:"assume_email_verified,omitempty"`
}

// APIKey is an API key, stored only as the SHA-256 of the key.
type APIKey struct {
	Name   string `yaml:"name" json:"name"`
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Owner is the principal accountable for the key.
	Owner string `yaml:"owner" json:"owner,omitempty"`
	// Expires is when the key stops working: RFC 3339 or a date (UTC).
	Expires string `yaml:"expires" json:"expires,omitempty"`
}

// ExpiresAt parses Expires; zero when it is empty.
func (k APIKey) ExpiresAt() (time.Time, error) {
	if k.Expires == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, k.Expires); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", k.Expires)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q must be RFC 3339 (2026-12-31T00:00:00Z) or a date (2026-12-31)", k.Expires)
	}
	return t, nil
}

// Graph is one LangGraph graph's policy.
type Graph struct {
	Principals []string `yaml:"principals" json:"principals,omitempty"`
	// Owners are the principals accountable for the graph; when every one
	// is disabled the graph is suspended.
	Owners      []string        `yaml:"owners" json:"owners,omitempty"`
	ScopeSchema map[string]any  `yaml:"scope_schema" json:"scope_schema,omitempty"`
	Budgets     Budgets         `yaml:"budgets" json:"budgets,omitempty"`
	Rules       []Rule          `yaml:"rules" json:"rules,omitempty"`
	Nodes       map[string]Node `yaml:"nodes" json:"nodes,omitempty"`
}

// Node is one node's (or node-path glob's) policy.
type Node struct {
	Allow       []string                     `yaml:"allow" json:"allow,omitempty"`
	Bind        map[string]map[string]string `yaml:"bind" json:"bind,omitempty"`
	Rules       []Rule                       `yaml:"rules" json:"rules,omitempty"`
	Budgets     Budgets                      `yaml:"budgets" json:"budgets,omitempty"`
	Passthrough map[string]PassthroughPolicy `yaml:"passthrough" json:"passthrough,omitempty"`
}

// Rule refines a node's or graph's policy.
type Rule struct {
	Tool         string   `yaml:"tool" json:"tool,omitempty"`
	When         string   `yaml:"when" json:"when,omitempty"`
	Effect       string   `yaml:"effect" json:"effect"`
	Reason       string   `yaml:"reason" json:"reason,omitempty"`
	Approvers    []string `yaml:"approvers" json:"approvers,omitempty"`
	MinApprovals int      `yaml:"min_approvals" json:"min_approvals,omitempty"`
	Timeout      Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Budgets limit calls, rows and rate.
type Budgets struct {
	CallsPerRun    int                `yaml:"calls_per_run" json:"calls_per_run,omitempty"`
	RowsPerRun     int                `yaml:"rows_per_run" json:"rows_per_run,omitempty"`
	CallsPerMinute int                `yaml:"calls_per_minute" json:"calls_per_minute,omitempty"`
	Tools          map[string]Budgets `yaml:"tools" json:"tools,omitempty"`
}

// PassthroughPolicy is a node's raw-protocol policy for one target.
type PassthroughPolicy struct {
	Statements []string `yaml:"statements" json:"statements,omitempty"` // read | write | ddl
	Tables     []string `yaml:"tables" json:"tables,omitempty"`
	Methods    []string `yaml:"methods" json:"methods,omitempty"`
	Paths      []string `yaml:"paths" json:"paths,omitempty"`
	// Functions extend the built-in list of functions a statement may
	// call without a rule: names as PostgreSQL spells them ("lower_ascii",
	// "util.slugify", `"MixedCase"`, "operator ~>").
	Functions []string `yaml:"functions" json:"functions,omitempty"`
	Rules     []Rule   `yaml:"rules" json:"rules,omitempty"`
	// Role is an operator-managed database login the node's Postgres
	// passthrough sessions run as, instead of a role toolgate provisions.
	Role *PassthroughRole `yaml:"role" json:"role,omitempty"`
}

// PassthroughRole is a database login declared by the operator.
type PassthroughRole struct {
	User     string `yaml:"user" json:"user"`
	Password string `yaml:"password" json:"-"` // secret
}

// Approvals configures the approval gate.
type Approvals struct {
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	Wait    Duration `yaml:"wait" json:"wait,omitempty"`
	// StaleAfter is how long an approved call may run before the sweeper
	// gives up on it (its instance stopped mid-call); default 15m.
	StaleAfter Duration    `yaml:"stale_after" json:"stale_after,omitempty"`
	Slack      *Slack      `yaml:"slack" json:"slack,omitempty"`
	OnDecision *OnDecision `yaml:"on_decision" json:"on_decision,omitempty"`
	// Preview bounds the effect preview a held call's request shows.
	Preview ApprovalPreview `yaml:"preview" json:"preview,omitempty"`
}

// ApprovalPreview bounds effect previews (approvals.preview): how many rows
// the sample holds and how large it may be once masked. The time a preview
// may take is the target's (targets.<t>.preview_timeout).
type ApprovalPreview struct {
	// MaxRows caps the sample rows; 0 means 20.
	MaxRows int `yaml:"max_rows" json:"max_rows,omitempty"`
	// MaxBytes caps the masked sample's size; 0 means 64 KiB.
	MaxBytes int `yaml:"max_bytes" json:"max_bytes,omitempty"`
}

// Slack configures the Slack notifier.
type Slack struct {
	Mode          string            `yaml:"mode" json:"mode"` // socket | http
	BotToken      string            `yaml:"bot_token" json:"-"`
	AppToken      string            `yaml:"app_token" json:"-"`
	SigningSecret string            `yaml:"signing_secret" json:"-"`
	Channel       string            `yaml:"channel" json:"channel"`
	APIURL        string            `yaml:"api_url" json:"api_url,omitempty"`
	Users         map[string]string `yaml:"users" json:"users,omitempty"` // Slack user id -> principal
	// TeamID, when set, is the workspace the app is installed in: clicks
	// from any other workspace, or by a user of another (a Slack Connect
	// member of a shared channel), are refused.
	TeamID string `yaml:"team_id" json:"team_id,omitempty"`
	// EnterpriseID, when set, is the Enterprise Grid organization clicks
	// must come from; its users may then belong to any of its workspaces.
	EnterpriseID string `yaml:"enterprise_id" json:"enterprise_id,omitempty"`
	// AppID, when set, refuses interactions addressed to another app.
	AppID string `yaml:"app_id" json:"app_id,omitempty"`
}

// OnDecision is a webhook called with each approval decision.
type OnDecision struct {
	URL    string `yaml:"url" json:"url"`
	Secret string `yaml:"secret" json:"-"`
}

// Masking configures masking.
type Masking struct {
	HashKey   string            `yaml:"hash_key" json:"-"`
	Detectors map[string]bool   `yaml:"detectors" json:"detectors,omitempty"`
	Rules     map[string]string `yaml:"rules" json:"rules,omitempty"`
}

// Recordings configures the audit trail.
type Recordings struct {
	Retention Duration `yaml:"retention" json:"retention,omitempty"`
	Results   string   `yaml:"results" json:"results,omitempty"` // masked | none
	// Instance names this instance's audit chain, so a restart continues
	// it. Empty: "local" on a SQLite store (one writer), a random name on
	// Postgres (set one per instance to keep chains across restarts).
	Instance string `yaml:"instance" json:"instance,omitempty"`
	// CheckpointKey signs retention checkpoints (HMAC-SHA256) so `audit
	// verify` can tell a forged one; secret, use ${ENV}.
	CheckpointKey string `yaml:"checkpoint_key" json:"-"`
}

// Passthrough configures the raw-protocol proxies.
type Passthrough struct {
	Postgres []PostgresListener `yaml:"postgres" json:"postgres,omitempty"`
	HTTP     []HTTPPrefix       `yaml:"http" json:"http,omitempty"`
	// RoleKey derives the passwords of the database roles toolgate
	// provisions for passthrough sessions (HMAC-SHA256); every instance
	// serving a target must share it. Secret, use ${ENV}. Empty: a random
	// key per process.
	RoleKey string `yaml:"role_key" json:"-"`
}

// PostgresListener is one Postgres wire proxy listener.
type PostgresListener struct {
	Listen  string `yaml:"listen" json:"listen"`
	Target  string `yaml:"target" json:"target"`
	TLSCert string `yaml:"tls_cert" json:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key" json:"tls_key,omitempty"`
	// MaxConnsPerGrant caps the open sessions of one grant (of one graph
	// and node for API-key sessions); 0 means 10.
	MaxConnsPerGrant int `yaml:"max_conns_per_grant" json:"max_conns_per_grant,omitempty"`
	// MaxPendingLogins caps the connections of this listener that have not
	// yet logged in; one more is refused with SQLSTATE 53300. 0 means 256.
	MaxPendingLogins int `yaml:"max_pending_logins" json:"max_pending_logins,omitempty"`
	// MaxMessageBytes caps one protocol message in either direction; 0
	// means 16 MiB. MaxRowBytes caps one result row (0: 16 MiB),
	// MaxCellBytes one value of a row or one Bind parameter (0: 8 MiB).
	MaxMessageBytes int `yaml:"max_message_bytes" json:"max_message_bytes,omitempty"`
	MaxRowBytes     int `yaml:"max_row_bytes" json:"max_row_bytes,omitempty"`
	MaxCellBytes    int `yaml:"max_cell_bytes" json:"max_cell_bytes,omitempty"`
	// SessionsAsAdmin lets sessions run as the target's dsn login instead
	// of per-grant roles (lock 2 off); toolgate warns at every start.
	SessionsAsAdmin bool `yaml:"sessions_as_admin" json:"sessions_as_admin,omitempty"`
	// AllowPrivilegedLogin lets sessions run as a superuser or a member
	// of the server-file/program/all-data roles; toolgate warns at every
	// start.
	AllowPrivilegedLogin bool `yaml:"allow_privileged_login" json:"allow_privileged_login,omitempty"`
	// RoleConnLimit is the CONNECTION LIMIT of each provisioned role
	// (default 10).
	RoleConnLimit int `yaml:"role_conn_limit" json:"role_conn_limit,omitempty"`
}

// HTTPPrefix is one HTTP passthrough mount.
type HTTPPrefix struct {
	PathPrefix string `yaml:"path_prefix" json:"path_prefix"`
	Target     string `yaml:"target" json:"target"`
	// PassContentTypes are the media types ("image/png", "image/*") whose
	// bodies pass unmasked; any other body toolgate cannot mask is refused.
	PassContentTypes []string `yaml:"pass_content_types" json:"pass_content_types,omitempty"`
}

// Metrics configures GET /metrics.
type Metrics struct {
	// Token, when set, is the bearer token /metrics requires
	// (Authorization: Bearer <token>); secret, use ${ENV}.
	Token string `yaml:"token" json:"-"`
}

// Telemetry configures OpenTelemetry tracing. Tracing is off unless OTLP
// names an endpoint here or the standard OTEL_* environment variables ask
// for it (cmd/toolgate reads them).
type Telemetry struct {
	OTLP OTLP `yaml:"otlp" json:"otlp,omitempty"`
	// SampleRatio is the share of the traces toolgate starts that are
	// sampled (0 to 1, default 1); a caller's sampling decision is
	// followed. Nil leaves it to OTEL_TRACES_SAMPLER.
	SampleRatio *float64 `yaml:"sample_ratio" json:"sample_ratio,omitempty"`
}

// OTLP is where spans are exported.
type OTLP struct {
	// Endpoint is the collector's URL: for http/protobuf the base
	// (http://collector:4318, spans go to /v1/traces) or a full
	// .../v1/traces URL; for grpc http://collector:4317. http:// means
	// without TLS.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Protocol is "http/protobuf" (default) or "grpc".
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
	// Headers are sent with every export (an API key); secret, use ${ENV}.
	Headers map[string]string `yaml:"headers" json:"-"`
}

// Console configures the web console served under /console/.
type Console struct {
	// SessionTTL is how long a console sign-in lasts at most; default 8h.
	SessionTTL Duration `yaml:"session_ttl" json:"session_ttl,omitempty"`
	// IdleTimeout ends a console session unused for that long; default
	// 30m.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// OIDC is the console's OAuth client at the auth.oidc issuer, for
	// sign-in with the authorization code flow and PKCE; nil means API-key
	// sign-in only.
	OIDC *ConsoleOIDC `yaml:"oidc" json:"oidc,omitempty"`
}

// ConsoleOIDC is the console's OAuth client. Its redirect URI is
// public_url + "/console/auth/callback".
type ConsoleOIDC struct {
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecret is empty for a public client (PKCE alone); secret, use
	// ${ENV}.
	ClientSecret string `yaml:"client_secret" json:"-"`
	// Scopes requested; default openid, email, profile.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
}

// Limits are request limits.
type Limits struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// MaxHeaderBytes caps a request's header fields on the main listener
	// (default 64 KiB); a request over it is refused with 431.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes,omitempty"`
}

// Duration is a time.Duration written as "5s", "30m" or "90d".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
