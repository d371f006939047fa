package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// authenticateKey verifies a tgk_ key: a configured one, else one made at
// run time (read from the store on every use, so a revocation holds from
// the next request on every instance).
func (a *Authenticator) authenticateKey(ctx context.Context, token string) (broker.Principal, error) {
	sum := sha256.Sum256([]byte(token))
	now := a.now()
	if k, ok := a.keys[sum]; ok {
		if !k.Expires.IsZero() && !now.Before(k.Expires) {
			return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key has expired")
		}
		return a.keyPrincipal(k.Name, now), nil
	}
	if a.stored == nil {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key is not valid")
	}
	k, err := a.stored.KeyByHash(ctx, HashKey(token))
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key is not valid")
	case err != nil:
		a.log.Error("key store lookup failed", zap.Error(err))
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key could not be checked (key store unavailable); try again")
	case !k.RevokedAt.IsZero():
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key was revoked")
	case !now.Before(k.ExpiresAt):
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the API key has expired")
	}
	return a.keyPrincipal(k.Name, now), nil
}

func (a *Authenticator) keyPrincipal(name string, now time.Time) broker.Principal {
	a.usage.Touch(name, now)
	return broker.Principal{Subject: "key:" + name, Method: broker.AuthAPIKey, TokenID: "key:" + name}
}

// KeyNamePattern is what a key name may look like (as in auth.api_keys).
var KeyNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// DefaultMaxKeyTTL caps the lifetime of keys made at run time when
// KeysConfig.MaxTTL is zero (auth.keys.max_ttl).
const DefaultMaxKeyTTL = 90 * 24 * time.Hour

// KeysConfig configures the key service.
type KeysConfig struct {
	Store KeyStore
	// Configured are the keys of the config file: listed, never stored,
	// and their names cannot be taken.
	Configured []APIKey
	// Admins are the principals that may make, list and revoke keys
	// (auth.admins).
	Admins []string
	// MaxTTL caps a key's lifetime and is the lifetime of a key asked for
	// without one; DefaultMaxKeyTTL when zero.
	MaxTTL time.Duration
	// Disabled reports whether a principal (normal form) is disabled; a key
	// cannot be made for a disabled owner, and keys whose owner or creator
	// is disabled are listed as suspended. Nil: nobody is.
	Disabled func(principal string) bool
	// Usage reads the keys' last use; nil lists none.
	Usage func(ctx context.Context) (map[string]time.Time, error)
	// Recorder receives key_created and key_revoked; when it cannot record
	// a new key, the key is revoked and the request refused.
	Recorder broker.Recorder
	Now      func() time.Time
	Logger   *zap.Logger
}

// Keys makes, lists and revokes API keys for the admins.
type Keys struct {
	cfg KeysConfig
}

// NewKeys returns the key service.
func NewKeys(cfg KeysConfig) (*Keys, error) {
	if cfg.Store == nil {
		return nil, errors.New("keys: a store is required")
	}
	if cfg.MaxTTL < 0 {
		return nil, errors.New("keys: max ttl must not be negative")
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxKeyTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Disabled == nil {
		cfg.Disabled = func(string) bool { return false }
	}
	return &Keys{cfg: cfg}, nil
}

// IsAdmin reports whether p is one of admins. A grant token never is.
func IsAdmin(p broker.Principal, admins []string) bool {
	return p.Method != broker.AuthGrant && p.Subject != "" && broker.MatchPrincipal(p.Names(), admins)
}

func (s *Keys) mayManage(p broker.Principal) error {
	if !IsAdmin(p, s.cfg.Admins) {
		return broker.Errorf(broker.CodeForbidden, "principal %s is not an admin (auth.admins) and may not manage API keys", p.Subject)
	}
	return nil
}

// KeyRequest asks for a new key (POST /v1/keys).
type KeyRequest struct {
	Name  string
	Owner string
	// ExpiresIn is the requested lifetime; zero means the maximum.
	ExpiresIn time.Duration
}

// NewKey is a key just made: the only time the key exists in the clear.
type NewKey struct {
	Info broker.KeyInfo
	Key  string
}

// Create makes a key for an admin. Refusals store nothing.
func (s *Keys) Create(ctx context.Context, p broker.Principal, req KeyRequest) (NewKey, error) {
	if err := s.mayManage(p); err != nil {
		return NewKey{}, err
	}
	k, err := s.newKey(p, req)
	if err != nil {
		return NewKey{}, err
	}
	for _, c := range s.cfg.Configured {
		if c.Name == k.Name {
			return NewKey{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "name", Message: fmt.Sprintf("key %q is configured in auth.api_keys; pick another name", k.Name)}
		}
	}
	token, sha, err := NewAPIKey()
	if err != nil {
		return NewKey{}, err
	}
	k.SHA256 = sha
	switch err := s.cfg.Store.CreateKey(ctx, k); {
	case errors.Is(err, ErrKeyExists):
		return NewKey{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "name", Message: fmt.Sprintf("a key named %q exists or existed; key names are never reused", k.Name)}
	case err != nil:
		return NewKey{}, broker.Wrap(broker.CodeUnavailable, err, "the key could not be stored; no key was made")
	}
	if err := s.record(ctx, broker.EventKeyCreated, p, k); err != nil {
		if rerr := s.cfg.Store.RevokeKey(context.WithoutCancel(ctx), k.Name, s.cfg.Now().UTC()); rerr != nil {
			s.cfg.Logger.Error("unrecorded key could not be revoked", zap.String("key", k.Name), zap.Error(rerr))
		}
		return NewKey{}, broker.Wrap(broker.CodeAuditUnavailable, err, "the audit store is unavailable, so no key was made; retry later")
	}
	return NewKey{Info: s.storedInfo(k, nil), Key: token}, nil
}

// newKey checks a request and returns the key it asks for, without a hash.
func (s *Keys) newKey(p broker.Principal, req KeyRequest) (Key, error) {
	name := strings.TrimSpace(req.Name)
	if !KeyNamePattern.MatchString(name) {
		return Key{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "name", Message: "name must be 1-64 letters, digits, '_', '.' or '-'"}
	}
	owner := broker.PrincipalName(req.Owner)
	if why := OwnerProblem(owner); why != "" {
		return Key{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "owner", Message: why}
	}
	if s.cfg.Disabled(owner) {
		return Key{}, &broker.Error{Code: broker.CodeOwnerDisabled, Field: "owner", Message: fmt.Sprintf("owner %s is disabled; a key cannot be made for a disabled principal", owner)}
	}
	if req.ExpiresIn < 0 {
		return Key{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "expires_in", Message: "expires_in must be a positive duration, e.g. \"30d\""}
	}
	ttl := s.cfg.MaxTTL
	if req.ExpiresIn > 0 {
		ttl = min(req.ExpiresIn, ttl)
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	return Key{Name: name, Owner: owner, CreatedBy: broker.PrincipalName(p.Subject), CreatedAt: now, ExpiresAt: now.Add(ttl)}, nil
}

// OwnerProblem says why name cannot own a key or a graph, "" when it can:
// an owner is one accountable principal (user:, client:, key: or
// workload:), never a group or a grant.
func OwnerProblem(name string) string {
	kind, rest, ok := strings.Cut(name, ":")
	if !ok || strings.TrimSpace(rest) == "" {
		return fmt.Sprintf("owner %q must be a principal such as user:ana@example.com", name)
	}
	switch kind {
	case "user", "client", "key", "workload":
		return ""
	case "group":
		return fmt.Sprintf("owner %q is a group; an owner is one accountable principal (user:, client:, key: or workload:)", name)
	}
	return fmt.Sprintf("owner %q must be a user:, client:, key: or workload: principal", name)
}

// List returns every key, configured and made at run time, by name.
func (s *Keys) List(ctx context.Context, p broker.Principal) ([]broker.KeyInfo, error) {
	if err := s.mayManage(p); err != nil {
		return nil, err
	}
	stored, err := s.cfg.Store.Keys(ctx)
	if err != nil {
		return nil, broker.Wrap(broker.CodeUnavailable, err, "the key store could not be read")
	}
	var used map[string]time.Time
	if s.cfg.Usage != nil {
		if used, err = s.cfg.Usage(ctx); err != nil {
			return nil, broker.Wrap(broker.CodeUnavailable, err, "the key store could not be read")
		}
	}
	out := make([]broker.KeyInfo, 0, len(stored)+len(s.cfg.Configured))
	for _, c := range s.cfg.Configured {
		out = append(out, s.configuredInfo(c, used))
	}
	for _, k := range stored {
		out = append(out, s.storedInfo(k, used))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *Keys) configuredInfo(c APIKey, used map[string]time.Time) broker.KeyInfo {
	info := broker.KeyInfo{Name: c.Name, Source: "config", Owner: broker.PrincipalName(c.Owner), Status: "active", LastUsed: timePtr(used[c.Name])}
	info.ExpiresAt = timePtr(c.Expires)
	switch {
	case !c.Expires.IsZero() && !s.cfg.Now().Before(c.Expires):
		info.Status = "expired"
	case s.suspended("key:"+c.Name, info.Owner):
		info.Status = "suspended"
	}
	return info
}

func (s *Keys) storedInfo(k Key, used map[string]time.Time) broker.KeyInfo {
	info := broker.KeyInfo{Name: k.Name, Source: "api", Owner: k.Owner, CreatedBy: k.CreatedBy, Status: "active",
		CreatedAt: timePtr(k.CreatedAt), ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt), LastUsed: timePtr(used[k.Name])}
	switch {
	case !k.RevokedAt.IsZero():
		info.Status = "revoked"
	case !s.cfg.Now().Before(k.ExpiresAt):
		info.Status = "expired"
	case s.suspended("key:"+k.Name, k.Owner, k.CreatedBy):
		info.Status = "suspended"
	}
	return info
}

func (s *Keys) suspended(names ...string) bool {
	for _, n := range names {
		if n != "" && s.cfg.Disabled(n) {
			return true
		}
	}
	return false
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Revoke revokes a key made at run time: it stops working on the next
// request on every instance. Revoking a revoked key succeeds.
func (s *Keys) Revoke(ctx context.Context, p broker.Principal, name string) error {
	if err := s.mayManage(p); err != nil {
		return err
	}
	for _, c := range s.cfg.Configured {
		if c.Name == name {
			return broker.Errorf(broker.CodeInvalidRequest, "key %q is configured in auth.api_keys: remove it there and restart, or suspend it at once with POST /v1/principals/key:%s/disable", name, name)
		}
	}
	k, err := s.cfg.Store.Key(ctx, name)
	if errors.Is(err, ErrKeyNotFound) {
		return broker.Errorf(broker.CodeNotFound, "no API key named %q", name)
	} else if err != nil {
		return broker.Wrap(broker.CodeUnavailable, err, "the key store could not be read")
	}
	if err := s.cfg.Store.RevokeKey(ctx, name, s.cfg.Now().UTC()); err != nil {
		return broker.Wrap(broker.CodeUnavailable, err, "the key could not be revoked; try again")
	}
	if err := s.record(ctx, broker.EventKeyRevoked, p, k); err != nil {
		return broker.Wrap(broker.CodeAuditUnavailable, err, "the key was revoked but the audit store is unavailable; revoke it again to record it")
	}
	return nil
}

func (s *Keys) record(ctx context.Context, kind broker.EventKind, p broker.Principal, k Key) error {
	if s.cfg.Recorder == nil {
		return nil
	}
	detail := map[string]any{"key": "key:" + k.Name}
	if k.Owner != "" {
		detail["owner"] = k.Owner
	}
	if !k.ExpiresAt.IsZero() {
		detail["expires_at"] = k.ExpiresAt.Format(time.RFC3339Nano)
	}
	now := s.cfg.Now().UTC()
	return s.cfg.Recorder.Record(ctx, broker.Event{
		ID: broker.NewID("evt", now), Kind: kind, Time: now, Principal: p.Subject, AuthMethod: string(p.Method),
		TokenID: p.TokenID, Status: broker.StatusOK, Detail: detail,
	})
}
