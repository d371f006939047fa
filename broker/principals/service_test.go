package principals

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
)

func openDB(t *testing.T) *db.DB { return dbtest.SQLite(t) }

// keysOf is a KeyDirectory over a literal table: key principal → owner.
type keysOf map[string]string

func (k keysOf) KeysOf(_ context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	for key, owner := range k {
		if slices.Contains(names, owner) {
			out[key] = owner
		}
	}
	return out, nil
}

// sessions is a SessionCloser over a literal list of open callers.
type sessions struct {
	mu     sync.Mutex
	open   []broker.Caller
	closed []string
}

func (s *sessions) CloseSessions(refuse func(broker.Caller) error) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.open[:0]
	n := 0
	for _, c := range s.open {
		if err := refuse(c); err != nil {
			s.closed = append(s.closed, c.Principal.Subject+": "+err.Error())
			n++
			continue
		}
		kept = append(kept, c)
	}
	s.open = kept
	return n
}

// grantsOf revokes the grants of a literal list whose minter is suspended.
type grantsOf struct {
	mu      sync.Mutex
	minters map[string]broker.Principal // grant id → minter
	revoked []string
}

func (g *grantsOf) RevokeMintedBy(_ context.Context, _ broker.Principal, suspended func(broker.Principal) bool) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ids []string
	for id, m := range g.minters {
		if suspended(m) && !slices.Contains(g.revoked, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	g.revoked = append(g.revoked, ids...)
	return ids, nil
}

// approvalsOf refuses open requests by their requester names.
type approvalsOf struct{ open map[string][]string }

func (a *approvalsOf) RefuseSuspended(_ context.Context, why func([]string) string) (int, error) {
	n := 0
	for id, names := range a.open {
		if why(names) != "" {
			delete(a.open, id)
			n++
		}
	}
	return n, nil
}

type env struct {
	svc       *Service
	rec       *brokertest.Recorder
	sessions  *sessions
	grants    *grantsOf
	approvals *approvalsOf
}

var (
	adminP = broker.Principal{Subject: "key:admin", Method: broker.AuthAPIKey, TokenID: "key:admin"}
	ana    = broker.Principal{Subject: "user:ana@example.com", Email: "ana@example.com", Method: broker.AuthOIDC}
	bob    = broker.Principal{Subject: "user:bob@example.com", Email: "bob@example.com", Method: broker.AuthOIDC}
	agent  = broker.Principal{Subject: "key:agent", Method: broker.AuthAPIKey, TokenID: "key:agent"}
)

func grantOf(id string, minter broker.Principal) broker.Principal {
	return broker.Principal{Subject: "grant:" + id, Method: broker.AuthGrant, TokenID: id, Minter: &minter}
}

func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	store, err := NewStore(d)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{rec: &brokertest.Recorder{}, sessions: &sessions{},
		grants:    &grantsOf{minters: map[string]broker.Principal{"gr_ana": ana, "gr_agent": agent, "gr_bob": bob}},
		approvals: &approvalsOf{open: map[string][]string{"ap_agent": {"key:agent"}, "ap_bob": {"user:bob@example.com"}}}}
	owners := map[string][]string{"solo": {"user:ana@example.com"}, "shared": {"user:ana@example.com", "user:bob@example.com"}}
	e.svc, err = New(Config{Store: store, Keys: keysOf{"key:agent": "user:ana@example.com", "key:sub-agent": "key:agent"},
		Grants: e.grants, Approvals: e.approvals, Recorder: e.rec, Admins: []string{"key:admin"},
		GraphOwners: func(g string) []string { return owners[g] }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.svc.AddCloser(e.sessions)
	return e
}

func caller(p broker.Principal, graph string) broker.Caller {
	return broker.Caller{Principal: p, Context: broker.Context{Graph: graph, Node: "triage"}}
}

// TestDisableSuspendsEverything: disabling a person refuses them, the keys
// they own (and keys those keys own), the grants they or their keys
// minted, a graph they alone own, closes their open sessions, revokes
// their grants and refuses their approval requests; enabling restores
// the keys but not the grants.
func TestDisableSuspendsEverything(t *testing.T) {
	e := newEnv(t, openDB(t))
	ctx := context.Background()
	e.sessions.open = []broker.Caller{caller(agent, "shared"), caller(grantOf("gr_ana", ana), "shared"), caller(bob, "shared"), caller(bob, "solo")}
	out, err := e.svc.Disable(ctx, adminP, "user:Ana@Example.com", "left the company")
	if err != nil {
		t.Fatal(err)
	}
	if !out.Changed || !slices.Equal(out.Keys, []string{"key:agent", "key:sub-agent"}) || !slices.Equal(out.Grants, []string{"gr_agent", "gr_ana"}) || out.Approvals != 1 {
		t.Fatalf("outcome: %+v", out)
	}
	for _, tc := range []struct {
		name string
		c    broker.Caller
		want string
	}{
		{"the person", caller(ana, ""), "principal user:ana@example.com is disabled"},
		{"their key", caller(agent, ""), "key:agent is suspended because user:ana@example.com"},
		{"a key their key owns", caller(broker.Principal{Subject: "key:sub-agent", Method: broker.AuthAPIKey}, ""), "key:sub-agent is suspended"},
		{"a grant they minted", caller(grantOf("gr_ana", ana), "shared"), "grant gr_ana was minted by user:ana@example.com"},
		{"a grant their key minted", caller(grantOf("gr_agent", agent), "shared"), "grant gr_agent was minted by key:agent"},
		{"a graph only they own", caller(bob, "solo"), `graph "solo" is suspended`},
	} {
		err := e.svc.Check(tc.c)
		if broker.CodeOf(err) != broker.CodeOwnerDisabled || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want owner_disabled with %q", tc.name, err, tc.want)
		}
	}
	for _, c := range []broker.Caller{caller(bob, "shared"), caller(grantOf("gr_bob", bob), "shared"), caller(bob, "")} {
		if err := e.svc.Check(c); err != nil {
			t.Errorf("%s in %q refused: %v", c.Principal.Subject, c.Graph, err)
		}
	}
	if len(e.sessions.closed) != 3 || len(e.sessions.open) != 1 || e.sessions.open[0].Graph != "shared" {
		t.Fatalf("sessions: closed %v, open %v", e.sessions.closed, e.sessions.open)
	}
	if evs := e.rec.OfKind(broker.EventPrincipalDisabled); len(evs) != 1 || evs[0].Detail["subject"] != "user:ana@example.com" || evs[0].Principal != "key:admin" || evs[0].Detail["reason"] != "left the company" {
		t.Fatalf("principal_disabled: %+v", evs)
	}
	if evs := e.rec.OfKind(broker.EventSessionsClosed); len(evs) != 1 || evs[0].Detail["sessions"] != 3 {
		t.Fatalf("sessions_closed: %+v", evs)
	}
	again, err := e.svc.Disable(ctx, adminP, "user:ana@example.com", "")
	if err != nil || again.Changed || len(e.rec.OfKind(broker.EventPrincipalDisabled)) != 1 {
		t.Fatalf("disabling again: %+v %v", again, err)
	}

	if _, err := e.svc.Enable(ctx, adminP, "user:ana@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []broker.Caller{caller(ana, "solo"), caller(agent, "")} {
		if err := e.svc.Check(c); err != nil {
			t.Errorf("after enable, %s refused: %v", c.Principal.Subject, err)
		}
	}
	if len(e.grants.revoked) != 2 || len(e.rec.OfKind(broker.EventPrincipalEnabled)) != 1 {
		t.Fatalf("after enable: revoked %v, events %v", e.grants.revoked, e.rec.OfKind(broker.EventPrincipalEnabled))
	}
}

// TestDisableRefusals: only admins, only principals that can be disabled;
// a refusal changes and records nothing.
func TestDisableRefusals(t *testing.T) {
	e := newEnv(t, openDB(t))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		by   broker.Principal
		p    string
		code broker.Code
	}{
		{"not an admin", bob, "user:ana@example.com", broker.CodeForbidden},
		{"a grant", grantOf("gr_x", adminP), "user:ana@example.com", broker.CodeForbidden},
		{"a group", adminP, "group:ops", broker.CodeInvalidArguments},
		{"a grant principal", adminP, "grant:gr_1", broker.CodeInvalidArguments},
		{"no kind", adminP, "ana", broker.CodeInvalidArguments},
	} {
		if _, err := e.svc.Disable(ctx, tc.by, tc.p, ""); broker.CodeOf(err) != tc.code {
			t.Errorf("disable %s: got %v, want %s", tc.name, err, tc.code)
		}
		if _, err := e.svc.Enable(ctx, tc.by, tc.p); broker.CodeOf(err) != tc.code {
			t.Errorf("enable %s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	if st, _ := e.svc.cfg.Store.States(ctx); len(st) != 0 || e.rec.Len() != 0 {
		t.Fatalf("refusals changed %v and recorded %d events", st, e.rec.Len())
	}
	if _, err := e.svc.States(ctx, bob); broker.CodeOf(err) != broker.CodeForbidden {
		t.Errorf("states for a non-admin: %v", err)
	}
}

// TestTwoInstancesOneStore: an instance sees another's change at its next
// read of the state, closes its own sessions then, and refuses the
// caller.
func TestTwoInstancesOneStore(t *testing.T) {
	db := openDB(t)
	a, b := newEnv(t, db), newEnv(t, db)
	b.sessions.open = []broker.Caller{caller(agent, "shared")}
	if _, err := a.svc.Disable(context.Background(), adminP, "user:ana@example.com", ""); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Check(caller(agent, "")); err != nil {
		t.Fatalf("b refused before reading the state (it has not read it yet): %v", err)
	}
	if err := b.svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Check(caller(agent, "")); broker.CodeOf(err) != broker.CodeOwnerDisabled {
		t.Fatalf("b after reading: %v", err)
	}
	if len(b.sessions.open) != 0 || len(b.sessions.closed) != 1 {
		t.Fatalf("b's sessions: %+v", b.sessions)
	}
}

// TestStaleStateFailsClosed: a snapshot older than MaxStale refuses every
// caller with unavailable, and none without a snapshot is admitted.
func TestStaleStateFailsClosed(t *testing.T) {
	store, err := NewStore(openDB(t))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: store, Keys: keysOf{}, MaxStale: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Check(caller(bob, "")); broker.CodeOf(err) != broker.CodeUnavailable {
		t.Fatalf("without a snapshot: %v", err)
	}
	if err := svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := svc.Check(caller(bob, "")); broker.CodeOf(err) != broker.CodeUnavailable {
		t.Fatalf("stale snapshot: %v", err)
	}
}

// TestGate: Identify's Admitter records each owner_disabled refusal, at
// most once a second per credential, with the count in between.
func TestGate(t *testing.T) {
	e := newEnv(t, openDB(t))
	g := NewGate(broker.AuthenticatorFunc(func(context.Context, string) (broker.Principal, *broker.Binding, error) {
		return agent, nil, nil
	}), e.svc)
	ctx := context.Background()
	if err := g.Admit(ctx, caller(agent, "shared")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Disable(ctx, adminP, "user:ana@example.com", ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		err := g.Admit(ctx, caller(agent, "shared"))
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodeOwnerDisabled {
			t.Fatalf("admit %d: %v", i, err)
		}
	}
	evs := e.rec.OfKind(broker.EventAccessRefused)
	if len(evs) != 1 || evs[0].Principal != "key:agent" || evs[0].ErrorCode != "owner_disabled" || evs[0].Graph != "shared" || evs[0].Status != broker.StatusDenied {
		t.Fatalf("access_refused: %+v", evs)
	}
}
