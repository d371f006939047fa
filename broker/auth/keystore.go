package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/toolgate/toolgate/internal/db"
)

// Key is an API key made at run time (POST /v1/keys). Only the hex SHA-256
// of the key is kept.
type Key struct {
	Name   string
	SHA256 string
	// Owner is the principal accountable for the key (normal form).
	Owner string
	// CreatedBy is the admin that made the key (normal form); it saw the
	// key once, so the key is suspended while either is disabled.
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RevokedAt is zero while the key is not revoked.
	RevokedAt time.Time
}

// Errors of a KeyStore.
var (
	ErrKeyNotFound = errors.New("key not found")
	ErrKeyExists   = errors.New("a key with this name or hash exists")
)

// KeyLookup finds a key made at run time by the SHA-256 of its token; the
// Authenticator asks it on every use of a key that is not configured.
type KeyLookup interface {
	// KeyByHash returns the key whose token hashes to sha256, revoked and
	// expired keys as they are, or ErrKeyNotFound.
	KeyByHash(ctx context.Context, sha256 string) (Key, error)
}

// KeyStore keeps the keys made at run time.
type KeyStore interface {
	KeyLookup
	// CreateKey stores a new key, or returns ErrKeyExists when its name or
	// hash is taken (names are never reused, revoked keys keep theirs).
	CreateKey(ctx context.Context, k Key) error
	// Key returns a key by name, or ErrKeyNotFound.
	Key(ctx context.Context, name string) (Key, error)
	// Keys returns every key, revoked and expired ones too, by name.
	Keys(ctx context.Context) ([]Key, error)
	// RevokeKey marks a key revoked; revoking a revoked key keeps the
	// first time. An unknown name is ErrKeyNotFound.
	RevokeKey(ctx context.Context, name string, at time.Time) error
}

// SQLKeyStore is a KeyStore over database/sql, using the tables of
// internal/db/migrations/*/0006_principals.sql. It also keeps the last use
// of every key (UsageStore).
type SQLKeyStore struct {
	db *sql.DB
	d  *db.DB
}

var (
	_ KeyStore   = (*SQLKeyStore)(nil)
	_ UsageStore = (*SQLKeyStore)(nil)
)

// NewSQLKeyStore returns a store over db; driver is "sqlite" or "postgres".
func NewSQLKeyStore(d *db.DB) (*SQLKeyStore, error) {
	if d == nil {
		return nil, fmt.Errorf("key store: no database")
	}
	return &SQLKeyStore{db: d.SQL(), d: d}, nil
}

// q rewrites ? placeholders to $n for Postgres.
func (s *SQLKeyStore) q(query string) string { return s.d.Rebind(query) }

const keyColumns = `name, sha256, owner, created_by, created_at, expires_at, revoked_at`

// CreateKey implements KeyStore.
func (s *SQLKeyStore) CreateKey(ctx context.Context, k Key) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING`),
		k.Name, k.SHA256, k.Owner, k.CreatedBy, ms(k.CreatedAt), ms(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("insert key %s: %w", k.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert key %s: %w", k.Name, err)
	} else if n == 0 {
		return ErrKeyExists
	}
	return nil
}

// KeyByHash implements KeyLookup.
func (s *SQLKeyStore) KeyByHash(ctx context.Context, sha string) (Key, error) {
	return scanKey(s.db.QueryRowContext(ctx, s.q(`SELECT `+keyColumns+` FROM api_keys WHERE sha256 = ?`), strings.ToLower(sha)))
}

// Key implements KeyStore.
func (s *SQLKeyStore) Key(ctx context.Context, name string) (Key, error) {
	return scanKey(s.db.QueryRowContext(ctx, s.q(`SELECT `+keyColumns+` FROM api_keys WHERE name = ?`), name))
}

// Keys implements KeyStore.
func (s *SQLKeyStore) Keys(ctx context.Context) ([]Key, error) {
	return s.keys(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY name`)
}

// KeysOf returns the keys owned or made by any of the principals (names in
// normal form), revoked ones too.
func (s *SQLKeyStore) KeysOf(ctx context.Context, principals []string) ([]Key, error) {
	if len(principals) == 0 {
		return nil, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(principals)), ", ")
	args := make([]any, 0, 2*len(principals))
	for _, p := range principals {
		args = append(args, p)
	}
	args = append(args, args...)
	return s.keys(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE owner IN (`+marks+`) OR created_by IN (`+marks+`) ORDER BY name`, args...)
}

// RevokedSince returns the names of the keys revoked at or after since.
func (s *SQLKeyStore) RevokedSince(ctx context.Context, since time.Time) ([]string, error) {
	ks, err := s.keys(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE revoked_at >= ? ORDER BY name`, ms(since))
	names := make([]string, 0, len(ks))
	for _, k := range ks {
		names = append(names, k.Name)
	}
	return names, err
}

func (s *SQLKeyStore) keys(ctx context.Context, query string, args ...any) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return out, nil
}

// RevokeKey implements KeyStore.
func (s *SQLKeyStore) RevokeKey(ctx context.Context, name string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`), ms(at), name); err != nil {
		return fmt.Errorf("revoke key %s: %w", name, err)
	}
	_, err := s.Key(ctx, name)
	return err
}

// TouchKeys implements UsageStore: it records each key's last use, never
// moving it back.
func (s *SQLKeyStore) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	for name, at := range used {
		if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO key_usage (name, last_used_at) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET last_used_at = excluded.last_used_at WHERE key_usage.last_used_at < excluded.last_used_at`),
			name, ms(at)); err != nil {
			return fmt.Errorf("record use of key %s: %w", name, err)
		}
	}
	return nil
}

// LastUsed returns the last recorded use of every key that was used.
func (s *SQLKeyStore) LastUsed(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, last_used_at FROM key_usage`)
	if err != nil {
		return nil, fmt.Errorf("read key use: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var name string
		var at int64
		if err := rows.Scan(&name, &at); err != nil {
			return nil, fmt.Errorf("read key use: %w", err)
		}
		out[name] = fromMS(at)
	}
	return out, rows.Err()
}

func scanKey(row interface{ Scan(...any) error }) (Key, error) {
	var (
		k                Key
		created, expires int64
		revoked          sql.NullInt64
	)
	if err := row.Scan(&k.Name, &k.SHA256, &k.Owner, &k.CreatedBy, &created, &expires, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Key{}, ErrKeyNotFound
		}
		return Key{}, fmt.Errorf("read key: %w", err)
	}
	k.CreatedAt, k.ExpiresAt = fromMS(created), fromMS(expires)
	if revoked.Valid {
		k.RevokedAt = fromMS(revoked.Int64)
	}
	return k, nil
}
