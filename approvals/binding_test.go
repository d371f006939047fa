package approvals_test

import (
	"context"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// TestNoSelfApproval: whoever asked for a call may not approve it under any
// alias: another letter case of the email, a compatibility form of the same
// characters, or, for a call made with a grant token, as the principal that
// minted the grant. The rule lives in the service, so every channel (HTTP,
// CLI, Slack, console) gets it.
func TestNoSelfApproval(t *testing.T) {
	anaMixed := broker.Principal{Subject: "user:Ana@Example.COM", Email: "Ana@Example.COM", Groups: []string{"finance"}, Method: broker.AuthOIDC}
	anaSlack := broker.Principal{Subject: "user:ana@example.com", Email: "ana@example.com", Method: "slack", TokenID: "slack:U1"}
	anaWide := broker.Principal{Subject: "user:ａｎａ@example.com", Method: "slack"} // fullwidth letters
	grantByAna := broker.Principal{Subject: "grant:gr_1", Method: broker.AuthGrant, TokenID: "gr_1", Minter: &anaMixed}
	grantByKey := broker.Principal{Subject: "grant:gr_2", Method: broker.AuthGrant, TokenID: "gr_2", Minter: &broker.Principal{Subject: "key:support-bot", Method: broker.AuthAPIKey}}
	for _, tc := range []struct {
		name      string
		requester broker.Principal
		approver  broker.Principal
		code      broker.Code
		who       string // the request's principal (who asked)
	}{
		{"email letter case", anaMixed, anaSlack, broker.CodeForbidden, "user:ana@example.com"},
		{"fullwidth letters", anaMixed, anaWide, broker.CodeForbidden, "user:ana@example.com"},
		{"minter of the grant", grantByAna, ana, broker.CodeForbidden, "user:ana@example.com"},
		{"minter of the grant from slack", grantByAna, anaSlack, broker.CodeForbidden, "user:ana@example.com"},
		{"grant token itself", grantByAna, grantByAna, broker.CodeForbidden, "user:ana@example.com"},
		{"another person", grantByAna, ben, "", "user:ana@example.com"},
		{"grant minted by a service", grantByKey, ana, "", "key:support-bot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sqliteDB(t))
			ctx := context.Background()
			req := request(tc.requester, "run-1", refundArgs, 1)
			req.Decision.Approvers = []string{"group:finance", "user:ana@example.com"}
			out, err := e.svc.Await(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := e.svc.Get(ctx, out.ID)
			if r.Principal != tc.who {
				t.Errorf("recorded requester = %q, want %q (via %q)", r.Principal, tc.who, r.Via)
			}
			if tc.requester.Method == broker.AuthGrant && r.Via != tc.requester.Subject {
				t.Errorf("via = %q, want the grant %q", r.Via, tc.requester.Subject)
			}
			st, err := e.svc.Decide(ctx, out.ID, tc.approver, true, "", "slack")
			if broker.CodeOf(err) != tc.code {
				t.Fatalf("Decide by %s = %s, %v; want code %q", tc.approver.Subject, st, err, tc.code)
			}
			r, _ = e.svc.Get(ctx, out.ID)
			want := broker.ApprovalApproved
			if tc.code != "" {
				want = broker.ApprovalPending
				if len(r.Votes) != 0 {
					t.Errorf("a refused vote was stored: %+v", r.Votes)
				}
			}
			if r.Status != want {
				t.Errorf("status = %s, want %s", r.Status, want)
			}
		})
	}
}

// TestApprovalBoundToCaller: an approved request runs only for the caller
// that asked. Another principal of the same graph calling with the same
// arguments in the same run gets its own new request, and naming the other
// caller's approval is refused.
func TestApprovalBoundToCaller(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		e := open(t)
		ctx := context.Background()
		id := pending(t, e, agent, 1)
		if _, err := e.svc.Decide(ctx, id, ana, true, "", "http"); err != nil {
			t.Fatal(err)
		}
		other := broker.Principal{Subject: "key:other-bot", Method: broker.AuthAPIKey}
		out, err := e.svc.Await(ctx, request(other, "run-1", refundArgs, 1))
		if err != nil || out.Status != broker.ApprovalPending || out.ID == id {
			t.Fatalf("another caller = %+v, %v; want its own pending request", out, err)
		}
		req := request(other, "run-1", refundArgs, 1)
		req.ResumeID = id
		if _, err := e.svc.Await(ctx, req); broker.CodeOf(err) != broker.CodeForbidden {
			t.Fatalf("another caller naming the approval = %v, want forbidden", err)
		}
		if r, _ := e.svc.Get(ctx, id); r.Status != broker.ApprovalApproved {
			t.Fatalf("the approval is %s, want still approved for its own caller", r.Status)
		}
		// The same caller under another spelling of its name is the same
		// caller.
		same := agent
		same.Subject = "KEY:support-bot"
		out, err = e.svc.Await(ctx, request(same, "run-1", refundArgs, 1))
		if err != nil || out.Status != broker.ApprovalApproved || out.ID != id {
			t.Fatalf("the caller itself = %+v, %v; want to claim %s", out, err, id)
		}
	})
}

// TestRuleChangeMakesApprovalStale: an approval is bound to its governing
// rule. A reload that changes the rule's approvers, min_approvals or
// condition makes a pending or approved-but-unused request stale: the call
// is refused with approval_stale and nothing runs, and the next call asks
// again under the new rule. Edits elsewhere in the policy (another
// PolicyVersion, the same rule) do not.
func TestRuleChangeMakesApprovalStale(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		for _, tc := range []struct {
			name    string
			approve bool // approve before the change
			change  func(*broker.Decision)
			stale   bool
		}{
			{"approved, then 2 of bob and carol", true, func(d *broker.Decision) {
				d.Approvers = []string{"user:bob@example.com", "user:carol@example.com"}
				d.MinApprovals = 2
			}, true},
			{"pending, then min_approvals 2", false, func(d *broker.Decision) { d.MinApprovals = 2 }, true},
			{"approved, then condition edited", true, func(d *broker.Decision) { d.RuleVersion = "when-changed" }, true},
			{"approved, unrelated edit", true, func(d *broker.Decision) { d.PolicyVersion = "pv2" }, false},
			{"approved, approvers reordered and respelled", true, func(d *broker.Decision) { d.Approvers = []string{"GROUP:finance"} }, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := open(t)
				ctx := context.Background()
				id := pending(t, e, agent, 1)
				if tc.approve {
					if _, err := e.svc.Decide(ctx, id, ana, true, "", "http"); err != nil {
						t.Fatal(err)
					}
				}
				req := request(agent, "run-1", refundArgs, 1)
				tc.change(&req.Decision)
				out, err := e.svc.Await(ctx, req)
				r, _ := e.svc.Get(ctx, id)
				if !tc.stale {
					if err != nil || out.ID != id || out.Status != broker.ApprovalApproved {
						t.Fatalf("after an unrelated change: %+v, %v; want the approval claimed", out, err)
					}
					return
				}
				if broker.CodeOf(err) != broker.CodeApprovalStale || !strings.Contains(err.Error(), "not performed") {
					t.Fatalf("after the rule changed: %+v, %v; want approval_stale", out, err)
				}
				if r.Status != broker.ApprovalStale {
					t.Fatalf("old request is %s, want stale", r.Status)
				}
				if k := e.rec.kinds(id); k[len(k)-1] != broker.EventApprovalStale {
					t.Errorf("events = %v, want approval_stale last", k)
				}
				// The next call asks again, under the new rule.
				out, err = e.svc.Await(ctx, req)
				if err != nil || out.Status != broker.ApprovalPending || out.ID == id {
					t.Fatalf("next call = %+v, %v; want a new pending request", out, err)
				}
				nr, _ := e.svc.Get(ctx, out.ID)
				if nr.MinApprovals != max(1, req.Decision.MinApprovals) || strings.Join(nr.Approvers, ",") != strings.Join(req.Decision.Approvers, ",") {
					t.Errorf("new request has approvers %v min %d, want the new rule's", nr.Approvers, nr.MinApprovals)
				}
				// The old approval cannot be decided any more either.
				if _, err := e.svc.Decide(ctx, id, ben, true, "", "http"); broker.CodeOf(err) != broker.CodeInvalidRequest {
					t.Errorf("vote on a stale request = %v, want invalid_request", err)
				}
			})
		}
	})
}
