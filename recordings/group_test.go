package recordings

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
)

// The group commit's two ways out for a caller that gives up (group.go),
// driven step by step: the race that leads to each is too narrow to hit
// from outside.

func groupStore(t *testing.T) (*Store, *db.DB) {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "audit.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := NewStore(d, Config{Instance: "g"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

func groupRequest(t *testing.T, id string) *request {
	t.Helper()
	ev := broker.Event{ID: id, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Kind: broker.EventToolCall, Status: broker.StatusOK}
	body, err := Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &request{ev: ev, body: string(body), wake: make(chan bool, 1)}
}

func stored(t *testing.T, d *db.DB, id string) bool {
	t.Helper()
	var n int
	if err := d.SQL().QueryRowContext(context.Background(), d.Rebind("SELECT COUNT(*) FROM audit_events WHERE id = ?"), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// A caller handed the lead commits the queue even though it gave up: the
// requests behind it are waiting for that commit.
func TestGroupAbandonedLeadStillCommits(t *testing.T) {
	s, d := groupStore(t)
	a, b := groupRequest(t, "a"), groupRequest(t, "b")
	g := &s.group
	g.mu.Lock()
	g.leading = true // a commit in flight, whose leader now hands on
	g.queue = append(g.queue, a, b)
	a.lead = true
	a.wake <- true
	g.mu.Unlock()

	if err := s.abandon(a, context.Canceled); err != nil {
		t.Fatalf("abandon of the new leader = %v, want its own commit's outcome", err)
	}
	select {
	case lead := <-b.wake:
		if lead || b.err != nil {
			t.Fatalf("the request behind the leader: lead %v, err %v; want committed", lead, b.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request behind a leader that gave up was never committed")
	}
	if !stored(t, d, "a") || !stored(t, d, "b") {
		t.Fatal("the abandoned leader's batch is not stored")
	}
	if g.leading || len(g.queue) != 0 {
		t.Fatalf("after the commit: leading %v, %d queued; want idle", g.leading, len(g.queue))
	}
}

// A caller that gives up while still queued is withdrawn and never
// written; the queue goes on without it.
func TestGroupAbandonWithdrawsAQueuedRequest(t *testing.T) {
	s, d := groupStore(t)
	a, b := groupRequest(t, "a"), groupRequest(t, "b")
	g := &s.group
	g.mu.Lock()
	g.leading = true
	g.queue = append(g.queue, a, b)
	g.mu.Unlock()

	if err := s.abandon(b, context.Canceled); !errors.Is(err, broker.ErrAuditUnavailable) {
		t.Fatalf("abandon of a queued request = %v, want audit_unavailable", err)
	}
	if err := s.lead(a); err != nil {
		t.Fatalf("lead = %v", err)
	}
	if !stored(t, d, "a") || stored(t, d, "b") {
		t.Fatalf("stored a: %v, b: %v; want only a", stored(t, d, "a"), stored(t, d, "b"))
	}
}
