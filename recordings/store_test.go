package recordings_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	"github.com/toolgate/toolgate/recordings"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		childMain()
		return
	}
	dbtest.Main(m)
}

// opener opens a fresh, empty, migrated store database.
type opener func(t testing.TB) (*db.DB, db.Config)

func openSQLite(t testing.TB) (*db.DB, db.Config) {
	cfg := db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "audit.db")}
	return mustOpen(t, cfg), cfg
}

func openPostgres(t testing.TB) (*db.DB, db.Config) {
	cfg := db.Config{Driver: "postgres", DSN: dbtest.Postgres(t)}
	return mustOpen(t, cfg), cfg
}

func mustOpen(t testing.TB, cfg db.Config) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newStore(t testing.TB, d *db.DB, cfg recordings.Config) *recordings.Store {
	t.Helper()
	s, err := recordings.NewStore(d, cfg, nil)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a test clock that advances one millisecond per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func event(i int) broker.Event {
	return broker.Event{
		ID:        fmt.Sprintf("ev-%04d", i),
		Time:      time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Kind:      broker.EventToolCall,
		Principal: "key:support-bot",
		Graph:     "support-bot",
		Node:      []string{"triage", "refund"}[i%2],
		Run:       fmt.Sprintf("run-%d", i%3),
		Thread:    "thread-1",
		Tool:      []string{"crm_find_customer", "billing_refund"}[i%2],
		Target:    "crm",
		Door:      "mcp",
		Args:      json.RawMessage(`{"email":"a***@example.com","z":1,"a":2}`),
		Decision:  "allow",
		Rule:      "nodes.triage.allow[0]",
		Status:    broker.StatusOK,
		Rows:      i,
	}
}

func record(t testing.TB, s *recordings.Store, evs ...broker.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := s.Record(context.Background(), ev); err != nil {
			t.Fatalf("Record(%s): %v", ev.ID, err)
		}
	}
}

func events(from, to int) []broker.Event {
	var out []broker.Event
	for i := from; i < to; i++ {
		out = append(out, event(i))
	}
	return out
}

func mustVerify(t testing.TB, s *recordings.Store, wantRecords int) recordings.Report {
	t.Helper()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify found problems: %+v", rep.Problems)
	}
	if wantRecords >= 0 && rep.Records != wantRecords {
		t.Fatalf("Verify saw %d records, want %d", rep.Records, wantRecords)
	}
	return rep
}

func count(t testing.TB, d *db.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := d.SQL().QueryRow(d.Rebind("SELECT count(*) FROM audit_events "+where), args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// recordAll records event(i) for i < n, each from its own goroutine with
// ctxOf(i); wait returns their errors once all returned.
func recordAll(s *recordings.Store, n int, ctxOf func(int) context.Context) (wait func() []error) {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Record(ctxOf(i), event(i))
		}()
	}
	return func() []error {
		wg.Wait()
		return errs
	}
}

func execSQL(t testing.TB, d *db.DB, q string, args ...any) {
	t.Helper()
	if _, err := d.SQL().Exec(d.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestStoreSQLite(t *testing.T)   { storeSuite(t, openSQLite) }
func TestStorePostgres(t *testing.T) { storeSuite(t, openPostgres) }

// storeSuite is the conformance suite every store driver must pass.
func storeSuite(t *testing.T, open opener) {
	t.Run("ConcurrentRecordsFormOneVerifiedChain", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w * 50; i < (w+1)*50; i++ {
					if err := s.Record(context.Background(), event(i)); err != nil {
						t.Errorf("Record: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		rep := mustVerify(t, s, 400)
		if rep.Chains != 1 {
			t.Errorf("chains = %d, want 1", rep.Chains)
		}
		var lo, hi int
		if err := d.SQL().QueryRow("SELECT MIN(seq), MAX(seq) FROM audit_events").Scan(&lo, &hi); err != nil || lo != 1 || hi != 400 {
			t.Fatalf("seq range = %d..%d (%v), want 1..400", lo, hi, err)
		}
	})

	t.Run("RecordIsDurableWhenItReturns", func(t *testing.T) {
		d, cfg := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		record(t, s, event(1))
		// A separate connection pool sees it at once.
		other := mustOpen(t, cfg)
		if n := count(t, other, "WHERE id = ?", "ev-0001"); n != 1 {
			t.Fatalf("a second connection sees %d rows for the acknowledged event, want 1", n)
		}
	})

	t.Run("DefaultsIDTimeAndInstance", func(t *testing.T) {
		d, _ := open(t)
		clk := newClock()
		s := newStore(t, d, recordings.Config{Now: clk.Now})
		if s.Instance() == "" {
			t.Fatal("no default instance")
		}
		record(t, s, broker.Event{Kind: broker.EventPolicyReloaded})
		evs := exportJSONL(t, s, recordings.Filter{})
		if len(evs) != 1 || evs[0].Event.ID == "" || !evs[0].Event.Time.Equal(time.Date(2026, 3, 1, 12, 0, 0, int(time.Millisecond), time.UTC)) {
			t.Fatalf("exported %+v, want one event with an id and the clock's time", evs)
		}
		if evs[0].Chain != s.Instance() {
			t.Errorf("chain = %q, want %q", evs[0].Chain, s.Instance())
		}
	})

	t.Run("RestartContinuesTheChain", func(t *testing.T) {
		d, _ := open(t)
		s1, err := recordings.NewStore(d, recordings.Config{Instance: "a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		record(t, s1, events(0, 5)...)
		s1.Close()
		s2 := newStore(t, d, recordings.Config{Instance: "a"})
		record(t, s2, events(5, 10)...)
		mustVerify(t, s2, 10)
		if n := count(t, d, "WHERE chain = ? AND seq = 10", "a"); n != 1 {
			t.Fatalf("the restarted chain did not continue to seq 10")
		}
	})

	t.Run("InstancesWriteSeparateChains", func(t *testing.T) {
		d, cfg := open(t)
		d2 := mustOpen(t, cfg)
		a := newStore(t, d, recordings.Config{Instance: "a"})
		b := newStore(t, d2, recordings.Config{Instance: "b"})
		var wg sync.WaitGroup
		for _, s := range []*recordings.Store{a, b} {
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 25; i++ {
						ev := event(i)
						ev.ID = ""
						if err := s.Record(context.Background(), ev); err != nil {
							t.Errorf("Record: %v", err)
						}
					}
				}()
			}
		}
		wg.Wait()
		rep := mustVerify(t, a, 200)
		if rep.Chains != 2 {
			t.Fatalf("chains = %d, want 2", rep.Chains)
		}
	})

	t.Run("RefusesBadEventsAndStoresNothing", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		noKind := event(1)
		noKind.Kind = ""
		badArgs := event(2)
		badArgs.Args = json.RawMessage(`{"not json`)
		badDetail := event(3)
		badDetail.Detail = map[string]any{"f": func() {}}
		for name, ev := range map[string]broker.Event{"no kind": noKind, "bad args": badArgs, "bad detail": badDetail} {
			err := s.Record(context.Background(), ev)
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != broker.CodeInternal {
				t.Errorf("%s: Record = %v, want a broker internal error", name, err)
			}
		}
		if n := count(t, d, ""); n != 0 {
			t.Fatalf("refused events stored %d rows", n)
		}
		record(t, s, event(4))
		mustVerify(t, s, 1)
	})

	t.Run("RecordAfterCloseIsAuditUnavailable", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		s.Close()
		if err := s.Record(context.Background(), event(1)); !errors.Is(err, broker.ErrAuditUnavailable) {
			t.Fatalf("Record after Close = %v, want audit_unavailable", err)
		}
		if n := count(t, d, ""); n != 0 {
			t.Fatalf("Record after Close stored %d rows", n)
		}
	})

	t.Run("NewStoreFailsWhenTheStoreCannotBeRead", func(t *testing.T) {
		d, _ := open(t)
		execSQL(t, d, "ALTER TABLE audit_events RENAME TO audit_events_away")
		if s, err := recordings.NewStore(d, recordings.Config{Instance: "a"}, nil); err == nil {
			s.Close()
			t.Fatal("NewStore succeeded on a store it cannot read")
		}
	})

	t.Run("ReusedIDFailsAloneAndTheBatchCommits", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a", BatchWait: 20 * time.Millisecond})
		record(t, s, event(0))
		errs := make([]error, 20)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Record(context.Background(), event(i)) // event(0) again at i == 0
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if i == 0 && !errors.Is(err, broker.ErrAuditUnavailable) {
				t.Errorf("reused id: Record = %v, want audit_unavailable", err)
			}
			if i > 0 && err != nil {
				t.Errorf("Record(%d) = %v, want it committed", i, err)
			}
		}
		mustVerify(t, s, 20)
		if n := count(t, d, "WHERE id = ?", "ev-0000"); n != 1 {
			t.Fatalf("reused id stored %d times", n)
		}
	})

	t.Run("LargeBatchesSpanOneTransaction", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a", BatchMax: 1000, BatchWait: 200 * time.Millisecond})
		var wg sync.WaitGroup
		for i := 0; i < 300; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Record(context.Background(), event(i)); err != nil {
					t.Errorf("Record: %v", err)
				}
			}()
		}
		wg.Wait()
		mustVerify(t, s, 300)
		// With a 200ms gathering window the 300 events form a few batches
		// of more than rowsPerInsert (128) rows: several INSERTs, one
		// transaction each.
		if st := s.Stats(); st.Records != 300 || st.Batches > 5 {
			t.Fatalf("stats %+v, want 300 records in at most 5 batches", st)
		}
	})

	t.Run("RecordHonoursItsContext", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// Either outcome is allowed for a canceled caller except a false
		// acknowledgement: nil must mean stored.
		err := s.Record(ctx, event(1))
		if err == nil && count(t, d, "WHERE id = ?", "ev-0001") != 1 {
			t.Fatal("Record acknowledged an event that is not stored")
		}
		if err != nil && !errors.Is(err, broker.ErrAuditUnavailable) {
			t.Fatalf("Record(canceled) = %v, want audit_unavailable", err)
		}
		mustVerify(t, s, -1)
	})

	t.Run("CallersGivingUpNeverStallTheQueue", func(t *testing.T) {
		// Callers queue behind a commit in flight and every other one gives
		// up at once: a queued request is withdrawn, one handed the lead
		// commits anyway. Nothing hangs, every acknowledgement is stored,
		// and the chain verifies.
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		const n = 1000
		errs := recordAll(s, n, func(i int) context.Context {
			if i%2 == 0 {
				return context.Background()
			}
			c, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Duration(i%101)*20*time.Microsecond, cancel)
			return c
		})()
		acked := 0
		for i, err := range errs {
			switch {
			case err == nil:
				acked++
				if count(t, d, "WHERE id = ?", event(i).ID) != 1 {
					t.Fatalf("Record(%d) acknowledged an event that is not stored", i)
				}
			case i%2 == 0:
				t.Fatalf("Record(%d) without a deadline = %v", i, err)
			case !errors.Is(err, broker.ErrAuditUnavailable):
				t.Fatalf("Record(%d) = %v, want audit_unavailable", i, err)
			}
		}
		if acked < n/2 {
			t.Fatalf("%d of %d acknowledged", acked, n)
		}
		record(t, s, event(n))
		mustVerify(t, s, -1)
	})

	t.Run("CloseCommitsWhatIsQueued", func(t *testing.T) {
		// Close while callers are queued: it returns only after the queue
		// is committed; each caller is either acknowledged and stored or
		// refused with audit_unavailable and not stored.
		d, _ := open(t)
		s, err := recordings.NewStore(d, recordings.Config{Instance: "a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		wait := recordAll(s, n, func(int) context.Context { return context.Background() })
		time.Sleep(time.Millisecond)
		s.Close()
		stored := count(t, d, "")
		errs := wait()
		if count(t, d, "") != stored {
			t.Fatal("records were written after Close returned")
		}
		acked := 0
		for i, err := range errs {
			in := count(t, d, "WHERE id = ?", event(i).ID) == 1
			switch {
			case err == nil && !in:
				t.Fatalf("Record(%d) acknowledged an event that is not stored", i)
			case err != nil && !errors.Is(err, broker.ErrAuditUnavailable):
				t.Fatalf("Record(%d) = %v, want audit_unavailable", i, err)
			case err != nil && in:
				t.Fatalf("Record(%d) refused an event that is stored", i)
			case err == nil:
				acked++
			}
		}
		if acked != stored {
			t.Fatalf("%d acknowledged, %d stored", acked, stored)
		}
	})

	t.Run("StoreDownMidTraffic", func(t *testing.T) { storeDown(t, open) })

	t.Run("VerifyCatchesTampering", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			tamper func(t *testing.T, d *db.DB)
			seq    int64
			id     string
			kind   recordings.ProblemKind
		}{
			{"edited event json", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "UPDATE audit_events SET event = REPLACE(event, '\"rows\":4', '\"rows\":0') WHERE id = ?", "ev-0004")
			}, 5, "ev-0004", recordings.ProblemEdited},
			{"edited filter column", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "UPDATE audit_events SET node = 'other' WHERE id = ?", "ev-0006")
			}, 7, "ev-0006", recordings.ProblemEdited},
			{"edited and rehashed", func(t *testing.T, d *db.DB) {
				// The attacker recomputes this record's hash but cannot
				// fix the next record's link without rewriting the rest.
				var prev, ev string
				d.SQL().QueryRow(d.Rebind("SELECT prev_hash, event FROM audit_events WHERE id = ?"), "ev-0003").Scan(&prev, &ev)
				ev = strings.Replace(ev, `"rows":3`, `"rows":9`, 1)
				execSQL(t, d, "UPDATE audit_events SET event = ?, hash = ? WHERE id = ?", ev, hashOf(prev, "a", ev), "ev-0003")
			}, 5, "ev-0004", recordings.ProblemRemoved},
			{"removed record", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "DELETE FROM audit_events WHERE id = ?", "ev-0005")
			}, 7, "ev-0006", recordings.ProblemRemoved},
			{"removed first record", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "DELETE FROM audit_events WHERE id = ?", "ev-0000")
			}, 2, "ev-0001", recordings.ProblemRemoved},
			{"swapped seq", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "UPDATE audit_events SET seq = 1000 WHERE chain = 'a' AND seq = 3")
				execSQL(t, d, "UPDATE audit_events SET seq = 3 WHERE chain = 'a' AND seq = 4")
				execSQL(t, d, "UPDATE audit_events SET seq = 4 WHERE chain = 'a' AND seq = 1000")
			}, 3, "ev-0003", recordings.ProblemReordered},
			{"removed newest records", func(t *testing.T, d *db.DB) {
				execSQL(t, d, "DELETE FROM audit_events WHERE chain = 'a' AND seq > 8")
			}, 9, "", recordings.ProblemRemoved},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d, _ := open(t)
				s := newStore(t, d, recordings.Config{Instance: "a"})
				record(t, s, events(0, 10)...)
				mustVerify(t, s, 10)
				tc.tamper(t, d)
				rep, err := s.Verify(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Problems) != 1 {
					t.Fatalf("problems = %+v, want exactly one", rep.Problems)
				}
				p := rep.Problems[0]
				if p.Chain != "a" || p.Seq != tc.seq || p.ID != tc.id || p.Kind != tc.kind || p.Detail == "" {
					t.Fatalf("problem = %+v, want chain a seq %d id %q kind %s", p, tc.seq, tc.id, tc.kind)
				}
			})
		}
	})

	t.Run("Export", func(t *testing.T) { exportSuite(t, open) })

	t.Run("TraceOrdersByTimeThenSeq", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		mk := func(id string, sec int, run string) broker.Event {
			return broker.Event{ID: id, Kind: broker.EventToolCall, Run: run, Time: base.Add(time.Duration(sec) * time.Second)}
		}
		// Recorded out of time order; two share a time.
		record(t, s, mk("c", 3, "r1"), mk("a", 1, "r1"), mk("x", 2, "r2"), mk("b1", 2, "r1"), mk("b2", 2, "r1"))
		evs, err := s.Trace(context.Background(), "r1")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range evs {
			ids = append(ids, ev.ID)
		}
		if got := strings.Join(ids, ","); got != "a,b1,b2,c" {
			t.Fatalf("trace order = %s, want a,b1,b2,c", got)
		}
		if evs, err := s.Trace(context.Background(), "nope"); err != nil || len(evs) != 0 {
			t.Fatalf("Trace(unknown run) = %v, %v; want empty", evs, err)
		}
		if _, err := s.Trace(context.Background(), ""); !errors.Is(err, &broker.Error{Code: broker.CodeInvalidRequest}) {
			t.Fatalf("Trace(\"\") = %v, want invalid_request", err)
		}
	})

	t.Run("PurgeLeavesACheckpointVerifyStartsFrom", func(t *testing.T) {
		key := []byte("checkpoint-key")
		d, _ := open(t)
		a := newStore(t, d, recordings.Config{Instance: "a", CheckpointKey: key})
		b := newStore(t, d, recordings.Config{Instance: "b", CheckpointKey: key})
		record(t, a, events(0, 10)...) // times 12:00:00 .. 12:00:09
		bev := events(10, 14)
		for i := range bev {
			bev[i].ID = "b-" + bev[i].ID
		}
		record(t, b, bev...) // times 12:00:10 .. 12:00:13
		cut := time.Date(2026, 3, 1, 12, 0, 6, 0, time.UTC)
		n, err := a.Purge(context.Background(), cut)
		if err != nil {
			t.Fatal(err)
		}
		if n != 6 {
			t.Fatalf("Purge deleted %d, want 6", n)
		}
		mustVerify(t, a, 8)
		// The chain continues after the purge.
		record(t, a, events(20, 22)...)
		mustVerify(t, a, 10)
		// Purging everything leaves only checkpoints, still verified.
		if _, err := a.Purge(context.Background(), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, a, 0)
		if rep.Chains != 2 {
			t.Fatalf("chains after purging all = %d, want 2", rep.Chains)
		}
		record(t, a, event(30))
		mustVerify(t, a, 1)
		// A forged checkpoint (moved past deleted records) is caught.
		execSQL(t, d, "UPDATE audit_checkpoints SET seq = seq + 1 WHERE chain = 'b'")
		rep, err = a.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].Chain != "b" || rep.Problems[0].Kind != recordings.ProblemCheckpoint {
			t.Fatalf("problems = %+v, want a checkpoint problem on chain b", rep.Problems)
		}
	})

	t.Run("RunRetentionPurgesOnSchedule", func(t *testing.T) {
		d, _ := open(t)
		now := time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC) // events 0..9 are 1..10s old
		s := newStore(t, d, recordings.Config{Instance: "a", Now: func() time.Time { return now }})
		record(t, s, events(0, 10)...)
		if err := s.RunRetention(context.Background(), 0, time.Second); err == nil {
			t.Fatal("RunRetention accepted a zero age")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.RunRetention(ctx, 5500*time.Millisecond, 10*time.Millisecond) }()
		deadline := time.Now().Add(10 * time.Second)
		for count(t, d, "") != 5 {
			if time.Now().After(deadline) {
				t.Fatalf("retention left %d records, want 5", count(t, d, ""))
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("RunRetention = %v, want context.Canceled", err)
		}
		mustVerify(t, s, 5)
	})

	t.Run("VerifyDuringWritesAndPurges", func(t *testing.T) {
		d, _ := open(t)
		clk := newClock()
		s := newStore(t, d, recordings.Config{Instance: "a", Now: clk.Now, CheckpointKey: []byte("k")})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := s.Record(context.Background(), broker.Event{Kind: broker.EventToolCall, Run: "r"}); err != nil {
						t.Errorf("Record: %v", err)
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Purge(context.Background(), clk.Now().Add(-20*time.Millisecond)); err != nil {
					t.Errorf("Purge: %v", err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		for i := 0; i < 20; i++ {
			mustVerify(t, s, -1)
		}
		close(stop)
		wg.Wait()
		mustVerify(t, s, -1)
	})

	t.Run("PurgeWithoutKeyStillVerifies", func(t *testing.T) {
		d, _ := open(t)
		s := newStore(t, d, recordings.Config{Instance: "a"})
		record(t, s, events(0, 5)...)
		if n, err := s.Purge(context.Background(), time.Date(2026, 3, 1, 12, 0, 2, 0, time.UTC)); err != nil || n != 2 {
			t.Fatalf("Purge = %d, %v; want 2", n, err)
		}
		mustVerify(t, s, 3)
		// Deleting the record right after the checkpoint is still caught.
		execSQL(t, d, "DELETE FROM audit_events WHERE seq = 3")
		rep, _ := s.Verify(context.Background())
		if len(rep.Problems) != 1 || rep.Problems[0].ID != "ev-0003" || rep.Problems[0].Kind != recordings.ProblemRemoved {
			t.Fatalf("problems = %+v, want removed before ev-0003", rep.Problems)
		}
	})
}

func hashOf(prev, chain, ev string) string {
	sum := sha256.Sum256([]byte(prev + "\n" + chain + "\n" + ev))
	return hex.EncodeToString(sum[:])
}

// storeDown breaks the store while writers run, then restores it: every
// acknowledged record must be there once, every failure must be
// audit_unavailable, and the chain must verify.
func storeDown(t *testing.T, open opener) {
	d, cfg := open(t)
	s := newStore(t, d, recordings.Config{Instance: "a"})
	admin := mustOpen(t, cfg)
	var (
		mu        sync.Mutex
		acked     []string
		failures  atomic.Int64
		wrongCode atomic.Int64
		next      atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ev := event(int(next.Add(1)))
				ev.ID = fmt.Sprintf("down-%06d", next.Load())
				err := s.Record(context.Background(), ev)
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, ev.ID)
					mu.Unlock()
				case errors.Is(err, broker.ErrAuditUnavailable):
					failures.Add(1)
					time.Sleep(time.Millisecond)
				default:
					wrongCode.Add(1)
					t.Errorf("Record: %v, want audit_unavailable", err)
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor("first records", func() bool { return ackedN() > 50 })
	execSQL(t, admin, "ALTER TABLE audit_events RENAME TO audit_events_away")
	waitFor("failures", func() bool { return failures.Load() > 20 })
	execSQL(t, admin, "ALTER TABLE audit_events_away RENAME TO audit_events")
	before := ackedN()
	waitFor("records after the store came back", func() bool { return ackedN() > before+50 })
	if cfg.Driver == "postgres" {
		// Kill every connection of the pool mid-commit: outcomes are
		// ambiguous, and must still neither lose nor duplicate.
		execSQL(t, admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		before = ackedN()
		waitFor("records after the connections were killed", func() bool { return ackedN() > before+50 })
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if n := count(t, admin, "WHERE id = ?", id); n != 1 {
			t.Fatalf("acknowledged record %s is stored %d times, want 1", id, n)
		}
	}
	t.Logf("%d acknowledged, %d failed while the store was down", len(acked), failures.Load())
	mustVerify(t, s, -1)
}

type exported struct {
	Chain    string          `json:"chain"`
	Seq      int64           `json:"seq"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Event    broker.Event    `json:"-"`
	Raw      json.RawMessage `json:"event"`
}

func exportJSONL(t testing.TB, s *recordings.Store, f recordings.Filter) []exported {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.Export(context.Background(), f, "jsonl", &buf)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	var out []exported
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if err := json.Unmarshal(e.Raw, &e.Event); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if n != len(out) {
		t.Fatalf("Export returned %d but wrote %d lines", n, len(out))
	}
	return out
}

func exportSuite(t *testing.T, open opener) {
	d, _ := open(t)
	s := newStore(t, d, recordings.Config{Instance: "a"})
	record(t, s, events(0, 12)...)
	inject := event(100)
	inject.Error = "=HYPERLINK(\"http://evil\")"
	inject.Node = "@node"
	inject.Rule = "-rule"
	inject.Principal = "+p"
	inject.ToolCallID = "\tcall"
	inject.Thread = "\rthread"
	inject.Run = "run-inject"
	record(t, s, inject)

	t.Run("FiltersJSONL", func(t *testing.T) {
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, tc := range []struct {
			name string
			f    recordings.Filter
			want []string
		}{
			{"node and run", recordings.Filter{Graph: "support-bot", Node: "triage", Run: "run-0"}, []string{"ev-0000", "ev-0006"}},
			{"tool", recordings.Filter{Tool: "billing_refund", Run: "run-1"}, []string{"ev-0001", "ev-0007"}},
			{"since until", recordings.Filter{Since: base.Add(3 * time.Second), Until: base.Add(5 * time.Second)}, []string{"ev-0003", "ev-0004"}},
			{"limit", recordings.Filter{Limit: 2}, []string{"ev-0000", "ev-0001"}},
			{"kind thread principal status", recordings.Filter{Kind: "tool_call", Thread: "thread-1", Principal: "key:support-bot", Status: "ok", Until: base.Add(2 * time.Second)}, []string{"ev-0000", "ev-0001"}},
			{"nothing", recordings.Filter{Run: "no-such-run"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []string
				for _, e := range exportJSONL(t, s, tc.f) {
					got = append(got, e.Event.ID)
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Fatalf("exported %v, want %v", got, tc.want)
				}
			})
		}
	})

	t.Run("JSONLRecomputesTheChain", func(t *testing.T) {
		prev := strings.Repeat("0", 64)
		for i, e := range exportJSONL(t, s, recordings.Filter{}) {
			if e.Seq != int64(i+1) || e.PrevHash != prev || hashOf(prev, e.Chain, string(e.Raw)) != e.Hash {
				t.Fatalf("line %d does not chain: %+v", i, e)
			}
			prev = e.Hash
		}
	})

	t.Run("CSV", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := s.Export(context.Background(), recordings.Filter{Run: "run-inject"}, "csv", &buf)
		if err != nil || n != 1 {
			t.Fatalf("Export csv = %d, %v", n, err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || strings.Join(recs[0], ",") != strings.Join(recordings.CSVColumns, ",") {
			t.Fatalf("csv = %q", recs)
		}
		row := map[string]string{}
		for i, c := range recordings.CSVColumns {
			row[c] = recs[1][i]
		}
		for col, want := range map[string]string{
			"error": `'=HYPERLINK("http://evil")`, "node": "'@node", "rule": "'-rule", "principal": "'+p",
			"tool_call_id": "'\tcall", "thread": "'\rthread", "id": "ev-0100", "rows": "100", "chain": "a", "seq": "13",
			"time": "2026-03-01T12:01:40Z",
		} {
			if row[col] != want {
				t.Errorf("csv %s = %q, want %q", col, row[col], want)
			}
		}
	})

	t.Run("CSVNothingMatchedIsHeaderOnly", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := s.Export(context.Background(), recordings.Filter{Graph: "none"}, "csv", &buf)
		if err != nil || n != 0 {
			t.Fatalf("Export = %d, %v", n, err)
		}
		if buf.String() != strings.Join(recordings.CSVColumns, ",")+"\n" {
			t.Fatalf("csv = %q, want the header only", buf.String())
		}
	})

	t.Run("EventsMatchExport", func(t *testing.T) {
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, f := range []recordings.Filter{{}, {Graph: "support-bot", Node: "triage"}, {Since: base.Add(3 * time.Second), Limit: 4}, {Run: "none"}} {
			want := exportJSONL(t, s, f)
			var got []broker.Event
			for ev, err := range s.Events(context.Background(), f) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev)
			}
			if len(got) != len(want) {
				t.Fatalf("Events(%+v) yielded %d records, Export %d", f, len(got), len(want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i].Event) {
					t.Fatalf("Events(%+v)[%d] = %+v, want %+v", f, i, got[i], want[i].Event)
				}
			}
		}
		n := 0
		for _, err := range s.Events(context.Background(), recordings.Filter{Limit: -1}) {
			n++
			var be *broker.Error
			if !errors.As(err, &be) || be.Field != "limit" {
				t.Fatalf("Events with a bad filter yielded %v, want the refusal", err)
			}
		}
		if n != 1 {
			t.Fatalf("Events with a bad filter yielded %d times, want once", n)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, tc := range []struct {
			name   string
			f      recordings.Filter
			format string
			field  string
		}{
			{"unknown format", recordings.Filter{}, "xml", "format"},
			{"empty format", recordings.Filter{}, "", "format"},
			{"negative limit", recordings.Filter{Limit: -1}, "jsonl", "limit"},
			{"until before since", recordings.Filter{Since: base, Until: base.Add(-time.Second)}, "csv", "until"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				n, err := s.Export(context.Background(), tc.f, tc.format, &buf)
				var be *broker.Error
				if !errors.As(err, &be) || be.Code != broker.CodeInvalidRequest || be.Field != tc.field {
					t.Fatalf("Export = %v, want invalid_request on %s", err, tc.field)
				}
				if n != 0 || buf.Len() != 0 {
					t.Fatalf("a refused export wrote %d records, %d bytes", n, buf.Len())
				}
			})
		}
	})
}

func TestCanonical(t *testing.T) {
	ev := broker.Event{
		ID:     "x",
		Time:   time.Date(2026, 3, 1, 13, 0, 0, 500, time.FixedZone("CET", 3600)),
		Kind:   broker.EventStatement,
		Args:   json.RawMessage(`{"b": 1.50, "a": [ {"d":1,"c":2} ]}`),
		Detail: map[string]any{"statement": "SELECT 1", "a": true},
	}
	got, err := recordings.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"args":{"a":[{"c":2,"d":1}],"b":1.50},"detail":{"a":true,"statement":"SELECT 1"},"id":"x","kind":"passthrough_statement","time":"2026-03-01T12:00:00.0000005Z"}`
	if string(got) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []recordings.Config{{BatchMax: -1}, {BatchWait: -time.Second}, {Instance: strings.Repeat("x", 201)}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	d, _ := openSQLite(t)
	if _, err := recordings.NewStore(d, recordings.Config{BatchMax: -1}, nil); err == nil {
		t.Fatal("NewStore accepted a bad config")
	}
	if _, err := recordings.NewStore(nil, recordings.Config{}, nil); err == nil {
		t.Fatal("NewStore accepted a nil database")
	}
}

// slowCanonical is the reference: decode everything and let encoding/json
// sort map keys.
func slowCanonical(t *testing.T, ev broker.Event) []byte {
	ev.Time = ev.Time.UTC()
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCanonicalMatchesReference(t *testing.T) {
	for i, args := range []string{
		`{}`, `[]`, `null`, `"s"`, `[1,[2,{"b":[],"a":{}}],"x\"y"]`,
		`{"z":{"y":{"x":[{"k2":1,"k1":"a,b}]"}]}},"a":-1.5e3,"m":true,"n":null}`,
		`{"é":1,"e":2,"a\\b":3,"a\"c":4,"a b":5}`,
	} {
		ev := event(i)
		ev.Args = json.RawMessage(args)
		ev.Detail = map[string]any{"statement": "SELECT '<x>' & 1", "n": 1.5, "list": []any{map[string]any{"b": 1, "a": 2}}}
		ev.Masked = broker.MaskStats{"card": 2, "email": 1}
		got, err := recordings.Canonical(ev)
		if err != nil {
			t.Fatalf("Canonical(args %s): %v", args, err)
		}
		if want := slowCanonical(t, ev); !bytes.Equal(got, want) {
			t.Errorf("args %s:\n got %s\nwant %s", args, got, want)
		}
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	d, _ := openSQLite(t)
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		s, err := recordings.NewStore(d, recordings.Config{Instance: "a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		record(t, s, event(i))
		s.Close()
		s.Close() // twice is harmless
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after closing the stores", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
