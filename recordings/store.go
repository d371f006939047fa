package recordings

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
)

var _ broker.Recorder = (*Store)(nil)

// Defaults for Config.
const (
	DefaultBatchMax = 128
	// writeTimeout bounds one batch transaction, so a hung store turns into
	// audit_unavailable instead of a hung call.
	writeTimeout = 10 * time.Second
	// rowsPerInsert bounds the placeholders of one multi-row INSERT
	// (15 per row; SQLite allows 32766, PostgreSQL 65535).
	rowsPerInsert = 128
	// gatherSpins is how many times a leader yields without a new request
	// before it takes the batch (group.go).
	gatherSpins = 2
	// preparedRows is the largest batch whose INSERT the store keeps
	// prepared: parsing a multi-row INSERT cost SQLite as much as running
	// it. Larger batches are rare and prepared per use.
	preparedRows = 32
)

// genesis is the prev_hash of the first record of a chain.
var genesis = strings.Repeat("0", 64)

// Config configures a Store.
type Config struct {
	// Instance names this store's chain. Instances sharing a database must
	// use distinct names. Empty means the hostname plus a random suffix,
	// a new chain per process.
	Instance string
	// Now is the clock for events without a time and for checkpoints.
	// Nil means time.Now.
	Now func() time.Time
	// BatchMax caps the events group-committed in one transaction.
	// Zero means DefaultBatchMax.
	BatchMax int
	// BatchWait is how long a commit waits for more events before
	// committing a batch that is not full. Zero commits what is queued at
	// once: batches still form while the previous commit runs.
	BatchWait time.Duration
	// CheckpointKey signs purge checkpoints with HMAC-SHA256. When set,
	// Verify refuses a checkpoint without a valid signature.
	CheckpointKey []byte
}

// Validate reports the first problem with the config.
func (c Config) Validate() error {
	if c.BatchMax < 0 {
		return errors.New("recordings: BatchMax must not be negative")
	}
	if c.BatchWait < 0 {
		return errors.New("recordings: BatchWait must not be negative")
	}
	if len(c.Instance) > 200 {
		return errors.New("recordings: Instance must be at most 200 bytes")
	}
	return nil
}

// Store is the audit store. It is safe for concurrent use.
type Store struct {
	db  *db.DB
	cfg Config
	log *zap.Logger

	group group
	close sync.Once

	// mu guards head, dirty and inserts: the commit of one batch at a
	// time. Verify reads head.
	mu    sync.Mutex
	head  link
	dirty bool
	// inserts holds the prepared INSERT of n rows at index n. Close
	// closes them once the last batch is committed.
	inserts [preparedRows + 1]*sql.Stmt

	batches, records, failures atomic.Uint64
}

// Stats counts the store's work since NewStore.
type Stats struct {
	// Batches is the number of committed transactions.
	Batches uint64
	// Records is the number of acknowledged records.
	Records uint64
	// Failures is the number of records refused with an error.
	Failures uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Records: s.records.Load(), Failures: s.failures.Load()}
}

// link is a position in a chain.
type link struct {
	seq  int64
	hash string
}

type request struct {
	ev   broker.Event
	body string
	// wake receives once: true hands this request's caller the lead
	// (group.go), false says err holds the outcome.
	wake chan bool
	err  error
	// lead is set, under group.mu, when the request is handed the lead.
	lead bool
	// set by the commit
	seq        int64
	prev, hash string
}

// NewStore returns a store writing to d. It reads the chain head, so a
// restarted instance with the same Instance continues its chain; it fails
// when the store does not answer.
func NewStore(d *db.DB, cfg Config, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if d == nil {
		return nil, errors.New("recordings: NewStore needs a database")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "toolgate"
		}
		cfg.Instance = host + "-" + randomHex(4)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchMax == 0 {
		cfg.BatchMax = DefaultBatchMax
	}
	s := &Store{db: d, cfg: cfg, log: log.With(zap.String("chain", cfg.Instance))}
	s.group.idle.L = &s.group.mu
	s.group.full = make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := s.loadHead(ctx); err != nil {
		return nil, fmt.Errorf("recordings: read the head of chain %s: %w", cfg.Instance, err)
	}
	return s, nil
}

// Instance returns the name of the chain this store writes.
func (s *Store) Instance() string { return s.cfg.Instance }

// Close commits what is queued and waits for it. It does not close the
// database. Record after Close fails with audit_unavailable.
func (s *Store) Close() error {
	s.close.Do(func() {
		s.closeGroup()
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, st := range s.inserts {
			if st != nil {
				_ = st.Close()
				s.inserts[i] = nil
			}
		}
	})
	return nil
}

func unavailable(cause error) error {
	return broker.Wrap(broker.CodeAuditUnavailable, cause,
		"the audit store cannot record the event right now; the call fails closed, retry when the store is back")
}

// Record makes ev durable and returns once its transaction has committed.
// An empty ID gets a random, time-ordered one and a zero Time gets Config.Now(). An error
// means the event is not acknowledged: audit_unavailable when the store
// cannot be written, internal when the event cannot be encoded.
func (s *Store) Record(ctx context.Context, ev broker.Event) error {
	if ev.Kind == "" {
		return broker.Errorf(broker.CodeInternal, "the audit event has no kind and was not recorded")
	}
	if ev.ID == "" {
		ev.ID = sortableID()
	}
	if ev.Time.IsZero() {
		ev.Time = s.cfg.Now()
	}
	ev.Time = ev.Time.UTC()
	body, err := Canonical(ev)
	if err != nil {
		return broker.Wrap(broker.CodeInternal, err, "the audit event cannot be encoded and was not recorded")
	}
	return s.submit(ctx, &request{ev: ev, body: string(body), wake: make(chan bool, 1)})
}

// commit writes batch in one transaction and answers every request in it.
func (s *Store) commit(batch []*request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitLocked(batch)
}

func (s *Store) commitLocked(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if s.dirty {
		if err := s.loadHeadLocked(ctx); err != nil {
			s.answer(batch, unavailable(err))
			return
		}
	}
	prev := s.head
	for _, r := range batch {
		r.seq = prev.seq + 1
		r.prev = prev.hash
		r.hash = chainHash(r.prev, s.cfg.Instance, r.body)
		prev = link{r.seq, r.hash}
	}
	err := s.insert(ctx, batch)
	if err == nil {
		s.head = prev
		s.answer(batch, nil)
		return
	}
	// The outcome is unknown: the commit may have reached the store before
	// the connection broke. Re-read the head to find out.
	s.dirty = true
	if herr := s.loadHeadLocked(ctx); herr != nil {
		s.log.Warn("audit batch failed", zap.Int("events", len(batch)), zap.Error(err))
		s.answer(batch, unavailable(err))
		return
	}
	if s.head == prev {
		s.answer(batch, nil)
		return
	}
	if len(batch) == 1 {
		s.log.Warn("audit record refused", zap.String("id", batch[0].ev.ID), zap.Error(err))
		s.answer(batch, unavailable(err))
		return
	}
	// The store answers but refused the batch: one event may be at fault
	// (a reused id). Commit the others one by one.
	for _, r := range batch {
		s.commitLocked([]*request{r})
	}
}

func (s *Store) answer(batch []*request, err error) {
	if err == nil {
		s.batches.Add(1)
		s.records.Add(uint64(len(batch)))
	} else {
		s.failures.Add(uint64(len(batch)))
	}
	for _, r := range batch {
		r.err = err
		r.wake <- false
	}
}

const insertColumns = "INSERT INTO audit_events (chain, seq, id, time_ns, kind, principal, graph, node, run, thread, tool, status, event, prev_hash, hash) VALUES "
const insertRow = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

// insert writes batch atomically. A batch of up to rowsPerInsert events is
// one multi-row INSERT, atomic on its own, so it needs no BEGIN and COMMIT
// round trips; a larger one is several INSERTs in one transaction.
func (s *Store) insert(ctx context.Context, batch []*request) error {
	if len(batch) <= preparedRows {
		st, err := s.prepared(ctx, len(batch))
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, insertArgs(s.cfg.Instance, batch)...)
		return err
	}
	if len(batch) <= rowsPerInsert {
		_, err := s.db.SQL().ExecContext(ctx, s.insertStatement(len(batch)), insertArgs(s.cfg.Instance, batch)...)
		return err
	}
	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for start := 0; start < len(batch); start += rowsPerInsert {
		part := batch[start:min(start+rowsPerInsert, len(batch))]
		if _, err := tx.ExecContext(ctx, s.insertStatement(len(part)), insertArgs(s.cfg.Instance, part)...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// prepared returns the prepared INSERT of n rows, preparing it on first use.
// The caller holds mu.
func (s *Store) prepared(ctx context.Context, n int) (*sql.Stmt, error) {
	if st := s.inserts[n]; st != nil {
		return st, nil
	}
	st, err := s.db.SQL().PrepareContext(ctx, s.insertStatement(n))
	if err != nil {
		return nil, err
	}
	s.inserts[n] = st
	return st, nil
}

// insertStatement returns one INSERT of n rows.
func (s *Store) insertStatement(n int) string {
	var q strings.Builder
	q.Grow(len(insertColumns) + n*(len(insertRow)+2))
	q.WriteString(insertColumns)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(insertRow)
	}
	return s.db.Rebind(q.String())
}

// insertArgs returns the values of insertStatement(len(part)) for part.
func insertArgs(chain string, part []*request) []any {
	args := make([]any, 0, 15*len(part))
	for _, r := range part {
		ev := &r.ev
		args = append(args, chain, r.seq, ev.ID, ev.Time.UnixNano(), string(ev.Kind),
			ev.Principal, ev.Graph, ev.Node, ev.Run, ev.Thread, ev.Tool, string(ev.Status),
			r.body, r.prev, r.hash)
	}
	return args
}

// loadHead reads the last link of this store's chain.
func (s *Store) loadHead(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadHeadLocked(ctx)
}

func (s *Store) loadHeadLocked(ctx context.Context) error {
	h, err := chainHead(ctx, s.db, s.cfg.Instance)
	if err != nil {
		return err
	}
	s.head, s.dirty = h, false
	return nil
}

// chainHead returns the last record of chain, or its checkpoint, or the
// genesis link.
func chainHead(ctx context.Context, d *db.DB, chain string) (link, error) {
	var h link
	err := d.SQL().QueryRowContext(ctx, d.Rebind("SELECT seq, hash FROM audit_events WHERE chain = ? ORDER BY seq DESC LIMIT 1"), chain).Scan(&h.seq, &h.hash)
	if err == nil {
		return h, nil
	}
	if !isNoRows(err) {
		return link{}, err
	}
	err = d.SQL().QueryRowContext(ctx, d.Rebind("SELECT seq, hash FROM audit_checkpoints WHERE chain = ?"), chain).Scan(&h.seq, &h.hash)
	if err == nil {
		return h, nil
	}
	if !isNoRows(err) {
		return link{}, err
	}
	return link{0, genesis}, nil
}

// chainHash is the hash of a record: hex(SHA-256(prev + "\n" + chain + "\n" + event)).
func chainHash(prev, chain, event string) string {
	h := sha256.New()
	io.WriteString(h, prev)
	io.WriteString(h, "\n")
	io.WriteString(h, chain)
	io.WriteString(h, "\n")
	io.WriteString(h, event)
	return hex.EncodeToString(h.Sum(nil))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sortableID returns a random id that sorts by time, so the unique id
// index grows at its right edge: 8 bytes of Unix nanoseconds, then 8 random
// bytes, hex-encoded.
func sortableID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}
