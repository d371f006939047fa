package approvals_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

func ids(list []broker.ApprovalInfo) []string {
	out := make([]string, 0, len(list))
	for _, r := range list {
		out = append(out, r.ID)
	}
	return out
}

// TestMayView: who asked (under any alias), the credential it was asked
// with and the rule's approvers see a request; nobody else does.
func TestMayView(t *testing.T) {
	r := broker.ApprovalInfo{Principal: "user:ana@example.com", Via: "grant:gr_1", Approvers: []string{"group:finance", "key:approver"}}
	for _, tc := range []struct {
		name string
		p    broker.Principal
		want bool
	}{
		{"the requester", broker.Principal{Subject: "user:ana@example.com"}, true},
		{"the requester, other spelling", broker.Principal{Subject: "user:Ana@Example.COM"}, true},
		{"the requester by verified email", broker.Principal{Subject: "user:sub-7", Email: "ana@example.com"}, true},
		{"the grant it was asked with", broker.Principal{Subject: "grant:gr_1", Method: broker.AuthGrant}, true},
		{"an approver by group", broker.Principal{Subject: "user:ben@example.com", Groups: []string{"finance"}}, true},
		{"an approver by key", broker.Principal{Subject: "key:approver"}, true},
		{"a stranger", broker.Principal{Subject: "user:eve@example.com", Groups: []string{"support"}}, false},
		{"a stranger naming the requester as a group", broker.Principal{Subject: "key:x", Groups: []string{"ana@example.com"}}, false},
	} {
		if got := approvals.MayView(r, tc.p); got != tc.want {
			t.Errorf("%s: MayView = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestApprovalsForViewer: listing and reading answer only what the viewer
// may see, and an unseen id is not_found like an unknown one.
func TestApprovalsForViewer(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	ctx := context.Background()
	id := pending(t, e, agent, 1)

	for _, p := range []broker.Principal{ana, agent} {
		if got, err := e.svc.Approval(ctx, p, id); err != nil || got.ID != id {
			t.Errorf("%s: Approval = %+v, %v", p.Subject, got.ID, err)
		}
		if list, err := e.svc.Approvals(ctx, p, broker.ApprovalFilter{}); err != nil || !slices.Equal(ids(list), []string{id}) {
			t.Errorf("%s: Approvals = %v, %v", p.Subject, ids(list), err)
		}
	}
	_, err := e.svc.Approval(ctx, eve, id)
	_, unknown := e.svc.Approval(ctx, eve, "ap_nope")
	if broker.CodeOf(err) != broker.CodeNotFound || broker.CodeOf(unknown) != broker.CodeNotFound {
		t.Errorf("a stranger reading: %v; an unknown id: %v; want not_found for both", err, unknown)
	}
	if list, err := e.svc.Approvals(ctx, eve, broker.ApprovalFilter{}); err != nil || len(list) != 0 {
		t.Errorf("a stranger's list: %v, %v", ids(list), err)
	}
}

// TestApprovalFilter: status, graph, tool and since narrow the list.
func TestApprovalFilter(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	ctx := context.Background()
	older := pending(t, e, agent, 1)
	if _, err := e.svc.Decide(ctx, older, ana, false, "no", "test"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	req := request(agent, "run-2", refundArgs, 1)
	out, err := e.svc.Await(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	newer := out.ID
	for _, tc := range []struct {
		name string
		f    broker.ApprovalFilter
		want []string
	}{
		{"everything, pending first", broker.ApprovalFilter{}, []string{newer, older}},
		{"denied", broker.ApprovalFilter{Status: broker.ApprovalDenied}, []string{older}},
		{"pending", broker.ApprovalFilter{Status: broker.ApprovalPending}, []string{newer}},
		{"graph", broker.ApprovalFilter{Graph: "support-bot"}, []string{newer, older}},
		{"another graph", broker.ApprovalFilter{Graph: "other"}, []string{}},
		{"tool", broker.ApprovalFilter{Tool: "billing_refund"}, []string{newer, older}},
		{"another tool", broker.ApprovalFilter{Tool: "crm_find_customer"}, []string{}},
		{"since", broker.ApprovalFilter{Since: epoch.Add(30 * time.Second)}, []string{newer}},
		{"limit", broker.ApprovalFilter{Limit: 1}, []string{newer}},
	} {
		list, err := e.svc.Approvals(ctx, ana, tc.f)
		if err != nil || !slices.Equal(ids(list), tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, ids(list), err, tc.want)
		}
	}
}

// TestInbox: an approver's inbox holds the pending requests it may approve
// now; not its own, not the ones it voted on, not expired ones, not other
// rules' requests.
func TestInbox(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	ctx := context.Background()
	byAgent := pending(t, e, agent, 2)
	e.clock.Add(time.Second) // so "oldest first" does not fall back to the ids' random part
	out, err := e.svc.Await(ctx, request(ana, "run-ana", refundArgs, 1))
	if err != nil {
		t.Fatal(err)
	}
	byAna := out.ID

	inbox := func(p broker.Principal) []string {
		t.Helper()
		list, err := e.svc.Inbox(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return ids(list)
	}
	if got := inbox(ben); !slices.Equal(got, []string{byAgent, byAna}) {
		t.Errorf("ben's inbox = %v, want both, oldest first", got)
	}
	if got := inbox(ana); !slices.Equal(got, []string{byAgent}) {
		t.Errorf("ana's inbox = %v, want only the request she did not ask for", got)
	}
	if got := inbox(eve); len(got) != 0 {
		t.Errorf("eve (not an approver) has an inbox: %v", got)
	}
	grant := broker.Principal{Subject: "grant:gr_1", Method: broker.AuthGrant, Groups: []string{"finance"}}
	if got := inbox(grant); len(got) != 0 {
		t.Errorf("a grant token has an inbox: %v", got)
	}
	if _, err := e.svc.Decide(ctx, byAgent, ben, true, "ok", "test"); err != nil {
		t.Fatal(err)
	}
	if got := inbox(ben); !slices.Equal(got, []string{byAna}) {
		t.Errorf("ben's inbox after his vote = %v, want only the other request", got)
	}
	if got := inbox(ana); !slices.Equal(got, []string{byAgent}) {
		t.Errorf("ana's inbox while 1 of 2 votes = %v", got)
	}
	e.clock.Add(31 * time.Minute)
	if got := inbox(ana); len(got) != 0 {
		t.Errorf("expired requests in the inbox: %v", got)
	}
}
