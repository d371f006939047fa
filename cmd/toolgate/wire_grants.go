package main

import (
	"context"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	bhttp "github.com/toolgate/toolgate/broker/httpapi"
)

// grantService adapts auth.Grants to the grants API, which may not import
// broker/auth; now tells a grant's status.
type grantService struct {
	g   *auth.Grants
	now func() time.Time
}

var (
	_ bhttp.GrantService = grantService{}
	_ bhttp.GrantLister  = grantService{}
)

func (s grantService) MintGrant(ctx context.Context, p broker.Principal, req bhttp.GrantRequest) (bhttp.MintedGrant, error) {
	res, err := s.g.Mint(ctx, p, auth.MintRequest{Graph: req.Graph, RunID: req.RunID, ThreadID: req.ThreadID, Nodes: req.Nodes, TTL: req.TTL, Scope: req.Scope})
	if err != nil {
		return bhttp.MintedGrant{}, err
	}
	return bhttp.MintedGrant{GrantID: res.GrantID, ExpiresAt: res.ExpiresAt, Tokens: res.Tokens}, nil
}

func (s grantService) Grant(ctx context.Context, p broker.Principal, id string) (bhttp.GrantInfo, error) {
	g, err := s.g.Get(ctx, p, id)
	if err != nil {
		return bhttp.GrantInfo{}, err
	}
	return grantInfo(g, s.now()), nil
}

func (s grantService) RevokeGrant(ctx context.Context, p broker.Principal, id string) error {
	return s.g.Revoke(ctx, p, id)
}

func (s grantService) Grants(ctx context.Context, p broker.Principal, graph, run string) ([]bhttp.GrantInfo, error) {
	gs, err := s.g.List(ctx, p, auth.GrantFilter{Graph: graph, Run: run})
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]bhttp.GrantInfo, 0, len(gs))
	for _, g := range gs {
		out = append(out, grantInfo(g, now))
	}
	return out, nil
}

func grantInfo(g auth.Grant, now time.Time) bhttp.GrantInfo {
	info := bhttp.GrantInfo{ID: g.ID, Graph: g.Graph, Run: g.Run, Thread: g.Thread, Nodes: g.Nodes, Scope: g.Scope,
		CreatedBy: g.CreatedBy, CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt, Status: "active"}
	switch {
	case !g.RevokedAt.IsZero():
		at := g.RevokedAt
		info.RevokedAt, info.Status = &at, "revoked"
	case !now.Before(g.ExpiresAt):
		info.Status = "expired"
	}
	if info.Scope == nil {
		info.Scope = map[string]any{}
	}
	return info
}
