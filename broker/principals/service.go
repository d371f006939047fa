package principals

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// KeyDirectory says which API keys a principal owns or made, configured
// ones and ones made at run time.
type KeyDirectory interface {
	// KeysOf returns, for every key owned or made by any of principals
	// (normal form), the key's principal (key:<name>) and the one of
	// principals accountable for it.
	KeysOf(ctx context.Context, principals []string) (map[string]string, error)
}

// GrantRevoker revokes, for good, the live grants whose minter is
// suspended, and returns their ids.
type GrantRevoker interface {
	RevokeMintedBy(ctx context.Context, by broker.Principal, suspended func(minter broker.Principal) bool) ([]string, error)
}

// ApprovalRefuser refuses the open approval requests whose requester is
// suspended (why returns the reason, "" when a requester's names are not
// suspended) and returns how many.
type ApprovalRefuser interface {
	RefuseSuspended(ctx context.Context, why func(names []string) string) (int, error)
}

// SessionCloser ends the open sessions (MCP streams, passthrough
// connections) whose caller refuse refuses, and returns how many it ended.
// It must not block on the sessions it ends.
type SessionCloser interface {
	CloseSessions(refuse func(broker.Caller) error) int
}

// KeyRevocations lists the keys made at run time that were revoked since
// a time, so every instance closes their sessions.
type KeyRevocations interface {
	RevokedSince(ctx context.Context, since time.Time) ([]string, error)
}

// Config configures the Service.
type Config struct {
	Store *Store
	Keys  KeyDirectory
	// Grants, Approvals and Revoked may be nil (nothing of that kind is
	// suspended or watched).
	Grants    GrantRevoker
	Approvals ApprovalRefuser
	Revoked   KeyRevocations
	Recorder  broker.Recorder
	// GraphOwners returns the owners a graph declares (graphs.<g>.owners),
	// nil when none; a graph whose every owner is disabled is suspended.
	GraphOwners func(graph string) []string
	// Admins may disable and enable principals (auth.admins).
	Admins []string
	// Poll is how often the state is read again; 500ms when zero.
	Poll time.Duration
	// MaxStale is how old the state may be before every caller is refused
	// (fail closed); 10s when zero.
	MaxStale time.Duration
	// Now is the clock for records and expiry; time.Now when nil.
	Now    func() time.Time
	Logger *zap.Logger
}

// Service keeps the disabled principals and what they suspend.
type Service struct {
	cfg  Config
	snap atomic.Pointer[snapshot]

	mu       sync.Mutex // guards closers, keysSeen and refreshes
	closers  []SessionCloser
	keysSeen time.Time
}

// snapshot is the state as one poll read it.
type snapshot struct {
	// disabled maps each disabled principal to when it was disabled.
	disabled map[string]time.Time
	// keys maps each suspended key principal to the disabled principal
	// accountable for it (owner or creator).
	keys map[string]string
	// loaded is when it was read (monotonic clock).
	loaded time.Time
}

// New returns the Service. Call Refresh (or Run) before it admits anyone:
// without a snapshot every caller is refused.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("principals: a store and a key directory are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.GraphOwners == nil {
		cfg.GraphOwners = func(string) []string { return nil }
	}
	return &Service{cfg: cfg, keysSeen: cfg.Now()}, nil
}

// AddCloser registers a SessionCloser (the MCP front door, each passthrough
// listener).
func (s *Service) AddCloser(c SessionCloser) {
	s.mu.Lock()
	s.closers = append(s.closers, c)
	s.mu.Unlock()
}

// Disabled reports whether a principal (any spelling) is disabled in the
// current snapshot.
func (s *Service) Disabled(principal string) bool {
	snap := s.snap.Load()
	if snap == nil {
		return false
	}
	_, ok := snap.disabled[broker.PrincipalName(principal)]
	return ok
}

// Suspended reports whether a principal is disabled or is a key whose
// owner or creator is.
func (s *Service) Suspended(principal string) bool {
	snap := s.snap.Load()
	return snap != nil && snap.why(broker.PrincipalName(principal)) != ""
}

// why says why name is suspended, "" when it is not.
func (sn *snapshot) why(name string) string {
	if _, ok := sn.disabled[name]; ok {
		return fmt.Sprintf("principal %s is disabled", name)
	}
	if owner, ok := sn.keys[name]; ok {
		return fmt.Sprintf("%s is suspended because %s, its owner or creator, is disabled", name, owner)
	}
	return ""
}

// Check returns the owner_disabled refusal for a caller whose authority is
// suspended, unavailable when the state is too old to tell, nil otherwise.
func (s *Service) Check(c broker.Caller) error {
	snap := s.snap.Load()
	if snap == nil || time.Since(snap.loaded) > s.cfg.MaxStale {
		return broker.Errorf(broker.CodeUnavailable, "whether %s is disabled cannot be checked right now (the store does not answer); try again", c.Principal.Subject)
	}
	if len(snap.disabled) == 0 {
		return nil // nobody is disabled, so nothing is suspended
	}
	p := c.Principal
	for _, n := range personal(p) {
		if why := snap.why(n); why != "" {
			return broker.Errorf(broker.CodeOwnerDisabled, "%s; its credentials are suspended", why)
		}
	}
	if m := p.Minter; m != nil {
		for _, n := range personal(*m) {
			if why := snap.why(n); why != "" {
				return broker.Errorf(broker.CodeOwnerDisabled, "grant %s was minted by %s and %s; the grant is suspended", p.TokenID, m.Subject, why)
			}
		}
	}
	if c.Graph != "" {
		if owners := s.cfg.GraphOwners(c.Graph); len(owners) > 0 && snap.allSuspended(owners) {
			return broker.Errorf(broker.CodeOwnerDisabled, "graph %q is suspended: every owner of it (%s) is disabled", c.Graph, strings.Join(owners, ", "))
		}
	}
	return nil
}

func (sn *snapshot) allSuspended(names []string) bool {
	for _, n := range names {
		if sn.why(broker.PrincipalName(n)) == "" {
			return false
		}
	}
	return true
}

// personal are the names a principal answers to that can be disabled: its
// subject, verified email and OAuth client (never its groups).
func personal(p broker.Principal) []string {
	names := []string{p.Subject}
	if p.Email != "" {
		names = append(names, "user:"+p.Email)
	}
	if p.Client != "" {
		names = append(names, "client:"+p.Client)
	}
	return broker.PrincipalNames(names)
}
