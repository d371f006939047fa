package recordings

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
)

// ProblemKind says how a chain was broken.
type ProblemKind string

// The problem kinds Verify reports.
const (
	// ProblemEdited: the record's content or hash was changed.
	ProblemEdited ProblemKind = "edited"
	// ProblemRemoved: records are missing before this one.
	ProblemRemoved ProblemKind = "removed"
	// ProblemReordered: the record is not where its chain put it.
	ProblemReordered ProblemKind = "reordered"
	// ProblemCheckpoint: a purge checkpoint is not signed with the key.
	ProblemCheckpoint ProblemKind = "checkpoint"
)

// Problem is the first break found in one chain.
type Problem struct {
	Chain string      `json:"chain"`
	Seq   int64       `json:"seq"`
	ID    string      `json:"id,omitempty"` // the record at fault, or the first one after a gap
	Kind  ProblemKind `json:"kind"`
	// Detail says what was found, in a sentence.
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	Chains   int       `json:"chains"`
	Records  int       `json:"records"`
	Problems []Problem `json:"problems,omitempty"` // the first problem of each broken chain
}

// OK reports whether every chain verified.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// chainState is Verify's position in one chain.
type chainState struct {
	name    string
	next    int64
	prev    string
	broken  bool
	last    int64
	records int
}

type checkpoint struct {
	seq      int64
	hash     string
	beforeNS int64
	mac      string
}

// Verify checks every chain: each record's hash over its content, the link
// to the record before it, seq continuity from 1 (or from the checkpoint),
// and that the filter columns match the hashed event. It reports the first
// problem of each chain. The error is for a store that cannot be read, not
// for a broken chain.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	var rep Report
	// This store's head is read before the snapshot below is taken: a
	// record is committed before the head moves, so the snapshot holds at
	// least the head, and a concurrent write is no false alarm.
	s.mu.Lock()
	head, dirty := s.head, s.dirty
	s.mu.Unlock()

	// One read-only snapshot for every query, so a concurrent Purge cannot
	// move the checkpoint between reading it and reading the records.
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Driver() == db.DriverPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.SQL().BeginTx(ctx, opts)
	if err != nil {
		return rep, fmt.Errorf("recordings: verify: %w", err)
	}
	defer tx.Rollback()

	cps, err := checkpoints(ctx, tx)
	if err != nil {
		return rep, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT chain, seq, id, time_ns, kind, principal, graph, node, run, thread, tool, status, event, prev_hash, hash FROM audit_events ORDER BY chain, seq")
	if err != nil {
		return rep, fmt.Errorf("recordings: verify: %w", err)
	}
	defer rows.Close()

	// links are chains whose first problem is a broken link, classified
	// after the scan (reordered or removed).
	type brokenLink struct {
		problem int
		prev    string
	}
	var links []brokenLink
	var cur *chainState
	seen := map[string]bool{}
	finish := func() {
		if cur != nil {
			rep.Records += cur.records
		}
	}
	startChain := func(name string) {
		finish()
		rep.Chains++
		seen[name] = true
		cur = &chainState{name: name, next: 1, prev: genesis}
		if cp, ok := cps[name]; ok {
			cur.next, cur.prev = cp.seq+1, cp.hash
			if p := s.checkCheckpoint(name, cp); p != nil {
				rep.Problems = append(rep.Problems, *p)
				cur.broken = true
			}
		}
	}
	fail := func(p Problem) {
		rep.Problems = append(rep.Problems, p)
		cur.broken = true
	}
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.chain, &r.seq, &r.id, &r.timeNS, &r.kind, &r.principal, &r.graph, &r.node, &r.run, &r.thread, &r.tool, &r.status, &r.event, &r.prevHash, &r.hash); err != nil {
			return rep, fmt.Errorf("recordings: verify: %w", err)
		}
		if cur == nil || r.chain != cur.name {
			startChain(r.chain)
		}
		cur.records++
		cur.last = r.seq
		if cur.broken {
			continue
		}
		if got := chainHash(r.prevHash, r.chain, r.event); got != r.hash {
			fail(Problem{Chain: r.chain, Seq: r.seq, ID: r.id, Kind: ProblemEdited,
				Detail: "the record's hash does not match its content"})
			continue
		}
		if col := r.mismatch(); col != "" {
			fail(Problem{Chain: r.chain, Seq: r.seq, ID: r.id, Kind: ProblemEdited,
				Detail: "column " + col + " differs from the hashed event"})
			continue
		}
		if r.seq != cur.next {
			fail(Problem{Chain: r.chain, Seq: r.seq, ID: r.id, Kind: ProblemRemoved,
				Detail: fmt.Sprintf("records seq %d to %d are missing before this one", cur.next, r.seq-1)})
			continue
		}
		if r.prevHash != cur.prev {
			fail(Problem{Chain: r.chain, Seq: r.seq, ID: r.id, Kind: ProblemRemoved,
				Detail: "the record before this one is not the one it was chained to (removed, or edited and rehashed)"})
			links = append(links, brokenLink{problem: len(rep.Problems) - 1, prev: r.prevHash})
			continue
		}
		cur.next, cur.prev = r.seq+1, r.hash
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("recordings: verify: %w", err)
	}
	finish()
	rows.Close()

	// A link to a record that sits later in the chain means reordering.
	for _, l := range links {
		p := &rep.Problems[l.problem]
		var seq int64
		err := tx.QueryRowContext(ctx, s.db.Rebind("SELECT seq FROM audit_events WHERE chain = ? AND hash = ?"), p.Chain, l.prev).Scan(&seq)
		if err == nil && seq > p.Seq {
			p.Kind = ProblemReordered
			p.Detail = fmt.Sprintf("the record was chained after seq %d's record but sits before it", seq)
		} else if err != nil && !isNoRows(err) {
			return rep, fmt.Errorf("recordings: verify: %w", err)
		}
	}

	// A chain whose records were all purged still has its checkpoint.
	for name, cp := range cps {
		if seen[name] {
			continue
		}
		rep.Chains++
		seen[name] = true
		if p := s.checkCheckpoint(name, cp); p != nil {
			rep.Problems = append(rep.Problems, *p)
		}
	}

	// This store remembers its own head, so records cut from the end of
	// its chain show.
	own := s.cfg.Instance
	if !dirty && head.seq > 0 && !rep.brokenChain(own) {
		var last int64
		err := tx.QueryRowContext(ctx, s.db.Rebind("SELECT COALESCE(MAX(seq), 0) FROM audit_events WHERE chain = ?"), own).Scan(&last)
		if err != nil {
			return rep, fmt.Errorf("recordings: verify: %w", err)
		}
		if cp, ok := cps[own]; ok {
			last = max(last, cp.seq)
		}
		if last < head.seq {
			if !seen[own] {
				rep.Chains++
			}
			rep.Problems = append(rep.Problems, Problem{Chain: own, Seq: last + 1, Kind: ProblemRemoved,
				Detail: fmt.Sprintf("records seq %d to %d, the newest this instance wrote, are missing", last+1, head.seq)})
		}
	}
	return rep, tx.Commit()
}

func (r Report) brokenChain(chain string) bool {
	for _, p := range r.Problems {
		if p.Chain == chain {
			return true
		}
	}
	return false
}

func checkpoints(ctx context.Context, tx *sql.Tx) (map[string]checkpoint, error) {
	rows, err := tx.QueryContext(ctx, "SELECT chain, seq, hash, before_ns, mac FROM audit_checkpoints")
	if err != nil {
		return nil, fmt.Errorf("recordings: read checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[string]checkpoint{}
	for rows.Next() {
		var name string
		var cp checkpoint
		if err := rows.Scan(&name, &cp.seq, &cp.hash, &cp.beforeNS, &cp.mac); err != nil {
			return nil, err
		}
		out[name] = cp
	}
	return out, rows.Err()
}

func (s *Store) checkCheckpoint(chain string, cp checkpoint) *Problem {
	if len(s.cfg.CheckpointKey) == 0 {
		return nil
	}
	want := checkpointMAC(s.cfg.CheckpointKey, chain, cp.seq, cp.hash, cp.beforeNS)
	if hmac.Equal([]byte(want), []byte(cp.mac)) {
		return nil
	}
	return &Problem{Chain: chain, Seq: cp.seq, Kind: ProblemCheckpoint,
		Detail: "the purge checkpoint is not signed with the checkpoint key (forged or edited)"}
}

// checkpointMAC is hex(HMAC-SHA256(key, chain "\n" seq "\n" hash "\n" before_ns)).
func checkpointMAC(key []byte, chain string, seq int64, hash string, beforeNS int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(chain + "\n" + strconv.FormatInt(seq, 10) + "\n" + hash + "\n" + strconv.FormatInt(beforeNS, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// storedRow is one audit_events row.
type storedRow struct {
	chain, id                                                      string
	seq, timeNS                                                    int64
	kind, principal, graph, node, run, thread, tool, status, event string
	prevHash, hash                                                 string
}

// mismatch names the first filter column that differs from the hashed
// event, or returns "".
func (r *storedRow) mismatch() string {
	var ev broker.Event
	if err := json.Unmarshal([]byte(r.event), &ev); err != nil {
		return "event"
	}
	for _, c := range []struct {
		name      string
		col, want string
	}{
		{"id", r.id, ev.ID}, {"kind", r.kind, string(ev.Kind)}, {"principal", r.principal, ev.Principal},
		{"graph", r.graph, ev.Graph}, {"node", r.node, ev.Node}, {"run", r.run, ev.Run},
		{"thread", r.thread, ev.Thread}, {"tool", r.tool, ev.Tool}, {"status", r.status, string(ev.Status)},
	} {
		if c.col != c.want {
			return c.name
		}
	}
	if r.timeNS != ev.Time.UnixNano() {
		return "time_ns"
	}
	return ""
}
