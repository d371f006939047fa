package auth

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// UsageStore records when keys were last used.
type UsageStore interface {
	// TouchKeys records the last use of each named key, never moving a
	// recorded time back.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// Usage notes the use of keys for the access review. Touch is cheap and
// never does I/O: it keeps at most one pending write per key per Every,
// and Run writes the pending ones in the background.
type Usage struct {
	store UsageStore
	every time.Duration
	log   *zap.Logger

	mu      sync.Mutex
	noted   map[string]time.Time // last time noted per key
	pending map[string]time.Time
}

// DefaultUsageEvery is how often a key's use is written at most.
const DefaultUsageEvery = time.Minute

// NewUsage returns a tracker writing to store at most once per every per
// key (DefaultUsageEvery when zero).
func NewUsage(store UsageStore, every time.Duration, log *zap.Logger) *Usage {
	if every <= 0 {
		every = DefaultUsageEvery
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Usage{store: store, every: every, log: log, noted: map[string]time.Time{}, pending: map[string]time.Time{}}
}

// Touch notes that key name was used at at.
func (u *Usage) Touch(name string, at time.Time) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if last, ok := u.noted[name]; ok && at.Sub(last) < u.every {
		return
	}
	u.noted[name] = at
	u.pending[name] = at
}

// Flush writes the pending uses. A failed write is kept for the next one.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]time.Time{}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := u.store.TouchKeys(ctx, batch)
	if err != nil {
		u.mu.Lock()
		for k, v := range batch {
			if cur, ok := u.pending[k]; !ok || cur.Before(v) {
				u.pending[k] = v
			}
		}
		u.mu.Unlock()
	}
	return err
}

// Run flushes every second until ctx ends, then once more.
func (u *Usage) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = u.Flush(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-t.C:
			if err := u.Flush(ctx); err != nil && ctx.Err() == nil {
				u.log.Warn("key use not recorded; retrying", zap.Error(err))
			}
		}
	}
}
