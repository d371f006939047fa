package recordings

import (
	"context"
	"fmt"
	"time"
)

// RunFilter selects runs. Empty fields match everything; Since is
// inclusive (a run counts when any of its records is at or after it).
type RunFilter struct {
	Graph string
	Since time.Time
	// Limit caps the runs returned; zero means 100.
	Limit int
}

// RunSummary is one run as its records tell it.
type RunSummary struct {
	Graph  string
	Run    string
	First  time.Time
	Last   time.Time
	Events int
	// Errors and Denied count records with status error and denied.
	Errors int
	Denied int
}

// Runs returns the runs f selects, the most recently active first: one
// summary per graph and run, from the records that name a run.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]RunSummary, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := " WHERE run <> ''", []any{}
	if f.Graph != "" {
		where += " AND graph = ?"
		args = append(args, f.Graph)
	}
	if !f.Since.IsZero() {
		where += " AND time_ns >= ?"
		args = append(args, f.Since.UnixNano())
	}
	args = append(args, f.Limit)
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind(`SELECT graph, run, MIN(time_ns), MAX(time_ns), COUNT(*),
		CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(CASE WHEN status = 'denied' THEN 1 ELSE 0 END) AS BIGINT)
		FROM audit_events`+where+` GROUP BY graph, run ORDER BY MAX(time_ns) DESC, graph, run LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("recordings: runs: %w", err)
	}
	defer rows.Close()
	var out []RunSummary
	for rows.Next() {
		var r RunSummary
		var first, last int64
		if err := rows.Scan(&r.Graph, &r.Run, &first, &last, &r.Events, &r.Errors, &r.Denied); err != nil {
			return nil, fmt.Errorf("recordings: runs: %w", err)
		}
		r.First, r.Last = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// RunChains returns the chains that hold records of run, sorted.
func (s *Store) RunChains(ctx context.Context, run string) ([]string, error) {
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind("SELECT DISTINCT chain FROM audit_events WHERE run = ? ORDER BY chain"), run)
	if err != nil {
		return nil, fmt.Errorf("recordings: chains of run %s: %w", run, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("recordings: chains of run %s: %w", run, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
