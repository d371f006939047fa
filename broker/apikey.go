package broker

import "time"

// KeyInfo describes an API key, never the key itself: what the key
// service lists and the doors show.
type KeyInfo struct {
	Name string `json:"name"`
	// Source is "config" (auth.api_keys) or "api" (made at run time).
	Source    string     `json:"source"`
	Owner     string     `json:"owner,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	LastUsed  *time.Time `json:"last_used_at,omitempty"`
	// Status is "active", "expired", "revoked" or "suspended" (its owner
	// or creator is disabled).
	Status string `json:"status"`
}
