package auth

import (
	"context"
	"errors"
	"time"
)

// GrantLive reports whether a grant exists and whether it is live (neither
// revoked nor expired) at now. The passthrough role sweeper asks it
// (connectors/pgroles), so a revoked grant's database role is retired.
func (s *SQLGrantStore) GrantLive(ctx context.Context, id string, now time.Time) (found, live bool, err error) {
	g, err := s.Get(ctx, id)
	if errors.Is(err, ErrGrantNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, g.RevokedAt.IsZero() && now.Before(g.ExpiresAt), nil
}
