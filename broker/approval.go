package broker

import (
	"context"
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
}

// ApprovalOutcome is what the approval gate answered.
type ApprovalOutcome struct {
	ID        string
	Status    ApprovalStatus
	ExpiresAt time.Time
	Reason    string
	Deciders  []string
}

// Approvals is the approval gate as the broker sees it.
type Approvals interface {
	// Await finds or creates the approval request for the call and waits
	// for a decision up to the configured wait. A pending outcome means
	// no decision came in time; the call is not run.
	Await(ctx context.Context, req ApprovalRequest) (ApprovalOutcome, error)
}
