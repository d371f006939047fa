package broker

import (
	"context"
	"encoding/json"
	"time"
)

// EventKind says what an audit record is about.
type EventKind string

// The event kinds.
const (
	EventToolCall          EventKind = "tool_call"
	EventGrantMinted       EventKind = "grant_minted"
	EventGrantRevoked      EventKind = "grant_revoked"
	EventApprovalRequested EventKind = "approval_requested"
	EventApprovalVoted     EventKind = "approval_voted"
	EventApprovalDecided   EventKind = "approval_decided"
	EventApprovalConsumed  EventKind = "approval_consumed"
	EventApprovalExpired   EventKind = "approval_expired"
	// EventApprovalStale: a pending or unused approval no longer counts
	// because its governing rule changed.
	EventApprovalStale  EventKind = "approval_stale"
	EventSessionOpened  EventKind = "passthrough_session_opened"
	EventStatement      EventKind = "passthrough_statement"
	EventSessionClosed  EventKind = "passthrough_session_closed"
	EventPolicyReloaded EventKind = "policy_reloaded"
	// EventPrincipalDisabled and EventPrincipalEnabled: an admin or the
	// identity provider (SCIM) disabled or enabled a principal; Detail
	// names it ("subject") and what was suspended with it.
	EventPrincipalDisabled EventKind = "principal_disabled"
	EventPrincipalEnabled  EventKind = "principal_enabled"
	// EventKeyCreated and EventKeyRevoked: an admin made or revoked an API
	// key at run time (never the key itself).
	EventKeyCreated EventKind = "key_created"
	EventKeyRevoked EventKind = "key_revoked"
	// EventAccessRefused: a credential was refused before any call because
	// the principal accountable for it is disabled (owner_disabled).
	EventAccessRefused EventKind = "access_refused"
	// EventSessionsClosed: open MCP streams and passthrough sessions of a
	// suspended credential were closed on one instance.
	EventSessionsClosed EventKind = "sessions_closed"
	// EventToolQuarantined: an upstream MCP server's tool is withheld
	// because its definition differs from its pin; Detail names the
	// upstream tool and the parts that changed. It is written when a tool
	// enters quarantine or what changed differs from the last record.
	EventToolQuarantined EventKind = "tool_quarantined"
)

// Status is how a call ended.
type Status string

// The statuses.
const (
	StatusOK      Status = "ok"
	StatusDenied  Status = "denied"
	StatusError   Status = "error"
	StatusPending Status = "pending"
)

// Event is one audit record. Everything in it is already masked.
type Event struct {
	ID            string          `json:"id"`
	Time          time.Time       `json:"time"`
	Kind          EventKind       `json:"kind"`
	Principal     string          `json:"principal,omitempty"`
	AuthMethod    string          `json:"auth_method,omitempty"`
	TokenID       string          `json:"token_id,omitempty"`
	Graph         string          `json:"graph,omitempty"`
	Node          string          `json:"node,omitempty"`
	Run           string          `json:"run,omitempty"`
	Thread        string          `json:"thread,omitempty"`
	ToolCallID    string          `json:"tool_call_id,omitempty"`
	Tool          string          `json:"tool,omitempty"`
	Target        string          `json:"target,omitempty"`
	Door          string          `json:"door,omitempty"`
	Args          json.RawMessage `json:"args,omitempty"`
	ArgsHash      string          `json:"args_hash,omitempty"`
	Decision      string          `json:"decision,omitempty"`
	Rule          string          `json:"rule,omitempty"`
	PolicyVersion string          `json:"policy_version,omitempty"`
	ApprovalID    string          `json:"approval_id,omitempty"`
	Status        Status          `json:"status,omitempty"`
	ErrorCode     string          `json:"error_code,omitempty"`
	Error         string          `json:"error,omitempty"`
	Rows          int             `json:"rows,omitempty"`
	Bytes         int             `json:"bytes,omitempty"`
	DurationMS    float64         `json:"duration_ms,omitempty"`
	ExecMS        float64         `json:"exec_ms,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Masked        MaskStats       `json:"masked,omitempty"`
	TraceID       string          `json:"trace_id,omitempty"`
	// Detail carries kind-specific fields (a statement, a vote).
	Detail map[string]any `json:"detail,omitempty"`
}

// Recorder makes audit records durable.
type Recorder interface {
	// Record returns only once the event is durable. An error means it is
	// not; the broker then fails the call closed.
	Record(ctx context.Context, ev Event) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, ev Event) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, ev Event) error { return f(ctx, ev) }
