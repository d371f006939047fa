package counters_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	"github.com/toolgate/toolgate/policy/counters"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// backend opens the same store twice, as two broker instances would.
type backend struct {
	name string
	cfg  func(t *testing.T) db.Config
}

var backends = []backend{
	{"sqlite", func(t *testing.T) db.Config {
		return db.Config{Driver: db.DriverSQLite, Path: filepath.Join(t.TempDir(), "store.db")}
	}},
	{"postgres", func(t *testing.T) db.Config {
		return db.Config{Driver: db.DriverPostgres, DSN: dbtest.Postgres(t)}
	}},
}

func open(t *testing.T, cfg db.Config, now func() time.Time) (*counters.Store, *db.DB) {
	t.Helper()
	d, err := db.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	s, err := counters.New(d, now)
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

func add(t *testing.T, s *counters.Store, key string, delta int64, window time.Duration) int64 {
	t.Helper()
	n, err := s.Add(context.Background(), key, delta, window)
	if err != nil {
		t.Fatalf("Add(%s, %d): %v", key, delta, err)
	}
	return n
}

// TestConformance runs one suite against SQLite and PostgreSQL.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("adds reads and refunds", func(t *testing.T) {
				s, _ := open(t, b.cfg(t), nil)
				steps := []struct {
					key   string
					delta int64
					want  int64
				}{
					{"budget/a", 0, 0},
					{"budget/a", 1, 1},
					{"budget/a", 1, 2},
					{"budget/b", 5, 5},
					{"budget/a", 0, 2},
					{"budget/a", -1, 1},
					{"budget/b", 0, 5},
				}
				for i, st := range steps {
					if got := add(t, s, st.key, st.delta, 0); got != st.want {
						t.Fatalf("step %d: Add(%s, %d) = %d, want %d", i, st.key, st.delta, got, st.want)
					}
				}
			})
			t.Run("empty key is refused", func(t *testing.T) {
				s, _ := open(t, b.cfg(t), nil)
				if _, err := s.Add(context.Background(), "", 1, 0); err == nil {
					t.Fatal("Add with an empty key succeeded")
				}
			})
			t.Run("50 goroutines give exactly 50", func(t *testing.T) {
				cfg := b.cfg(t)
				s1, _ := open(t, cfg, nil)
				s2, _ := open(t, cfg, nil) // a second instance on the same store
				var wg sync.WaitGroup
				errs := make(chan error, 50)
				seen := make(chan int64, 50)
				for i := range 50 {
					s := s1
					if i%2 == 1 {
						s = s2
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						n, err := s.Add(context.Background(), "budget/calls_per_run/g=g/run=r1", 1, 0)
						if err != nil {
							errs <- err
							return
						}
						seen <- n
					}()
				}
				wg.Wait()
				close(errs)
				close(seen)
				for err := range errs {
					t.Fatal(err)
				}
				got := map[int64]bool{}
				for n := range seen {
					if got[n] {
						t.Fatalf("two increments both returned %d", n)
					}
					got[n] = true
				}
				if len(got) != 50 {
					t.Fatalf("%d distinct totals, want 50", len(got))
				}
				if n := add(t, s1, "budget/calls_per_run/g=g/run=r1", 0, 0); n != 50 {
					t.Fatalf("total = %d, want 50", n)
				}
			})
			t.Run("survives reopening", func(t *testing.T) {
				cfg := b.cfg(t)
				s, d := open(t, cfg, nil)
				add(t, s, "k", 3, 0)
				_ = d.Close()
				s, _ = open(t, cfg, nil)
				if n := add(t, s, "k", 1, 0); n != 4 {
					t.Fatalf("after reopening, total = %d, want 4", n)
				}
			})
			t.Run("purge forgets passed windows and old runs", func(t *testing.T) {
				now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
				clock := func() time.Time { return now }
				s, _ := open(t, b.cfg(t), clock)
				add(t, s, "win-old", 4, time.Minute)
				add(t, s, "run-old", 7, 0)
				now = now.Add(time.Hour)
				add(t, s, "win-new", 2, time.Minute)
				add(t, s, "run-new", 1, 0)
				n, err := s.Purge(context.Background(), time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 || add(t, s, "win-old", 0, 0) != 0 || add(t, s, "win-new", 0, 0) != 2 || add(t, s, "run-old", 0, 0) != 7 {
					t.Fatalf("purge without a run cutoff deleted %d; want only the passed window", n)
				}
				n, err = s.Purge(context.Background(), now.Add(-time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 || add(t, s, "run-old", 0, 0) != 0 || add(t, s, "run-new", 0, 0) != 1 {
					t.Fatalf("purge of runs deleted %d; want only run-old", n)
				}
			})
			t.Run("a closed store fails, never guesses", func(t *testing.T) {
				s, d := open(t, b.cfg(t), nil)
				add(t, s, "k", 1, 0)
				_ = d.Close()
				for _, delta := range []int64{0, 1, -1} {
					if n, err := s.Add(context.Background(), "k", delta, 0); err == nil {
						t.Fatalf("Add(%d) on a closed store = %d, nil; want an error", delta, n)
					}
				}
			})
		})
	}
}

// BenchmarkAdd measures one charge (an upsert round trip), in parallel, on
// each store.
func BenchmarkAdd(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			var cfg db.Config
			if bk.name == "sqlite" {
				cfg = db.Config{Driver: db.DriverSQLite, Path: filepath.Join(b.TempDir(), "store.db")}
			} else {
				cfg = db.Config{Driver: db.DriverPostgres, DSN: dbtest.Postgres(b)}
			}
			d, err := db.Open(context.Background(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			s, _ := counters.New(d, nil)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := s.Add(context.Background(), "budget/calls_per_run/g=g/run=r"+string(rune('a'+i%16)), 1, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
