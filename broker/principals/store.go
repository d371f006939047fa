package principals

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/toolgate/toolgate/internal/db"
)

// State is one principal's row: disabled while either flag is set.
type State struct {
	Principal     string    `json:"principal"`
	AdminDisabled bool      `json:"admin_disabled"`
	SCIMDisabled  bool      `json:"scim_disabled"`
	SCIMID        string    `json:"scim_id,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	ChangedBy     string    `json:"changed_by,omitempty"`
	ChangedAt     time.Time `json:"changed_at"`
}

// Disabled reports whether the principal is disabled.
func (s State) Disabled() bool { return s.AdminDisabled || s.SCIMDisabled }

// SCIMUser is a user provisioned by an identity provider over SCIM.
type SCIMUser struct {
	ID          string
	UserName    string
	ExternalID  string
	DisplayName string
	Emails      []string
	// Principals are the principal names (normal form) the user maps to.
	Principals []string
	Active     bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Store keeps principal states and SCIM users in SQLite or Postgres (the
// tables of migration 0006_principals).
type Store struct {
	db *sql.DB
	d  *db.DB
}

// Errors of the Store.
var (
	ErrUserNotFound = errors.New("scim user not found")
	ErrUserExists   = errors.New("a scim user with this userName exists")
)

// NewStore returns a Store over d.
func NewStore(d *db.DB) (*Store, error) {
	if d == nil {
		return nil, errors.New("principals store: no database")
	}
	return &Store{db: d.SQL(), d: d}, nil
}

// q rewrites ? placeholders to $n for Postgres.
func (s *Store) q(query string) string { return s.d.Rebind(query) }

const stateColumns = `principal, admin_disabled, scim_disabled, scim_id, reason, changed_by, changed_at`

// States returns every principal that is or was disabled, by name.
func (s *Store) States(ctx context.Context) ([]State, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+stateColumns+` FROM principal_states ORDER BY principal`)
	if err != nil {
		return nil, fmt.Errorf("read principal states: %w", err)
	}
	defer rows.Close()
	var out []State
	for rows.Next() {
		var st State
		var at int64
		if err := rows.Scan(&st.Principal, &st.AdminDisabled, &st.SCIMDisabled, &st.SCIMID, &st.Reason, &st.ChangedBy, &at); err != nil {
			return nil, fmt.Errorf("read principal states: %w", err)
		}
		st.ChangedAt = time.UnixMilli(at).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

// stateFlag names a column of principal_states that disables.
type stateFlag string

const (
	adminFlag stateFlag = "admin_disabled"
	scimFlag  stateFlag = "scim_disabled"
)

// set sets one flag of each principal and returns the principals whose
// effective state (disabled or not) changed. It runs in one transaction.
func (s *Store) set(ctx context.Context, f stateFlag, principals []string, on bool, scimID, reason, by string, at time.Time) (changed []string, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("set principal state: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, p := range principals {
		var admin, scim bool
		lock := ""
		if s.d.Driver() == db.DriverPostgres {
			lock = " FOR UPDATE"
		}
		err := tx.QueryRowContext(ctx, s.q(`SELECT admin_disabled, scim_disabled FROM principal_states WHERE principal = ?`+lock), p).Scan(&admin, &scim)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read state of %s: %w", p, err)
		}
		was := admin || scim
		if f == adminFlag {
			admin = on
		} else {
			scim = on
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO principal_states (`+stateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (principal) DO UPDATE SET admin_disabled = excluded.admin_disabled, scim_disabled = excluded.scim_disabled,
			scim_id = CASE WHEN excluded.scim_id = '' THEN principal_states.scim_id ELSE excluded.scim_id END,
			reason = excluded.reason, changed_by = excluded.changed_by, changed_at = excluded.changed_at`),
			p, admin, scim, scimID, reason, by, at.UnixMilli()); err != nil {
			return nil, fmt.Errorf("set state of %s: %w", p, err)
		}
		if was != (admin || scim) {
			changed = append(changed, p)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("set principal state: %w", err)
	}
	return changed, nil
}

const userColumns = `id, user_name, external_id, display_name, emails, principals, active, created_at, updated_at`

// CreateUser stores a new SCIM user; ErrUserExists when its userName is
// taken.
func (s *Store) CreateUser(ctx context.Context, u SCIMUser) error {
	emails, _ := json.Marshal(nonNil(u.Emails))
	ps, _ := json.Marshal(nonNil(u.Principals))
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO scim_users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		u.ID, u.UserName, u.ExternalID, u.DisplayName, string(emails), string(ps), u.Active, u.CreatedAt.UnixMilli(), u.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert scim user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrUserExists
	}
	return nil
}

// UpdateUser replaces a SCIM user's attributes; ErrUserNotFound for an
// unknown id, ErrUserExists when the new userName is another user's.
func (s *Store) UpdateUser(ctx context.Context, u SCIMUser) error {
	if other, err := s.UserBy(ctx, "user_name", u.UserName); err == nil && len(other) > 0 && other[0].ID != u.ID {
		return ErrUserExists
	}
	emails, _ := json.Marshal(nonNil(u.Emails))
	ps, _ := json.Marshal(nonNil(u.Principals))
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE scim_users SET user_name = ?, external_id = ?, display_name = ?, emails = ?, principals = ?, active = ?, updated_at = ? WHERE id = ?`),
		u.UserName, u.ExternalID, u.DisplayName, string(emails), string(ps), u.Active, u.UpdatedAt.UnixMilli(), u.ID)
	if err != nil {
		return fmt.Errorf("update scim user %s: %w", u.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrUserNotFound
	}
	return nil
}

// DeleteUser removes a SCIM user; ErrUserNotFound for an unknown id.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM scim_users WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete scim user %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrUserNotFound
	}
	return nil
}

// User returns a SCIM user by id, or ErrUserNotFound.
func (s *Store) User(ctx context.Context, id string) (SCIMUser, error) {
	us, err := s.UserBy(ctx, "id", id)
	if err != nil {
		return SCIMUser{}, err
	}
	if len(us) == 0 {
		return SCIMUser{}, ErrUserNotFound
	}
	return us[0], nil
}

// UserBy returns the users whose column (id, user_name or external_id)
// equals value; user_name compares case-insensitively, as SCIM says.
func (s *Store) UserBy(ctx context.Context, column, value string) ([]SCIMUser, error) {
	where := map[string]string{"id": "id = ?", "user_name": "lower(user_name) = lower(?)", "external_id": "external_id = ?"}[column]
	if where == "" {
		return nil, fmt.Errorf("scim users: no column %q", column)
	}
	return s.users(ctx, `SELECT `+userColumns+` FROM scim_users WHERE `+where+` ORDER BY created_at, id`, value)
}

// Users returns up to limit users from offset (0-based), oldest first, and
// how many there are.
func (s *Store) Users(ctx context.Context, offset, limit int) ([]SCIMUser, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM scim_users`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count scim users: %w", err)
	}
	us, err := s.users(ctx, `SELECT `+userColumns+` FROM scim_users ORDER BY created_at, id LIMIT ? OFFSET ?`, limit, offset)
	return us, total, err
}

func (s *Store) users(ctx context.Context, query string, args ...any) ([]SCIMUser, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read scim users: %w", err)
	}
	defer rows.Close()
	var out []SCIMUser
	for rows.Next() {
		var u SCIMUser
		var emails, ps string
		var created, updated int64
		if err := rows.Scan(&u.ID, &u.UserName, &u.ExternalID, &u.DisplayName, &emails, &ps, &u.Active, &created, &updated); err != nil {
			return nil, fmt.Errorf("read scim users: %w", err)
		}
		if err := json.Unmarshal([]byte(emails), &u.Emails); err != nil {
			return nil, fmt.Errorf("scim user %s: emails: %w", u.ID, err)
		}
		if err := json.Unmarshal([]byte(ps), &u.Principals); err != nil {
			return nil, fmt.Errorf("scim user %s: principals: %w", u.ID, err)
		}
		u.CreatedAt, u.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
