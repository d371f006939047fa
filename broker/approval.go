package broker

import (
	"context"
	"encoding/json"
	"time"
)

// ApprovalStatus is where an approval request stands.
type ApprovalStatus string

// The approval statuses.
const (
	ApprovalPending   ApprovalStatus = "pending"
	ApprovalApproved  ApprovalStatus = "approved"
	ApprovalDenied    ApprovalStatus = "denied"
	ApprovalExpired   ApprovalStatus = "expired"
	ApprovalCancelled ApprovalStatus = "cancelled"
	ApprovalConsumed  ApprovalStatus = "consumed"
	// ApprovalExecuting is an approved request whose call is running: one
	// repeat of the call claimed it, and no other repeat may run it.
	ApprovalExecuting ApprovalStatus = "executing"
	// ApprovalStale is a request, pending or approved but unused, whose
	// governing rule changed (a reload changed its condition, approvers or
	// min_approvals): it no longer counts, and the next call makes a new
	// request.
	ApprovalStale ApprovalStatus = "stale"
)

// ApprovalRequest is a call that policy sent for approval.
type ApprovalRequest struct {
	Caller   Caller
	Tool     *Tool
	Args     map[string]any
	ArgsHash string
	Decision Decision
	// ResumeID is the approval id the caller named (X-Toolgate-Approval),
	// "" when none.
	ResumeID string
	// Preview shows approvers what the call would change. The approval
	// gate calls it once, when it makes a new request (never for a repeat
	// that finds its request), and stores what it returns; it never fails
	// (a preview that cannot be taken is Unavailable). nil: no preview.
	Preview func(ctx context.Context) ApprovalPreview
}

// ApprovalOutcome is what the approval gate answered.
type ApprovalOutcome struct {
	ID        string
	Status    ApprovalStatus
	ExpiresAt time.Time
	Reason    string
	Deciders  []string
	// Result is the masked result recorded when the approved call ran; it
	// is set with ApprovalConsumed, which the broker answers without
	// running anything.
	Result json.RawMessage
	// Preview is the request's stored preview, set with ApprovalApproved
	// (nil when the request has none): the approved run must match it.
	Preview *ApprovalPreview
}

// Approvals is the approval gate as the broker sees it.
type Approvals interface {
	// Await finds or creates the approval request for the call and waits
	// for a decision up to the configured wait. A pending outcome means
	// no decision came in time; the call is not run.
	Await(ctx context.Context, req ApprovalRequest) (ApprovalOutcome, error)
}

// ApprovalRecorder is an optional ability of Approvals: the broker reports
// the outcome of a call it ran on an approval (Await answered
// ApprovalApproved), so repeats of the call get the recorded result instead
// of a second execution. result is the masked result, nil when the call
// failed with callErr.
type ApprovalRecorder interface {
	Complete(ctx context.Context, approvalID string, result json.RawMessage, callErr error) error
}

// ApprovalVote is one approver's vote as shown to approvers and auditors.
type ApprovalVote struct {
	Approver string    `json:"approver"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason,omitempty"`
	Channel  string    `json:"channel,omitempty"`
	Time     time.Time `json:"time"`
}

// ApprovalInfo is an approval request as shown to approvers and auditors.
// Everything in it is masked.
type ApprovalInfo struct {
	ID     string         `json:"id"`
	Status ApprovalStatus `json:"status"`
	// Principal is who asked: the human or service principal behind the
	// call (for a grant token, the principal that minted the grant), in
	// normal form. Neither it nor any of its aliases may approve.
	Principal string `json:"principal"`
	// Via is the credential the call came with when it is not Principal
	// itself ("grant:gr_…"). The approval is bound to it: only a call made
	// with the same credential identity runs on it.
	Via           string          `json:"via,omitempty"`
	Graph         string          `json:"graph,omitempty"`
	Node          string          `json:"node,omitempty"`
	Run           string          `json:"run,omitempty"`
	Thread        string          `json:"thread,omitempty"`
	Tool          string          `json:"tool"`
	Target        string          `json:"target,omitempty"`
	Args          json.RawMessage `json:"args"`
	ArgsHash      string          `json:"args_hash"`
	Rule          string          `json:"rule,omitempty"`
	PolicyVersion string          `json:"policy_version,omitempty"`
	// RuleVersion identifies the governing rule as it was when the request
	// was made (Decision.RuleVersion); when it changes, the request is stale.
	RuleVersion  string         `json:"rule_version,omitempty"`
	Approvers    []string       `json:"approvers"`
	MinApprovals int            `json:"min_approvals"`
	Reason       string         `json:"reason,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	ExpiresAt    time.Time      `json:"expires_at"`
	Votes        []ApprovalVote `json:"votes,omitempty"`
	// Preview is what the call would change, as its approvers see it
	// (masked); nil for a request made without one.
	Preview *ApprovalPreview `json:"preview,omitempty"`
}

// ApprovalFilter selects approval requests to list. Empty fields match
// everything; Since is inclusive. Limit caps how many requests are read
// (pending ones first, then the newest); 0 means 100.
type ApprovalFilter struct {
	Status ApprovalStatus
	Graph  string
	Tool   string
	Since  time.Time
	Limit  int
}
