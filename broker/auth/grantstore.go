package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
)

// Grant is a just-in-time grant (DESIGN §5): a principal of a graph lets the
// listed nodes of one run act, each with its own token, until ExpiresAt or
// until it is revoked.
type Grant struct {
	ID     string
	Graph  string
	Run    string
	Thread string
	Nodes  []string
	Scope  map[string]any
	// CreatedBy is the subject of the principal that minted the grant.
	CreatedBy string
	// Minter is the principal that minted the grant (subject and verified
	// email in normal form, OIDC subject, auth method; no groups): the human or service
	// behind every call made with the grant's tokens. Grants stored before
	// it was kept have only CreatedBy as Minter.Subject.
	Minter    broker.Principal
	CreatedAt time.Time
	ExpiresAt time.Time
	// RevokedAt is zero while the grant is not revoked.
	RevokedAt time.Time
	// RevokedReason is why it was revoked: "" by a principal of its graph,
	// RevokedOwnerDisabled when the principal that minted it was disabled.
	RevokedReason string
}

// RevokedOwnerDisabled is the RevokedReason of a grant revoked because the
// principal that minted it (or the owner of the key that did) was disabled.
const RevokedOwnerDisabled = "owner_disabled"

// ErrGrantNotFound is returned by a GrantStore for an unknown grant id or
// token hash.
var ErrGrantNotFound = errors.New("grant not found")

// GrantStore persists grants and their per-node token hashes. It never sees
// a token, only its hex SHA-256.
type GrantStore interface {
	// Create stores a grant and, per node, the hash of its token.
	Create(ctx context.Context, g Grant, tokenHashes map[string]string) error
	// Lookup finds the grant and node a token hash belongs to, or
	// ErrGrantNotFound. It returns revoked and expired grants as they are.
	Lookup(ctx context.Context, tokenHash string) (Grant, string, error)
	// Get returns a grant by id, or ErrGrantNotFound.
	Get(ctx context.Context, id string) (Grant, error)
	// Revoke marks a grant revoked at the given time. Revoking a revoked
	// grant keeps the first time; an unknown id is ErrGrantNotFound.
	Revoke(ctx context.Context, id string, at time.Time) error
}

// SQLGrantStore is a GrantStore over database/sql, using the tables of
// internal/db/migrations/*/0003_grants.sql.
type SQLGrantStore struct {
	db *sql.DB
	d  *db.DB
}

var (
	_ GrantStore  = (*SQLGrantStore)(nil)
	_ GrantLister = (*SQLGrantStore)(nil)
)

// NewSQLGrantStore returns a store over d, whose schema must include the
// grants migrations.
func NewSQLGrantStore(d *db.DB) (*SQLGrantStore, error) {
	if d == nil {
		return nil, fmt.Errorf("grant store: no database")
	}
	return &SQLGrantStore{db: d.SQL(), d: d}, nil
}

// q rewrites ? placeholders to $n for Postgres.
func (s *SQLGrantStore) q(query string) string { return s.d.Rebind(query) }

// Create implements GrantStore.
func (s *SQLGrantStore) Create(ctx context.Context, g Grant, tokenHashes map[string]string) error {
	nodes, err := json.Marshal(g.Nodes)
	if err != nil {
		return fmt.Errorf("encode nodes: %w", err)
	}
	scope := g.Scope
	if scope == nil {
		scope = map[string]any{}
	}
	scopeJSON, err := json.Marshal(scope)
	if err != nil {
		return fmt.Errorf("encode scope: %w", err)
	}
	minter, err := json.Marshal(minterOf(g))
	if err != nil {
		return fmt.Errorf("encode minter: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO grants (id, graph, run_id, thread_id, nodes, scope, created_by, created_at, expires_at, minter)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		g.ID, g.Graph, g.Run, g.Thread, string(nodes), string(scopeJSON), g.CreatedBy, ms(g.CreatedAt), ms(g.ExpiresAt), string(minter)); err != nil {
		return fmt.Errorf("insert grant %s: %w", g.ID, err)
	}
	for node, hash := range tokenHashes {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO grant_tokens (token_sha256, grant_id, node) VALUES (?, ?, ?)`), hash, g.ID, node); err != nil {
			return fmt.Errorf("insert token of grant %s node %s: %w", g.ID, node, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit grant %s: %w", g.ID, err)
	}
	return nil
}

const grantColumns = `g.id, g.graph, g.run_id, g.thread_id, g.nodes, g.scope, g.created_by, g.created_at, g.expires_at, g.revoked_at, g.minter, g.revoked_reason`

// minterOf is what is stored of a grant's minter: the names that identify
// that one human or service, never its groups or OAuth client.
func minterOf(g Grant) broker.Principal {
	m := g.Minter
	if m.Subject == "" {
		m.Subject = g.CreatedBy
	}
	return broker.Principal{Subject: broker.PrincipalName(m.Subject), Email: strings.ToLower(m.Email), IdPSubject: m.IdPSubject, Method: m.Method}
}

// Lookup implements GrantStore.
func (s *SQLGrantStore) Lookup(ctx context.Context, tokenHash string) (Grant, string, error) {
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+grantColumns+`, t.node
		FROM grant_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_sha256 = ?`), tokenHash)
	var node string
	g, err := scanGrant(row, &node)
	return g, node, err
}

// Get implements GrantStore.
func (s *SQLGrantStore) Get(ctx context.Context, id string) (Grant, error) {
	return scanGrant(s.db.QueryRowContext(ctx, s.q(`SELECT `+grantColumns+` FROM grants g WHERE g.id = ?`), id))
}

// List implements GrantLister.
func (s *SQLGrantStore) List(ctx context.Context, f GrantFilter) ([]Grant, error) {
	query := `SELECT ` + grantColumns + ` FROM grants g WHERE g.graph = ?`
	args := []any{f.Graph}
	if f.Run != "" {
		query += ` AND g.run_id = ?`
		args = append(args, f.Run)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	query += ` ORDER BY g.created_at DESC, g.id LIMIT ?`
	args = append(args, f.Limit)
	return s.grants(ctx, query, args...)
}

// grants runs a query of grantColumns and scans every row.
func (s *SQLGrantStore) grants(ctx context.Context, query string, args ...any) ([]Grant, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return out, nil
}

// Revoke implements GrantStore.
func (s *SQLGrantStore) Revoke(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), ms(at), id)
	if err != nil {
		return fmt.Errorf("revoke grant %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM grants WHERE id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrGrantNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke grant %s: %w", id, err)
	}
	return nil
}

func scanGrant(row interface{ Scan(...any) error }, extra ...any) (Grant, error) {
	var (
		g                Grant
		nodes, scope     string
		minter           string
		created, expires int64
		revoked          sql.NullInt64
	)
	dest := append([]any{&g.ID, &g.Graph, &g.Run, &g.Thread, &nodes, &scope, &g.CreatedBy, &created, &expires, &revoked, &minter, &g.RevokedReason}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Grant{}, ErrGrantNotFound
		}
		return Grant{}, fmt.Errorf("read grant: %w", err)
	}
	if err := json.Unmarshal([]byte(nodes), &g.Nodes); err != nil {
		return Grant{}, fmt.Errorf("decode nodes of grant %s: %w", g.ID, err)
	}
	if err := json.Unmarshal([]byte(scope), &g.Scope); err != nil {
		return Grant{}, fmt.Errorf("decode scope of grant %s: %w", g.ID, err)
	}
	if minter != "" {
		if err := json.Unmarshal([]byte(minter), &g.Minter); err != nil {
			return Grant{}, fmt.Errorf("decode minter of grant %s: %w", g.ID, err)
		}
	}
	g.Minter = minterOf(g)
	g.CreatedAt, g.ExpiresAt = fromMS(created), fromMS(expires)
	if revoked.Valid {
		g.RevokedAt = fromMS(revoked.Int64)
	}
	return g, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
