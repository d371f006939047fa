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
// Verify checks every chain: each record's hash over its content, the link
// to the record before it, seq continuity from 1 (or from the checkpoint),
// and that the filter columns match the hashed event. It reports the first
// problem of each chain. The error is for a store that cannot be read, not
// for a broken chain.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	// This store's head is read before the snapshot below is taken: a
	// record is committed before the head moves, so the snapshot holds at
	// least the head, and a concurrent write is no false alarm.
	s.mu.Lock()
	head, dirty := s.head, s.dirty
	s.mu.Unlock()
	tx, err := s.snapshot(ctx)
	if err != nil {
		return Report{}, err
	}
	defer tx.Rollback()
	cps, err := checkpoints(ctx, tx)
	if err != nil {
		return Report{}, err
	}
	v := &verifier{s: s, tx: tx, cps: cps, seen: map[string]bool{}}
	if err := v.scan(ctx); err != nil {
		return v.rep, err
	}
	if err := v.reordered(ctx); err != nil {
		return v.rep, err
	}
	v.purgedChains()
	if !dirty && head.seq > 0 {
		if err := v.ownTail(ctx, head.seq); err != nil {
			return v.rep, err
		}
	}
	return v.rep, tx.Commit()
}

// snapshot begins the one read-only transaction every query of a Verify
// runs in, so a concurrent Purge cannot move the checkpoint between
// reading it and reading the records.
func (s *Store) snapshot(ctx context.Context) (*sql.Tx, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Driver() == db.DriverPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.SQL().BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("recordings: verify: %w", err)
	}
	return tx, nil
}

// verifier is one Verify on its snapshot: the report so far and its place
// in the chain being read.
type verifier struct {
	s    *Store
	tx   *sql.Tx
	cps  map[string]checkpoint
	rep  Report
	cur  *chainState
	seen map[string]bool
	// links are chains whose first problem is a broken link, classified
	// after the scan (reordered or removed).
	links []brokenLink
}

// brokenLink is a problem whose record links to a record other than the
// one before it.
type brokenLink struct {
	problem int
	prev    string
}

// scan reads every record, chain by chain in seq order, and checks it.
func (v *verifier) scan(ctx context.Context) error {
	rows, err := v.tx.QueryContext(ctx, "SELECT chain, seq, id, time_ns, kind, principal, graph, node, run, thread, tool, status, event, prev_hash, hash FROM audit_events ORDER BY chain, seq")
	if err != nil {
		return fmt.Errorf("recordings: verify: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.chain, &r.seq, &r.id, &r.timeNS, &r.kind, &r.principal, &r.graph, &r.node, &r.run, &r.thread, &r.tool, &r.status, &r.event, &r.prevHash, &r.hash); err != nil {
			return fmt.Errorf("recordings: verify: %w", err)
		}
		v.check(&r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recordings: verify: %w", err)
	}
	v.endChain()
	return nil
}

// startChain ends the chain being read and starts chain name, from its
// checkpoint when it has one.
func (v *verifier) startChain(name string) {
	v.endChain()
	v.rep.Chains++
	v.seen[name] = true
	v.cur = &chainState{name: name, next: 1, prev: genesis}
	if cp, ok := v.cps[name]; ok {
		v.cur.next, v.cur.prev = cp.seq+1, cp.hash
		if p := v.s.checkCheckpoint(name, cp); p != nil {
			v.rep.Problems = append(v.rep.Problems, *p)
			v.cur.broken = true
		}
	}
}

func (v *verifier) endChain() {
	if v.cur != nil {
		v.rep.Records += v.cur.records
	}
}

// check checks one record against its chain so far; a chain's first
// problem is reported and the rest of the chain only counted.
func (v *verifier) check(r *storedRow) {
	if v.cur == nil || r.chain != v.cur.name {
		v.startChain(r.chain)
	}
	cur := v.cur
	cur.records++
	cur.last = r.seq
	if cur.broken {
		return
	}
	p, link := cur.problem(r)
	if p == nil {
		cur.next, cur.prev = r.seq+1, r.hash
		return
	}
	v.rep.Problems = append(v.rep.Problems, *p)
	cur.broken = true
	if link {
		v.links = append(v.links, brokenLink{problem: len(v.rep.Problems) - 1, prev: r.prevHash})
	}
}

// problem is what is wrong with record r at this place in the chain, nil
// when nothing is; link is set when r links to a record other than the
// one before it.
func (cur *chainState) problem(r *storedRow) (p *Problem, link bool) {
	at := func(kind ProblemKind, detail string) *Problem {
		return &Problem{Chain: r.chain, Seq: r.seq, ID: r.id, Kind: kind, Detail: detail}
	}
	switch {
	case chainHash(r.prevHash, r.chain, r.event) != r.hash:
		return at(ProblemEdited, "the record's hash does not match its content"), false
	case r.mismatch() != "":
		return at(ProblemEdited, "column "+r.mismatch()+" differs from the hashed event"), false
	case r.seq != cur.next:
		return at(ProblemRemoved, fmt.Sprintf("records seq %d to %d are missing before this one", cur.next, r.seq-1)), false
	case r.prevHash != cur.prev:
		return at(ProblemRemoved, "the record before this one is not the one it was chained to (removed, or edited and rehashed)"), true
	}
	return nil, false
}

// reordered reclassifies broken links: a link to a record that sits later
// in the chain means reordering.
func (v *verifier) reordered(ctx context.Context) error {
	for _, l := range v.links {
		p := &v.rep.Problems[l.problem]
		var seq int64
		err := v.tx.QueryRowContext(ctx, v.s.db.Rebind("SELECT seq FROM audit_events WHERE chain = ? AND hash = ?"), p.Chain, l.prev).Scan(&seq)
		if err == nil && seq > p.Seq {
			p.Kind = ProblemReordered
			p.Detail = fmt.Sprintf("the record was chained after seq %d's record but sits before it", seq)
		} else if err != nil && !isNoRows(err) {
			return fmt.Errorf("recordings: verify: %w", err)
		}
	}
	return nil
}

// purgedChains counts the chains whose records were all purged, which
// still have their checkpoint, and checks it.
func (v *verifier) purgedChains() {
	for name, cp := range v.cps {
		if v.seen[name] {
			continue
		}
		v.rep.Chains++
		v.seen[name] = true
		if p := v.s.checkCheckpoint(name, cp); p != nil {
			v.rep.Problems = append(v.rep.Problems, *p)
		}
	}
}

// ownTail reports records cut from the end of this store's own chain: it
// remembers its head seq.
func (v *verifier) ownTail(ctx context.Context, headSeq int64) error {
	own := v.s.cfg.Instance
	if v.rep.brokenChain(own) {
		return nil
	}
	var last int64
	err := v.tx.QueryRowContext(ctx, v.s.db.Rebind("SELECT COALESCE(MAX(seq), 0) FROM audit_events WHERE chain = ?"), own).Scan(&last)
	if err != nil {
		return fmt.Errorf("recordings: verify: %w", err)
	}
	if cp, ok := v.cps[own]; ok {
		last = max(last, cp.seq)
	}
	if last < headSeq {
		if !v.seen[own] {
			v.rep.Chains++
		}
		v.rep.Problems = append(v.rep.Problems, Problem{Chain: own, Seq: last + 1, Kind: ProblemRemoved,
			Detail: fmt.Sprintf("records seq %d to %d, the newest this instance wrote, are missing", last+1, headSeq)})
	}
	return nil
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
