package counters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/policy"
)

var _ policy.Counters = (*Store)(nil)

// Store is a policy.Counters kept in the store. It is safe for concurrent
// use, by several goroutines and several processes.
type Store struct {
	db  *db.DB
	now func() time.Time
}

// New returns counters kept in d. now is the clock that stamps counters
// for expiry; nil means time.Now.
func New(d *db.DB, now func() time.Time) (*Store, error) {
	if d == nil {
		return nil, errors.New("counters: New needs a database")
	}
	if now == nil {
		now = time.Now
	}
	return &Store{db: d, now: now}, nil
}

// Add implements policy.Counters: it adds delta to the counter key in one
// atomic upsert and returns the new total. A zero delta only reads. A new
// windowed counter (window > 0) may be forgotten two windows after it was
// first written; a run counter (window == 0) is kept until Purge.
func (s *Store) Add(ctx context.Context, key string, delta int64, window time.Duration) (int64, error) {
	if key == "" {
		return 0, errors.New("counters: empty key")
	}
	if delta == 0 {
		var n int64
		err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind("SELECT n FROM budget_counters WHERE key = ?"), key).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("counters: read %s: %w", key, err)
		}
		return n, nil
	}
	now := s.now()
	var expires int64
	if window > 0 {
		expires = now.Add(2 * window).UnixNano()
	}
	var n int64
	err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind(`INSERT INTO budget_counters (key, n, expires_ns, updated_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET n = budget_counters.n + excluded.n, updated_ns = excluded.updated_ns
		RETURNING n`), key, delta, expires, now.UnixNano()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counters: add to %s: %w", key, err)
	}
	return n, nil
}

// Purge deletes windowed counters whose window has passed and, when
// runsBefore is not zero, run counters last changed before it. It returns
// how many counters it deleted.
func (s *Store) Purge(ctx context.Context, runsBefore time.Time) (int64, error) {
	q := "DELETE FROM budget_counters WHERE (expires_ns > 0 AND expires_ns < ?)"
	args := []any{s.now().UnixNano()}
	if !runsBefore.IsZero() {
		q += " OR (expires_ns = 0 AND updated_ns < ?)"
		args = append(args, runsBefore.UnixNano())
	}
	res, err := s.db.SQL().ExecContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return 0, fmt.Errorf("counters: purge: %w", err)
	}
	return res.RowsAffected()
}
