package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// GrantTokenPrefix starts every grant token.
const GrantTokenPrefix = "tg_"

// GraphInfo is what minting a grant needs to know about the configured
// graphs. The policy engine implements it.
type GraphInfo interface {
	// MayActAs reports whether p is one of the graph's principals.
	MayActAs(p broker.Principal, graph string) bool
	// HasNode reports whether the graph declares the node path.
	HasNode(graph, node string) bool
	// ValidateScope checks a scope against the graph's scope_schema. Its
	// error message names the offending field and is shown to the caller.
	ValidateScope(graph string, scope map[string]any) error
}

// GrantsConfig configures the grant service.
type GrantsConfig struct {
	Store  GrantStore
	Graphs GraphInfo
	// MaxTTL caps a grant's lifetime: a longer TTL is shortened to MaxTTL
	// (the result's ExpiresAt says so). 8h when zero.
	MaxTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Recorder receives a grant_minted event for every grant and a
	// grant_revoked event for every revocation. When it cannot record a
	// mint, the grant is revoked and the mint refused (fail closed). Nil
	// records nothing (tests of the service alone).
	Recorder broker.Recorder
	// Logger receives failures that cannot be returned; nil means
	// zap.NewNop().
	Logger *zap.Logger
}

// Validate checks the config.
func (c GrantsConfig) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("grants: a store is required")
	}
	if c.Graphs == nil {
		return fmt.Errorf("grants: graph information is required")
	}
	if c.MaxTTL < 0 {
		return fmt.Errorf("grants: max ttl must not be negative")
	}
	return nil
}

// Grants mints, reads and revokes JIT grants for the principals of a graph.
type Grants struct {
	store  GrantStore
	graphs GraphInfo
	maxTTL time.Duration
	now    func() time.Time
	rec    broker.Recorder
	log    *zap.Logger
}

// DefaultMaxGrantTTL is the MaxTTL used when GrantsConfig.MaxTTL is zero.
const DefaultMaxGrantTTL = 8 * time.Hour

// NewGrants returns the grant service for a valid config.
func NewGrants(cfg GrantsConfig) (*Grants, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Grants{store: cfg.Store, graphs: cfg.Graphs, maxTTL: cfg.MaxTTL, now: cfg.Now, rec: cfg.Recorder, log: cfg.Logger}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	if g.maxTTL == 0 {
		g.maxTTL = DefaultMaxGrantTTL
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// MintRequest asks for a grant (POST /v1/grants).
type MintRequest struct {
	Graph    string
	RunID    string
	ThreadID string
	// Nodes are node paths such as "triage" or "supervisor/research".
	Nodes []string
	// TTL is the requested lifetime; it must be positive and is capped at
	// the configured MaxTTL.
	TTL   time.Duration
	Scope map[string]any
}

// MintResult is a minted grant. Tokens maps each node to its grant token;
// it is the only time the tokens exist in the clear.
type MintResult struct {
	GrantID   string
	ExpiresAt time.Time
	Tokens    map[string]string
}

// Mint creates a grant with one token per node. It refuses, storing
// nothing, when p is not a principal of the graph (forbidden), when p is
// itself a grant, or when the run, a node, the TTL or the scope is invalid
// (invalid_arguments).
func (s *Grants) Mint(ctx context.Context, p broker.Principal, req MintRequest) (MintResult, error) {
	if err := s.mayManage(p, req.Graph); err != nil {
		return MintResult{}, err
	}
	if strings.TrimSpace(req.RunID) == "" {
		return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "run_id", Message: "run_id is required: a grant is bound to one run"}
	}
	if len(req.Nodes) == 0 {
		return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "nodes", Message: "nodes must list at least one node of the graph"}
	}
	nodes := make([]string, 0, len(req.Nodes))
	seen := map[string]bool{}
	for i, n := range req.Nodes {
		n = strings.Trim(strings.TrimSpace(n), "/")
		field := fmt.Sprintf("nodes[%d]", i)
		if seen[n] {
			return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: field, Message: fmt.Sprintf("node %q is listed twice", n)}
		}
		if n == "" || !s.graphs.HasNode(req.Graph, n) {
			return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: field, Message: fmt.Sprintf("graph %q has no node %q", req.Graph, n)}
		}
		seen[n] = true
		nodes = append(nodes, n)
	}
	if req.TTL <= 0 {
		return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "ttl", Message: "ttl must be a positive duration, e.g. \"15m\""}
	}
	ttl := min(req.TTL, s.maxTTL)
	scope := req.Scope
	if scope == nil {
		scope = map[string]any{}
	}
	if err := s.graphs.ValidateScope(req.Graph, scope); err != nil {
		var be *broker.Error
		if errors.As(err, &be) {
			if be.Code != broker.CodeInvalidArguments {
				be = &broker.Error{Code: broker.CodeInvalidArguments, Field: be.Field, Message: be.Message, Cause: be}
			}
			return MintResult{}, be
		}
		return MintResult{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope", Message: "scope is invalid: " + err.Error(), Cause: err}
	}
	id, err := newID("gr_")
	if err != nil {
		return MintResult{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	g := Grant{ID: id, Graph: req.Graph, Run: req.RunID, Thread: req.ThreadID, Nodes: nodes, Scope: scope,
		CreatedBy: p.Subject, Minter: p, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	g.Minter = minterOf(g)
	tokens := make(map[string]string, len(nodes))
	hashes := make(map[string]string, len(nodes))
	for _, n := range nodes {
		tok, err := NewToken(GrantTokenPrefix)
		if err != nil {
			return MintResult{}, err
		}
		tokens[n], hashes[n] = tok, HashKey(tok)
	}
	if err := s.store.Create(ctx, g, hashes); err != nil {
		return MintResult{}, broker.Wrap(broker.CodeUnavailable, err, "the grant could not be stored; no grant was created")
	}
	if err := s.record(ctx, broker.EventGrantMinted, p, g); err != nil {
		// Fail closed: a grant nobody can audit is revoked before any of
		// its tokens leaves this function.
		if rerr := s.store.Revoke(context.WithoutCancel(ctx), id, s.now().UTC()); rerr != nil {
			s.log.Error("unrecorded grant could not be revoked", zap.String("grant", id), zap.Error(rerr))
		}
		return MintResult{}, broker.Wrap(broker.CodeAuditUnavailable, err, "the audit store is unavailable, so no grant was minted; retry later")
	}
	return MintResult{GrantID: id, ExpiresAt: g.ExpiresAt, Tokens: tokens}, nil
}

// Get returns a grant to a principal of its graph. A grant of another graph
// is reported not found, so grant ids do not reveal other graphs.
func (s *Grants) Get(ctx context.Context, p broker.Principal, id string) (Grant, error) {
	g, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrGrantNotFound) {
		return Grant{}, broker.Errorf(broker.CodeNotFound, "grant %q was not found", id)
	}
	if err != nil {
		return Grant{}, broker.Wrap(broker.CodeUnavailable, err, "the grant store could not be read")
	}
	if p.Method == broker.AuthGrant || !s.graphs.MayActAs(p, g.Graph) {
		return Grant{}, broker.Errorf(broker.CodeNotFound, "grant %q was not found", id)
	}
	return g, nil
}

// Revoke revokes a grant for a principal of its graph; its tokens stop
// working on the next call. Revoking a revoked grant succeeds.
func (s *Grants) Revoke(ctx context.Context, p broker.Principal, id string) error {
	g, err := s.Get(ctx, p, id)
	if err != nil {
		return err
	}
	if err := s.store.Revoke(ctx, id, s.now().UTC()); err != nil {
		return broker.Wrap(broker.CodeUnavailable, err, "the grant could not be revoked; try again")
	}
	if err := s.record(ctx, broker.EventGrantRevoked, p, g); err != nil {
		return broker.Wrap(broker.CodeAuditUnavailable, err, "the grant was revoked but the audit store is unavailable; revoke it again to record it")
	}
	return nil
}

// GrantFilter selects grants for List. Graph is required; Run is optional.
type GrantFilter struct {
	Graph string
	Run   string
	// Limit caps the answer; 100 when zero.
	Limit int
}

// GrantLister is the optional GrantStore ability to list grants, newest
// first. SQLGrantStore has it.
type GrantLister interface {
	List(ctx context.Context, f GrantFilter) ([]Grant, error)
}

// List returns the grants of a graph (optionally of one run), newest first,
// to a principal of that graph. Grant tokens cannot list.
func (s *Grants) List(ctx context.Context, p broker.Principal, f GrantFilter) ([]Grant, error) {
	if f.Graph == "" {
		return nil, &broker.Error{Code: broker.CodeInvalidArguments, Field: "graph", Message: "graph is required to list grants, e.g. ?graph=support-bot"}
	}
	if err := s.mayManage(p, f.Graph); err != nil {
		return nil, err
	}
	l, ok := s.store.(GrantLister)
	if !ok {
		return nil, broker.Errorf(broker.CodeUnavailable, "this grant store cannot list grants")
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	gs, err := l.List(ctx, f)
	if err != nil {
		return nil, broker.Wrap(broker.CodeUnavailable, err, "the grant store could not be read")
	}
	return gs, nil
}

// record writes a grant event; the scope is summarized by its keys and the
// SHA-256 of its JSON, so the audit trail can match a grant without holding
// the scope values.
func (s *Grants) record(ctx context.Context, kind broker.EventKind, p broker.Principal, g Grant) error {
	if s.rec == nil {
		return nil
	}
	keys := make([]string, 0, len(g.Scope))
	for k := range g.Scope {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	scopeJSON, err := json.Marshal(g.Scope)
	if err != nil {
		return fmt.Errorf("encode scope of grant %s: %w", g.ID, err)
	}
	sum := sha256.Sum256(scopeJSON)
	return s.rec.Record(ctx, broker.Event{
		Kind: kind, Time: s.now().UTC(), Principal: p.Subject, AuthMethod: string(p.Method), TokenID: p.TokenID,
		Graph: g.Graph, Run: g.Run, Thread: g.Thread, Status: broker.StatusOK,
		Detail: grantDetail(g, keys, hex.EncodeToString(sum[:])),
	})
}

func grantDetail(g Grant, scopeKeys []string, scopeSum string) map[string]any {
	d := map[string]any{
		"grant_id": g.ID, "nodes": g.Nodes, "expires_at": g.ExpiresAt.Format(time.RFC3339Nano),
		"scope_keys": scopeKeys, "scope_sha256": scopeSum,
	}
	if g.RevokedReason != "" {
		d["reason"] = g.RevokedReason
		d["minter"] = g.Minter.Subject
	}
	return d
}

func (s *Grants) mayManage(p broker.Principal, graph string) error {
	if p.Method == broker.AuthGrant {
		return broker.Errorf(broker.CodeForbidden, "a grant token cannot mint grants; use the graph's own credential")
	}
	if graph == "" {
		return &broker.Error{Code: broker.CodeInvalidArguments, Field: "graph", Message: "graph is required"}
	}
	if p.Subject == "" || !s.graphs.MayActAs(p, graph) {
		return broker.Errorf(broker.CodeForbidden, "principal %s is not a principal of graph %q and may not mint its grants", p.Subject, graph)
	}
	return nil
}

// authenticateGrant verifies a tg_ token against the store.
func (a *Authenticator) authenticateGrant(ctx context.Context, token string) (broker.Principal, *broker.Binding, error) {
	if a.grants == nil {
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "grant tokens are not accepted by this server")
	}
	g, node, err := a.grants.Lookup(ctx, HashKey(token))
	if errors.Is(err, ErrGrantNotFound) {
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the grant token is not valid")
	}
	if err != nil {
		a.log.Error("grant store lookup failed", zap.Error(err))
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the grant token could not be checked (grant store unavailable); try again")
	}
	if !g.RevokedAt.IsZero() {
		if g.RevokedReason == RevokedOwnerDisabled {
			return broker.Principal{}, nil, broker.Errorf(broker.CodeOwnerDisabled, "grant %s was revoked because %s, who minted it, was disabled", g.ID, g.Minter.Subject)
		}
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the grant token was revoked")
	}
	if !a.now().Before(g.ExpiresAt) {
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the grant token has expired")
	}
	minter := g.Minter
	p := broker.Principal{Subject: "grant:" + g.ID, Method: broker.AuthGrant, TokenID: g.ID, Minter: &minter}
	return p, &broker.Binding{GrantID: g.ID, Graph: g.Graph, Node: node, Run: g.Run, Thread: g.Thread, Scope: g.Scope, ExpiresAt: g.ExpiresAt}, nil
}
