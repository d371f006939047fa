package brokertest_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	r := &brokertest.Recorder{}
	if _, ok := r.Last(); ok || r.Len() != 0 {
		t.Fatal("a new Recorder holds events")
	}
	if err := r.Record(ctx, broker.Event{Kind: broker.EventToolCall, Tool: "a"}); err != nil {
		t.Fatal(err)
	}
	r.SetFail(true)
	if err := r.Record(ctx, broker.Event{Kind: broker.EventToolCall, Tool: "lost"}); !errors.Is(err, brokertest.ErrRecordFailed) {
		t.Fatalf("Record while failing = %v", err)
	}
	r.SetFail(false)
	if err := r.Record(ctx, broker.Event{Kind: broker.EventGrantMinted, Tool: "b"}); err != nil {
		t.Fatal(err)
	}
	evs := r.Events()
	if r.Len() != 2 || len(evs) != 2 || evs[0].Tool != "a" || evs[1].Tool != "b" {
		t.Fatalf("events = %+v", evs)
	}
	evs[0].Tool = "changed"
	if r.Events()[0].Tool != "a" {
		t.Fatal("Events returned the Recorder's own slice")
	}
	if got := r.OfKind(broker.EventGrantMinted); len(got) != 1 || got[0].Tool != "b" {
		t.Fatalf("OfKind = %+v", got)
	}
	if ev, ok := r.Last(); !ok || ev.Tool != "b" {
		t.Fatalf("Last = %+v, %v", ev, ok)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := &brokertest.Recorder{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				_ = r.Record(context.Background(), broker.Event{})
				_ = r.Events()
			}
		}()
	}
	wg.Wait()
	if r.Len() != 400 {
		t.Fatalf("Len = %d, want 400", r.Len())
	}
}
