package approvals_test

import (
	"context"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

func TestLocalNotifier(t *testing.T) {
	n := approvals.NewLocalNotifier()
	a, stopA := n.Subscribe("ap_1")
	b, stopB := n.Subscribe("ap_2")
	defer stopB()
	_ = n.Notify(context.Background(), "ap_1")
	_ = n.Notify(context.Background(), "ap_1") // does not block on a full channel
	select {
	case <-a:
	default:
		t.Fatal("subscriber of ap_1 was not woken")
	}
	select {
	case <-b:
		t.Fatal("subscriber of ap_2 was woken by ap_1")
	default:
	}
	stopA()
	_ = n.Notify(context.Background(), "ap_1") // no subscriber left: no panic, no block
}

// TestPostgresCrossInstanceWake: a call waits on instance A; the decision is
// taken on instance B; A's waiter wakes through LISTEN/NOTIFY, long before
// its polling tick.
func TestPostgresCrossInstanceWake(t *testing.T) {
	dsn := pgDSN(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	instance := func(migrate bool) *env {
		db := pgDB(t, dsn, migrate)
		note, err := approvals.NewPGNotifier(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = note.Listen(ctx) }()
		select {
		case <-note.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("listener did not start")
		}
		return newEnv(t, db, func(c *approvals.Config) {
			c.Notifier = note
			c.Wait = 20 * time.Second
			c.ProgressEvery = time.Minute // polling would be far too slow: only NOTIFY can wake it in time
		})
	}
	a, b := instance(true), instance(false)

	done := make(chan broker.ApprovalOutcome, 1)
	go func() {
		out, err := a.svc.Await(ctx, request(agent, "run-1", refundArgs, 1))
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	id := waitForPending(t, b.svc)
	time.Sleep(50 * time.Millisecond) // let A subscribe
	start := time.Now()
	if _, err := b.svc.Decide(ctx, id, ana, true, "", "http"); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		if out.ID != id || out.Status != broker.ApprovalApproved {
			t.Errorf("A woke with %+v", out)
		}
		t.Logf("A woke %v after B decided", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("A's waiter did not wake")
	}
}
