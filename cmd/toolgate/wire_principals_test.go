package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/principals"
	"github.com/toolgate/toolgate/internal/db"
)

// slackDecisions is a slack.Decider that counts the decisions it was asked.
type slackDecisions struct{ decided int }

func (s *slackDecisions) Get(context.Context, string) (approvals.Request, error) {
	return approvals.Request{}, nil
}

func (s *slackDecisions) Decide(context.Context, string, broker.Principal, bool, string, string) (broker.ApprovalStatus, error) {
	s.decided++
	return broker.ApprovalApproved, nil
}

// TestSlackVoteOfDisabledApprover: a Slack click maps to a principal
// without broker.Identify, so the offboarding check is made before the
// vote; a disabled approver's click is refused and decides nothing.
func TestSlackVoteOfDisabledApprover(t *testing.T) {
	ctx := context.Background()
	store, err := db.Open(ctx, db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "toolgate.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ps, err := principals.NewStore(store)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := auth.NewSQLKeyStore(store)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := principals.New(principals.Config{Store: ps, Keys: keyDirectory{store: ks, now: time.Now}, Admins: []string{"key:admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	next := &slackDecisions{}
	d := slackDecider{Decider: next, svc: svc}
	ben := broker.Principal{Subject: "user:ben@example.com", Email: "ben@example.com"}
	if _, err := d.Decide(ctx, "ap_1", ben, true, "", "slack"); err != nil || next.decided != 1 {
		t.Fatalf("an active approver: %v (%d decisions)", err, next.decided)
	}
	if _, err := svc.Disable(ctx, broker.Principal{Subject: "key:admin", Method: broker.AuthAPIKey}, "user:ben@example.com", "left"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decide(ctx, "ap_1", ben, true, "", "slack"); broker.CodeOf(err) != broker.CodeOwnerDisabled || next.decided != 1 {
		t.Fatalf("a disabled approver: %v (%d decisions)", err, next.decided)
	}
}
