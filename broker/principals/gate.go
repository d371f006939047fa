package principals

import (
	"context"
	"sync"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// Gate wraps the Authenticator so that broker.Identify refuses every caller
// whose authority is suspended (broker.Admitter), and records each such
// refusal as access_refused. A credential refused over and over is
// recorded at most once a second, with the count of refusals in between,
// so a suspended agent retrying in a loop cannot flood the audit store.
type Gate struct {
	auth broker.Authenticator
	svc  *Service

	mu   sync.Mutex
	seen map[string]*refusals
}

type refusals struct {
	last       time.Time
	suppressed int
}

var (
	_ broker.Authenticator = (*Gate)(nil)
	_ broker.Admitter      = (*Gate)(nil)
)

// NewGate returns auth with svc's checks.
func NewGate(auth broker.Authenticator, svc *Service) *Gate {
	return &Gate{auth: auth, svc: svc, seen: map[string]*refusals{}}
}

// Authenticate implements broker.Authenticator; an owner_disabled refusal
// (a grant revoked by offboarding) is recorded.
func (g *Gate) Authenticate(ctx context.Context, token string) (broker.Principal, *broker.Binding, error) {
	p, b, err := g.auth.Authenticate(ctx, token)
	if broker.CodeOf(err) == broker.CodeOwnerDisabled {
		e, _ := broker.AsError(err)
		g.refused(ctx, broker.Caller{}, e)
	}
	return p, b, err
}

// Admit implements broker.Admitter.
func (g *Gate) Admit(ctx context.Context, c broker.Caller) error {
	err := g.svc.Check(c)
	if err == nil {
		return nil
	}
	e, _ := broker.AsError(err)
	if e.Code == broker.CodeOwnerDisabled {
		g.refused(ctx, c, e)
	}
	return err
}

// refused records a refusal, at most once a second per credential.
func (g *Gate) refused(ctx context.Context, c broker.Caller, e *broker.Error) {
	key := c.Principal.TokenID + "\x00" + c.Principal.Subject + "\x00" + e.Message
	now := time.Now()
	g.mu.Lock()
	r := g.seen[key]
	if r != nil && now.Sub(r.last) < time.Second {
		r.suppressed++
		g.mu.Unlock()
		return
	}
	if len(g.seen) > 10000 {
		g.seen = map[string]*refusals{}
	}
	suppressed := 0
	if r != nil {
		suppressed = r.suppressed
	}
	g.seen[key] = &refusals{last: now}
	g.mu.Unlock()
	ev := broker.Event{Kind: broker.EventAccessRefused, Principal: c.Principal.Subject, AuthMethod: string(c.Principal.Method),
		TokenID: c.Principal.TokenID, Graph: c.Graph, Node: c.Node, Run: c.Run, Thread: c.Thread,
		Status: broker.StatusDenied, ErrorCode: string(e.Code), Error: e.Message}
	if suppressed > 0 {
		ev.Detail = map[string]any{"refused_since_last_record": suppressed}
	}
	_ = g.svc.record(ctx, ev)
}
