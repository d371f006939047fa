package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// GrantSuspender is the optional GrantStore ability that offboarding
// needs: list the live grants and revoke one with a reason. SQLGrantStore
// has it.
type GrantSuspender interface {
	// LiveGrants returns the grants neither revoked nor expired at now.
	LiveGrants(ctx context.Context, now time.Time) ([]Grant, error)
	// RevokeWithReason revokes a live grant; changed is false when it was
	// revoked already (another instance came first).
	RevokeWithReason(ctx context.Context, id string, at time.Time, reason string) (changed bool, err error)
}

var _ GrantSuspender = (*SQLGrantStore)(nil)

// LiveGrants implements GrantSuspender.
func (s *SQLGrantStore) LiveGrants(ctx context.Context, now time.Time) ([]Grant, error) {
	return s.grants(ctx, `SELECT `+grantColumns+` FROM grants g WHERE g.revoked_at IS NULL AND g.expires_at > ? ORDER BY g.created_at, g.id`, ms(now))
}

// RevokeWithReason implements GrantSuspender.
func (s *SQLGrantStore) RevokeWithReason(ctx context.Context, id string, at time.Time, reason string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE grants SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL`), ms(at), reason, id)
	if err != nil {
		return false, fmt.Errorf("revoke grant %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RevokeMintedBy revokes, for good, every live grant whose minter
// suspended reports true (offboarding: the principal that minted it, or
// the owner of the key that did, was disabled), and records grant_revoked
// with reason owner_disabled for each. by is who disabled the principal.
// It returns the ids it revoked; several instances may run it at once, and
// each grant is revoked and recorded once.
func (s *Grants) RevokeMintedBy(ctx context.Context, by broker.Principal, suspended func(minter broker.Principal) bool) ([]string, error) {
	gs, ok := s.store.(GrantSuspender)
	if !ok {
		return nil, fmt.Errorf("grant store cannot revoke grants for offboarding")
	}
	now := s.now().UTC()
	live, err := gs.LiveGrants(ctx, now)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, g := range live {
		if !suspended(g.Minter) {
			continue
		}
		changed, err := gs.RevokeWithReason(ctx, g.ID, now, RevokedOwnerDisabled)
		if err != nil {
			return ids, err
		}
		if !changed {
			continue
		}
		ids = append(ids, g.ID)
		g.RevokedReason = RevokedOwnerDisabled
		if err := s.record(ctx, broker.EventGrantRevoked, by, g); err != nil {
			return ids, fmt.Errorf("record revocation of grant %s: %w", g.ID, err)
		}
	}
	return ids, nil
}
