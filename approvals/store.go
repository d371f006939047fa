package approvals

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/toolgate/toolgate/internal/db"

	"github.com/toolgate/toolgate/broker"
)

// Request is one durable approval request: what is shown to approvers
// (broker.ApprovalInfo) plus what only the gate needs.
type Request struct {
	broker.ApprovalInfo
	// Requesters are the principal names, in normal form, that may never
	// approve this request: the caller's subject and verified email and,
	// for a grant token, those of the principal that minted the grant.
	Requesters []string `json:"-"`
	// Caller is the credential identity the request is bound to (the
	// caller's subject in normal form); only a call made with it runs on
	// the approval.
	Caller string `json:"-"`
	// Ref is the notifier's handle on its message (Slack "channel:ts").
	Ref string `json:"-"`
	// Result is the masked result of the approved call, set once consumed.
	Result       json.RawMessage `json:"-"`
	ErrorCode    string          `json:"-"`
	ErrorMessage string          `json:"-"`
	DecidedAt    time.Time       `json:"-"`
}

// Store keeps approval requests and votes in SQLite or Postgres (the tables
// of migrations 0004_approvals, 0005_identity and 0007_previews). It is safe for
// concurrent use by several Services, in one process or several: a vote and
// the status change it causes are one transaction, and at most one request
// per call is pending (a partial unique index).
type Store struct {
	db *sql.DB
	d  *db.DB
}

// NewStore returns a Store on d, whose schema must include migrations
// 0004_approvals, 0005_identity and 0007_previews.
func NewStore(d *db.DB) (*Store, error) {
	if d == nil {
		return nil, errors.New("approvals store: nil database")
	}
	return &Store{db: d.SQL(), d: d}, nil
}

// q rewrites ? placeholders to $n for Postgres.
func (s *Store) q(query string) string { return s.d.Rebind(query) }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// errNotFound is returned by get for an unknown id.
var errNotFound = errors.New("approval not found")

const columns = `id, status, principal, requesters, graph, node, run_id, thread, tool, target, args, args_hash,
	rule, policy_version, approvers, min_approvals, reason, result, error_code, error_message, announce_ref,
	created_at, expires_at, decided_at, caller, rule_version, preview, preview_hash`

// insert stores a new pending request. created is false when the call
// already has a pending request (another instance or goroutine made it
// first): the caller then finds that one instead.
func (s *Store) insert(ctx context.Context, r Request) (created bool, err error) {
	req, _ := json.Marshal(r.Requesters)
	apv, _ := json.Marshal(r.Approvers)
	var preview sql.NullString
	hash := ""
	if r.Preview != nil {
		b, err := json.Marshal(r.Preview)
		if err != nil {
			return false, fmt.Errorf("insert approval %s: preview: %w", r.ID, err)
		}
		preview, hash = sql.NullString{String: string(b), Valid: true}, r.Preview.Hash
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO approvals (`+columns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', '', '', ?, ?, NULL, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`),
		r.ID, string(r.Status), r.Principal, string(req), r.Graph, r.Node, r.Run, r.Thread, r.Tool, r.Target,
		string(r.Args), r.ArgsHash, r.Rule, r.PolicyVersion, string(apv), r.MinApprovals, r.Reason,
		micros(r.CreatedAt), micros(r.ExpiresAt), r.Caller, r.RuleVersion, preview, hash)
	if err != nil {
		return false, fmt.Errorf("insert approval %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert approval %s: %w", r.ID, err)
	}
	return n == 1, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRequest(sc scanner) (Request, error) {
	var (
		r                Request
		status, req, apv string
		args             string
		result, preview  sql.NullString
		hash             string
		created, expires int64
		decided          sql.NullInt64
	)
	err := sc.Scan(&r.ID, &status, &r.Principal, &req, &r.Graph, &r.Node, &r.Run, &r.Thread, &r.Tool, &r.Target,
		&args, &r.ArgsHash, &r.Rule, &r.PolicyVersion, &apv, &r.MinApprovals, &r.Reason, &result,
		&r.ErrorCode, &r.ErrorMessage, &r.Ref, &created, &expires, &decided, &r.Caller, &r.RuleVersion, &preview, &hash)
	if err != nil {
		return Request{}, err
	}
	if preview.Valid {
		r.Preview = &broker.ApprovalPreview{}
		if err := json.Unmarshal([]byte(preview.String), r.Preview); err != nil {
			return Request{}, fmt.Errorf("approval %s: preview: %w", r.ID, err)
		}
		// The request is bound to the hash in its own column: the run on
		// it checks the stored preview against this one (Intact).
		r.Preview.Hash = hash
	}
	r.Status = broker.ApprovalStatus(status)
	r.Args = json.RawMessage(args)
	if result.Valid {
		r.Result = json.RawMessage(result.String)
	}
	if err := json.Unmarshal([]byte(req), &r.Requesters); err != nil {
		return Request{}, fmt.Errorf("approval %s: requesters: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(apv), &r.Approvers); err != nil {
		return Request{}, fmt.Errorf("approval %s: approvers: %w", r.ID, err)
	}
	r.CreatedAt, r.ExpiresAt = fromMicros(created), fromMicros(expires)
	if r.Caller != r.Principal {
		r.Via = r.Caller
	}
	if decided.Valid {
		r.DecidedAt = fromMicros(decided.Int64)
	}
	return r, nil
}

// get loads a request with its votes; errNotFound for an unknown id.
func (s *Store) get(ctx context.Context, id string) (Request, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM approvals WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, errNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("load approval %s: %w", id, err)
	}
	if r.Votes, err = s.votes(ctx, id); err != nil {
		return Request{}, err
	}
	return r, nil
}

// callKey is what binds a request to a call: graph, node, run, tool, the
// SHA-256 of the arguments and the caller's credential identity.
type callKey struct {
	graph, node, run, tool, argsHash, caller string
}

// findCall returns the request the call is bound to among those in one of
// statuses; errNotFound when there is none. A live request (executing, then
// approved, then pending; at most one is pending) comes before a finished
// one (consumed, then denied), and among equals the newest.
func (s *Store) findCall(ctx context.Context, k callKey, statuses []broker.ApprovalStatus) (Request, error) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(statuses)), ", ")
	args := []any{k.graph, k.node, k.run, k.tool, k.argsHash, k.caller}
	for _, st := range statuses {
		args = append(args, string(st))
	}
	r, err := scanRequest(s.db.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM approvals
		WHERE graph = ? AND node = ? AND run_id = ? AND tool = ? AND args_hash = ? AND caller = ? AND status IN (`+marks+`)
		ORDER BY CASE status WHEN 'executing' THEN 0 WHEN 'approved' THEN 1 WHEN 'pending' THEN 2 WHEN 'consumed' THEN 3 ELSE 4 END,
			created_at DESC, id LIMIT 1`), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, errNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("find approval: %w", err)
	}
	if r.Votes, err = s.votes(ctx, r.ID); err != nil {
		return Request{}, err
	}
	return r, nil
}

func (s *Store) votes(ctx context.Context, id string) ([]broker.ApprovalVote, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT approver, approve, reason, channel, created_at
		FROM approval_votes WHERE approval_id = ? ORDER BY created_at, approver`), id)
	if err != nil {
		return nil, fmt.Errorf("load votes of %s: %w", id, err)
	}
	defer rows.Close()
	var out []broker.ApprovalVote
	for rows.Next() {
		var (
			v       broker.ApprovalVote
			approve int
			at      int64
		)
		if err := rows.Scan(&v.Approver, &approve, &v.Reason, &v.Channel, &at); err != nil {
			return nil, fmt.Errorf("load votes of %s: %w", id, err)
		}
		v.Approve, v.Time = approve == 1, fromMicros(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// voteOutcome is what castVote did.
type voteOutcome int

const (
	// voteCounted: the vote is stored, with the status change it caused.
	voteCounted voteOutcome = iota
	// voteNotPending: the request was no longer pending (or had expired);
	// nothing was stored.
	voteNotPending
	// voteDuplicate: this approver had already voted; nothing was stored.
	voteDuplicate
)

// castVote stores one vote and the decision it causes as one conditional
// transaction: the request must be pending and unexpired at now, the
// approver must not have voted, and a deny (or the min-th distinct approval)
// moves the request to denied (approved) in the same commit. So a vote that
// is counted has always taken effect, and a request changes from pending
// exactly once however many votes race. decided is the new status when the
// vote decided the request, "" otherwise.
func (s *Store) castVote(ctx context.Context, id string, v broker.ApprovalVote, minApprovals int, denyReason string) (out voteOutcome, decided broker.ApprovalStatus, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, "", fmt.Errorf("vote on %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	// Take the request (a row lock on Postgres, the write lock on SQLite)
	// while it is still pending; a racing vote waits here and then finds
	// it decided.
	res, err := tx.ExecContext(ctx, s.q(`UPDATE approvals SET status = status WHERE id = ? AND status = ? AND expires_at > ?`),
		id, string(broker.ApprovalPending), micros(v.Time))
	if err != nil {
		return 0, "", fmt.Errorf("vote on %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return voteNotPending, "", err
	}
	approve := 0
	if v.Approve {
		approve = 1
	}
	res, err = tx.ExecContext(ctx, s.q(`INSERT INTO approval_votes (approval_id, approver, approve, reason, channel, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (approval_id, approver) DO NOTHING`),
		id, v.Approver, approve, v.Reason, v.Channel, micros(v.Time))
	if err != nil {
		return 0, "", fmt.Errorf("record vote on %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return voteDuplicate, "", err
	}
	to, reason := broker.ApprovalDenied, denyReason
	if v.Approve {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(DISTINCT approver) FROM approval_votes WHERE approval_id = ? AND approve = 1`), id).Scan(&n); err != nil {
			return 0, "", fmt.Errorf("count approvals of %s: %w", id, err)
		}
		to, reason = "", ""
		if n >= minApprovals {
			to = broker.ApprovalApproved
		}
	}
	if to != "" {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE approvals SET status = ?, decided_at = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END WHERE id = ? AND status = ?`),
			string(to), micros(v.Time), reason, reason, id, string(broker.ApprovalPending)); err != nil {
			return 0, "", fmt.Errorf("decide %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, "", fmt.Errorf("vote on %s: %w", id, err)
	}
	return voteCounted, to, nil
}

// transition moves a request from one status to another; changed is false
// when it was not in status from (someone else moved it first).
func (s *Store) transition(ctx context.Context, id string, from, to broker.ApprovalStatus, reason string, at time.Time) (changed bool, err error) {
	query := `UPDATE approvals SET status = ?, decided_at = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END WHERE id = ? AND status = ?`
	res, err := s.db.ExecContext(ctx, s.q(query), string(to), micros(at), reason, reason, id, string(from))
	if err != nil {
		return false, fmt.Errorf("approval %s %s -> %s: %w", id, from, to, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("approval %s %s -> %s: %w", id, from, to, err)
	}
	return n == 1, nil
}

// claim moves an approved request to executing; ok is false when another
// call claimed it first.
func (s *Store) claim(ctx context.Context, id string, at time.Time) (ok bool, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE approvals SET status = ?, claimed_at = ? WHERE id = ? AND status = ?`),
		string(broker.ApprovalExecuting), micros(at), id, string(broker.ApprovalApproved))
	if err != nil {
		return false, fmt.Errorf("claim approval %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim approval %s: %w", id, err)
	}
	return n == 1, nil
}

// consume stores the outcome of the executing call and marks the request
// consumed, or stale when its call was refused with approval_stale (its
// run did not match the preview): a stale request is used up and is no
// call's binding, so the next call makes a new request.
func (s *Store) consume(ctx context.Context, id string, result json.RawMessage, code, message string, at time.Time) (bool, error) {
	var res sql.NullString
	if result != nil {
		res = sql.NullString{String: string(result), Valid: true}
	}
	to, reason := broker.ApprovalConsumed, ""
	if code == string(broker.CodeApprovalStale) {
		to, reason = broker.ApprovalStale, message
	}
	out, err := s.db.ExecContext(ctx, s.q(`UPDATE approvals SET status = ?, result = ?, error_code = ?, error_message = ?, consumed_at = ?,
		reason = CASE WHEN ? = '' THEN reason ELSE ? END
		WHERE id = ? AND status = ?`), string(to), res, code, message, micros(at), reason, reason, id, string(broker.ApprovalExecuting))
	if err != nil {
		return false, fmt.Errorf("consume approval %s: %w", id, err)
	}
	n, err := out.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("consume approval %s: %w", id, err)
	}
	return n == 1, nil
}

// setRef stores the notifier's handle on the request's message.
func (s *Store) setRef(ctx context.Context, id, ref string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE approvals SET announce_ref = ? WHERE id = ?`), ref, id); err != nil {
		return fmt.Errorf("store message ref of %s: %w", id, err)
	}
	return nil
}

// list returns the requests f selects, pending ones first, then newest
// first, at most f.Limit.
func (s *Store) list(ctx context.Context, f broker.ApprovalFilter) ([]Request, error) {
	where, args := "", []any{}
	for _, c := range []struct{ col, val string }{{"status", string(f.Status)}, {"graph", f.Graph}, {"tool", f.Tool}} {
		if c.val != "" {
			where += " AND " + c.col + " = ?"
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		where += " AND created_at >= ?"
		args = append(args, micros(f.Since))
	}
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+columns+` FROM approvals WHERE 1 = 1`+where+`
		ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END, created_at DESC, id LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	rows.Close()
	for i := range out {
		if out[i].Votes, err = s.votes(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// overdue returns the ids of pending requests that expired by now.
// stale lists requests that have been executing since before claimedBefore:
// the call that took them never reported its outcome.
func (s *Store) stale(ctx context.Context, claimedBefore time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM approvals WHERE status = ? AND claimed_at <= ? ORDER BY claimed_at`),
		string(broker.ApprovalExecuting), micros(claimedBefore))
	if err != nil {
		return nil, fmt.Errorf("find stale approvals: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find stale approvals: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (s *Store) overdue(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM approvals WHERE status = ? AND expires_at <= ? ORDER BY expires_at`),
		string(broker.ApprovalPending), micros(now))
	if err != nil {
		return nil, fmt.Errorf("find expired approvals: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find expired approvals: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
