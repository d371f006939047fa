package approvals

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// The access rules of approval requests live here, for every channel: the
// HTTP API, the CLI (through the API), Slack and the console ask the
// Service, and their handlers only translate.

// MayView reports whether principal p may see request r: it is one of its
// approvers, who asked for it, or the credential it was asked with (names
// compared in normal form).
func MayView(r broker.ApprovalInfo, p broker.Principal) bool {
	asked := []string{r.Principal}
	if r.Via != "" {
		asked = append(asked, r.Via)
	}
	return broker.MatchPrincipal(p.PersonalNames(), asked) || broker.MatchPrincipal(p.Names(), r.Approvers)
}

// mayDecide refuses a vote by approver on r that the approver rules forbid:
// a grant token never decides; who asked for the call, under any alias (its
// subject or verified email, in normal form, or for a grant token the
// principal that minted the grant), may not approve it; and only the rule's
// approvers decide. It says nothing of r's status.
func mayDecide(r Request, approver broker.Principal, approve bool) error {
	if approver.Method == broker.AuthGrant {
		return broker.Errorf(broker.CodeForbidden, "a grant token acts as a node of its graph and cannot decide approvals; use your own credential")
	}
	names := approver.Names()
	if approve && (broker.MatchPrincipal(names, r.Requesters) || broker.MatchPrincipal(approver.PersonalNames(), []string{r.Principal, r.Caller})) {
		return broker.Errorf(broker.CodeForbidden, "%s asked for this call and may not approve it; another approver (%s) must", approver.Subject, strings.Join(r.Approvers, ", "))
	}
	if !broker.MatchPrincipal(names, r.Approvers) {
		return broker.Errorf(broker.CodeForbidden, "%s may not decide approval %s; only %s may", approver.Subject, r.ID, strings.Join(r.Approvers, ", "))
	}
	return nil
}

// voted reports whether approver already voted on r.
func voted(r Request, approver broker.Principal) bool {
	me := broker.PrincipalName(approver.Subject)
	for _, v := range r.Votes {
		if broker.PrincipalName(v.Approver) == me {
			return true
		}
	}
	return false
}

// Approval returns request id if viewer may see it (MayView). Another
// principal's request is reported as unknown (not_found), so ids do not
// leak.
func (s *Service) Approval(ctx context.Context, viewer broker.Principal, id string) (broker.ApprovalInfo, error) {
	r, err := s.Get(ctx, id)
	if err == nil && !MayView(r.ApprovalInfo, viewer) {
		err = broker.Errorf(broker.CodeNotFound, "no approval request %s that %s may see", id, viewer.Subject)
	}
	if err != nil {
		return broker.ApprovalInfo{}, err
	}
	return r.ApprovalInfo, nil
}

// Approvals returns the requests f selects that viewer may see (MayView):
// pending ones first, then the newest. At most f.Limit requests are read
// (0 means 100, at most 1000), before the ones viewer may not see are left
// out.
func (s *Service) Approvals(ctx context.Context, viewer broker.Principal, f broker.ApprovalFilter) ([]broker.ApprovalInfo, error) {
	rs, err := s.list(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]broker.ApprovalInfo, 0, len(rs))
	for _, r := range rs {
		if MayView(r.ApprovalInfo, viewer) {
			out = append(out, r.ApprovalInfo)
		}
	}
	return out, nil
}

// Inbox returns the pending, unexpired requests viewer may approve now:
// it is one of their approvers, did not ask for the call under any alias
// (the rules Decide enforces) and has not voted yet. Oldest first, so the
// request closest to expiring leads.
func (s *Service) Inbox(ctx context.Context, viewer broker.Principal) ([]broker.ApprovalInfo, error) {
	rs, err := s.list(ctx, broker.ApprovalFilter{Status: broker.ApprovalPending, Limit: 1000})
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []broker.ApprovalInfo
	for _, r := range rs {
		if now.Before(r.ExpiresAt) && mayDecide(r, viewer, true) == nil && !voted(r, viewer) {
			out = append(out, r.ApprovalInfo)
		}
	}
	slices.SortFunc(out, func(a, b broker.ApprovalInfo) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// list reads the requests f selects, with the limit bounded.
func (s *Service) list(ctx context.Context, f broker.ApprovalFilter) ([]Request, error) {
	switch {
	case f.Limit <= 0:
		f.Limit = 100
	case f.Limit > 1000:
		f.Limit = 1000
	}
	rs, err := s.store.list(ctx, f)
	if err != nil {
		return nil, storeErr(err)
	}
	return rs, nil
}
