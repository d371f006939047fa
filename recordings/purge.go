package recordings

import (
	"go.uber.org/zap"

	"context"
	"database/sql"
	"fmt"
	"time"
)

// Purge deletes the records older than before and returns how many it
// deleted. It deletes a prefix of each chain: every record up to the first
// one at or after before, so a chain never loses a record in its middle.
// For each chain it purges, it writes a checkpoint with the seq and hash of
// the last purged record (HMAC-signed with Config.CheckpointKey when set),
// where Verify then starts. It runs in one transaction.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("recordings: purge needs a time")
	}
	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("recordings: purge: %w", err)
	}
	defer tx.Rollback()
	beforeNS := before.UnixNano()

	// The boundary of each chain: the last seq before its first record at
	// or after before.
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT chain, MIN(seq), MAX(seq),
		MIN(CASE WHEN time_ns >= ? THEN seq END) FROM audit_events GROUP BY chain`), beforeNS)
	if err != nil {
		return 0, fmt.Errorf("recordings: purge: %w", err)
	}
	type cut struct {
		chain string
		upTo  int64
	}
	var cuts []cut
	for rows.Next() {
		var chain string
		var lo, hi int64
		var keep sql.NullInt64
		if err := rows.Scan(&chain, &lo, &hi, &keep); err != nil {
			rows.Close()
			return 0, fmt.Errorf("recordings: purge: %w", err)
		}
		upTo := hi
		if keep.Valid {
			upTo = keep.Int64 - 1
		}
		if upTo >= lo {
			cuts = append(cuts, cut{chain, upTo})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("recordings: purge: %w", err)
	}

	total := 0
	now := s.cfg.Now().UnixNano()
	for _, c := range cuts {
		var hash string
		if err := tx.QueryRowContext(ctx, s.db.Rebind("SELECT hash FROM audit_events WHERE chain = ? AND seq = ?"), c.chain, c.upTo).Scan(&hash); err != nil {
			return 0, fmt.Errorf("recordings: purge chain %s: %w", c.chain, err)
		}
		res, err := tx.ExecContext(ctx, s.db.Rebind("DELETE FROM audit_events WHERE chain = ? AND seq <= ?"), c.chain, c.upTo)
		if err != nil {
			return 0, fmt.Errorf("recordings: purge chain %s: %w", c.chain, err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		mac := ""
		if len(s.cfg.CheckpointKey) > 0 {
			mac = checkpointMAC(s.cfg.CheckpointKey, c.chain, c.upTo, hash, beforeNS)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO audit_checkpoints (chain, seq, hash, before_ns, created_ns, mac)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
				before_ns = excluded.before_ns, created_ns = excluded.created_ns, mac = excluded.mac`),
			c.chain, c.upTo, hash, beforeNS, now, mac); err != nil {
			return 0, fmt.Errorf("recordings: purge chain %s: write checkpoint: %w", c.chain, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("recordings: purge: %w", err)
	}
	s.log.Info("purged audit records", zap.Int("records", total), zap.Int("chains", len(cuts)))
	return total, nil
}

// RunRetention purges the records older than keep at once and then every
// interval, until ctx ends; it returns ctx's error. A failed purge is
// logged and retried at the next interval: retention never stops recording.
func (s *Store) RunRetention(ctx context.Context, keep, every time.Duration) error {
	if keep <= 0 || every <= 0 {
		return fmt.Errorf("recordings: retention needs a positive age and interval (got %s, %s)", keep, every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.Purge(ctx, s.cfg.Now().Add(-keep)); err != nil {
			s.log.Warn("audit retention purge failed", zap.Error(err))
		} else if n > 0 {
			s.log.Info("audit retention", zap.Int("purged", n), zap.Duration("keep", keep))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
