package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	"github.com/toolgate/toolgate/internal/testenv"
)

// fakeGraphs is a GraphInfo over a literal table: graph → principals and
// nodes; scopes must hold an integer customer_id.
type fakeGraphs struct {
	principals map[string][]string
	nodes      map[string][]string
}

func (f fakeGraphs) MayActAs(p broker.Principal, graph string) bool {
	for _, want := range f.principals[graph] {
		for _, n := range p.Names() {
			if n == want {
				return true
			}
		}
	}
	return false
}

func (f fakeGraphs) HasNode(graph, node string) bool {
	for _, n := range f.nodes[graph] {
		if n == node {
			return true
		}
	}
	return false
}

func (f fakeGraphs) ValidateScope(graph string, scope map[string]any) error {
	for k, v := range scope {
		if k != "customer_id" {
			return &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope." + k, Message: fmt.Sprintf("scope.%s is not a property of the scope schema", k)}
		}
		if _, ok := v.(int); !ok {
			if f, ok := v.(float64); !ok || f != float64(int64(f)) {
				return fmt.Errorf("scope.customer_id must be an integer")
			}
		}
	}
	return nil
}

var testGraphs = fakeGraphs{
	principals: map[string][]string{"support-bot": {"key:support-bot", "group:operators"}, "other": {"key:other"}},
	nodes:      map[string][]string{"support-bot": {"triage", "refund", "supervisor/research"}, "other": {"x"}},
}

var (
	bot      = broker.Principal{Subject: "key:support-bot", Method: broker.AuthAPIKey}
	operator = broker.Principal{Subject: "user:op@example.com", Groups: []string{"operators"}, Method: broker.AuthOIDC}
	stranger = broker.Principal{Subject: "key:other", Method: broker.AuthAPIKey}
)

// openSQLite opens a real SQLite file with the grants migration applied.
func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "toolgate.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	applyMigration(t, db, "sqlite")
	return db
}

// useDB wraps a migrated pool as the grant store takes it.
func useDB(t testing.TB, pool *sql.DB, driver string) *db.DB {
	t.Helper()
	d, err := db.Use(pool, driver, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func applyMigration(t testing.TB, db *sql.DB, flavour string) {
	t.Helper()
	if _, err := db.Exec(dbtest.Schema(t, flavour)); err != nil {
		t.Fatalf("apply the store schema (%s): %v", flavour, err)
	}
}

// stores returns the grant stores under test: SQLite always, Postgres when
// the throwaway PostgreSQL of internal/testenv (a fresh database per run).
func stores(t *testing.T) map[string]*SQLGrantStore {
	t.Helper()
	out := map[string]*SQLGrantStore{}
	for flavour, d := range storeDBs(t) {
		s, err := NewSQLGrantStore(d)
		if err != nil {
			t.Fatal(err)
		}
		out[flavour] = s
	}
	return out
}

// storeDBs returns databases with the whole store schema: SQLite always,
// Postgres (a schema of its own) when the throwaway PostgreSQL runs.
func storeDBs(t *testing.T) map[string]*db.DB {
	t.Helper()
	out := map[string]*db.DB{"sqlite": useDB(t, openSQLite(t), "sqlite")}
	if dsn := testenv.Postgres(t).CreateDB(t); dsn != "" {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		schema := fmt.Sprintf("grants_test_%d", time.Now().UnixNano())
		if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = sql.Open("pgx", dsn+sep(dsn)+"search_path="+schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		})
		applyMigration(t, db, "postgres")
		out["postgres"] = useDB(t, db, "postgres")
	}
	return out
}

func sep(dsn string) string {
	if strings.Contains(dsn, "://") {
		if strings.Contains(dsn, "?") {
			return "&"
		}
		return "?"
	}
	return " "
}

// countingStore wraps a store and counts Create calls, to prove refusals
// store nothing.
type countingStore struct {
	GrantStore
	creates atomic.Int64
	fail    atomic.Bool
}

func (c *countingStore) Create(ctx context.Context, g Grant, h map[string]string) error {
	c.creates.Add(1)
	return c.GrantStore.Create(ctx, g, h)
}

func (c *countingStore) Lookup(ctx context.Context, hash string) (Grant, string, error) {
	if c.fail.Load() {
		return Grant{}, "", errors.New("database is locked (" + hash + ")")
	}
	return c.GrantStore.Lookup(ctx, hash)
}

func TestGrantStoreConformance(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
			g := Grant{ID: "gr_1", Graph: "support-bot", Run: "run-1", Thread: "th-1", Nodes: []string{"triage", "refund"},
				Scope: map[string]any{"customer_id": 42.0}, CreatedBy: "key:support-bot", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
			if err := s.Create(ctx, g, map[string]string{"triage": "h1", "refund": "h2"}); err != nil {
				t.Fatal(err)
			}
			got, node, err := s.Lookup(ctx, "h2")
			if err != nil || node != "refund" || got.ID != "gr_1" || got.Run != "run-1" || got.Thread != "th-1" ||
				got.Scope["customer_id"] != 42.0 || strings.Join(got.Nodes, ",") != "triage,refund" ||
				!got.CreatedAt.Equal(at) || !got.ExpiresAt.Equal(at.Add(time.Hour)) || !got.RevokedAt.IsZero() || got.CreatedBy != "key:support-bot" {
				t.Fatalf("lookup = %+v %q %v", got, node, err)
			}
			if _, _, err := s.Lookup(ctx, "nope"); !errors.Is(err, ErrGrantNotFound) {
				t.Errorf("unknown hash: %v", err)
			}
			if _, err := s.Get(ctx, "gr_nope"); !errors.Is(err, ErrGrantNotFound) {
				t.Errorf("unknown id: %v", err)
			}
			if err := s.Revoke(ctx, "gr_nope", at); !errors.Is(err, ErrGrantNotFound) {
				t.Errorf("revoke unknown id: %v", err)
			}
			if err := s.Revoke(ctx, "gr_1", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := s.Revoke(ctx, "gr_1", at.Add(2*time.Minute)); err != nil {
				t.Fatalf("second revoke: %v", err)
			}
			got, err = s.Get(ctx, "gr_1")
			if err != nil || !got.RevokedAt.Equal(at.Add(time.Minute)) {
				t.Fatalf("revoked at = %v %v, want the first revocation time", got.RevokedAt, err)
			}
			// A token hash is unique: a second grant cannot claim it, and
			// the failed create leaves no grant behind.
			g2 := g
			g2.ID = "gr_2"
			if err := s.Create(ctx, g2, map[string]string{"triage": "h1"}); err == nil {
				t.Fatal("duplicate token hash accepted")
			}
			if _, err := s.Get(ctx, "gr_2"); !errors.Is(err, ErrGrantNotFound) {
				t.Errorf("failed create left grant gr_2: %v", err)
			}
		})
	}
}

type grantsEnv struct {
	clk    *clock
	store  *countingStore
	grants *Grants
	auth   *Authenticator
}

func newGrantsEnv(t *testing.T, s GrantStore) *grantsEnv {
	t.Helper()
	e := &grantsEnv{clk: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, store: &countingStore{GrantStore: s}}
	var err error
	e.grants, err = NewGrants(GrantsConfig{Store: e.store, Graphs: testGraphs, MaxTTL: time.Hour, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.auth, err = New(Config{Grants: e.store, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGrantsMintAuthenticateRevoke(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newGrantsEnv(t, s)
			ctx := context.Background()
			res, err := e.grants.Mint(ctx, operator, MintRequest{Graph: "support-bot", RunID: "run-7", ThreadID: "th-7",
				Nodes: []string{"triage", "/supervisor/research/"}, TTL: 15 * time.Minute, Scope: map[string]any{"customer_id": 42}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.GrantID, "gr_") || !res.ExpiresAt.Equal(e.clk.Now().Add(15*time.Minute)) || len(res.Tokens) != 2 {
				t.Fatalf("mint = %+v", res)
			}
			tok := res.Tokens["supervisor/research"]
			if !strings.HasPrefix(tok, "tg_") || tok == res.Tokens["triage"] {
				t.Fatalf("tokens = %v", res.Tokens)
			}
			p, bd, err := e.auth.Authenticate(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			want := broker.Binding{GrantID: res.GrantID, Graph: "support-bot", Node: "supervisor/research", Run: "run-7", Thread: "th-7", ExpiresAt: res.ExpiresAt}
			if p.Subject != "grant:"+res.GrantID || p.Method != broker.AuthGrant || p.TokenID != res.GrantID || bd == nil ||
				bd.GrantID != want.GrantID || bd.Graph != want.Graph || bd.Node != want.Node || bd.Run != want.Run ||
				bd.Thread != want.Thread || !bd.ExpiresAt.Equal(want.ExpiresAt) || bd.Scope["customer_id"] != 42.0 {
				t.Fatalf("authenticate = %+v %+v", p, bd)
			}
			g, err := e.grants.Get(ctx, bot, res.GrantID)
			if err != nil || g.CreatedBy != operator.Subject || len(g.Nodes) != 2 {
				t.Fatalf("get = %+v %v", g, err)
			}
			// Only a principal of the graph sees or revokes the grant.
			for _, who := range []broker.Principal{stranger, p} {
				if _, err := e.grants.Get(ctx, who, res.GrantID); broker.CodeOf(err) != broker.CodeNotFound {
					t.Errorf("get by %s: %v", who.Subject, err)
				}
				if err := e.grants.Revoke(ctx, who, res.GrantID); broker.CodeOf(err) != broker.CodeNotFound {
					t.Errorf("revoke by %s: %v", who.Subject, err)
				}
			}
			if _, _, err := e.auth.Authenticate(ctx, tok); err != nil {
				t.Fatalf("a refused revoke revoked the grant: %v", err)
			}
			// Expiry, seen through the clock.
			e.clk.Add(15 * time.Minute)
			if _, _, err := e.auth.Authenticate(ctx, tok); broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "has expired") {
				t.Fatalf("expired: %v", err)
			}
			e.clk.Add(-time.Minute)
			// Revocation is seen on the very next call.
			if err := e.grants.Revoke(ctx, bot, res.GrantID); err != nil {
				t.Fatal(err)
			}
			_, bd, err = e.auth.Authenticate(ctx, res.Tokens["triage"])
			if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "was revoked") || bd != nil {
				t.Fatalf("revoked: %v", err)
			}
			if err := e.grants.Revoke(ctx, bot, res.GrantID); err != nil {
				t.Errorf("revoking twice: %v", err)
			}
			if _, _, err := e.auth.Authenticate(ctx, "tg_"+strings.Repeat("x", 40)); broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "is not valid") {
				t.Errorf("unknown grant token: %v", err)
			}
		})
	}
}

func TestMintRefusals(t *testing.T) {
	e := newGrantsEnv(t, mustStore(t))
	grantP := broker.Principal{Subject: "grant:gr_x", Method: broker.AuthGrant}
	ok := MintRequest{Graph: "support-bot", RunID: "r", Nodes: []string{"triage"}, TTL: time.Minute}
	with := func(f func(*MintRequest)) MintRequest {
		r := ok
		r.Nodes = append([]string(nil), ok.Nodes...)
		f(&r)
		return r
	}
	for _, c := range []struct {
		name  string
		p     broker.Principal
		req   MintRequest
		code  broker.Code
		field string
		msg   string
	}{
		{"not a principal of the graph", stranger, ok, broker.CodeForbidden, "", "not a principal of graph \"support-bot\""},
		{"grant minting grants", grantP, ok, broker.CodeForbidden, "", "cannot mint grants"},
		{"no graph", bot, with(func(r *MintRequest) { r.Graph = "" }), broker.CodeInvalidArguments, "graph", "graph is required"},
		{"unknown graph", bot, with(func(r *MintRequest) { r.Graph = "nope" }), broker.CodeForbidden, "", "not a principal"},
		{"empty run", bot, with(func(r *MintRequest) { r.RunID = " " }), broker.CodeInvalidArguments, "run_id", "run_id is required"},
		{"no nodes", bot, with(func(r *MintRequest) { r.Nodes = nil }), broker.CodeInvalidArguments, "nodes", "at least one node"},
		{"unknown node", bot, with(func(r *MintRequest) { r.Nodes = []string{"triage", "billing"} }), broker.CodeInvalidArguments, "nodes[1]", "has no node \"billing\""},
		{"node twice", bot, with(func(r *MintRequest) { r.Nodes = []string{"triage", "triage/"} }), broker.CodeInvalidArguments, "nodes[1]", "listed twice"},
		{"zero ttl", bot, with(func(r *MintRequest) { r.TTL = 0 }), broker.CodeInvalidArguments, "ttl", "positive"},
		{"negative ttl", bot, with(func(r *MintRequest) { r.TTL = -time.Second }), broker.CodeInvalidArguments, "ttl", "positive"},
		{"scope unknown field", bot, with(func(r *MintRequest) { r.Scope = map[string]any{"tenant": 1} }), broker.CodeInvalidArguments, "scope.tenant", "scope.tenant is not a property"},
		{"scope wrong type", bot, with(func(r *MintRequest) { r.Scope = map[string]any{"customer_id": "42"} }), broker.CodeInvalidArguments, "scope", "scope.customer_id must be an integer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.store.creates.Load()
			res, err := e.grants.Mint(context.Background(), c.p, c.req)
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != c.code || be.Field != c.field || !strings.Contains(be.Message, c.msg) {
				t.Fatalf("err = %#v, want %s field %q saying %q", err, c.code, c.field, c.msg)
			}
			if res.GrantID != "" || res.Tokens != nil {
				t.Errorf("refusal returned a grant: %+v", res)
			}
			if e.store.creates.Load() != before {
				t.Error("refusal stored a grant")
			}
		})
	}
}

func TestMintCapsTTL(t *testing.T) {
	e := newGrantsEnv(t, mustStore(t))
	res, err := e.grants.Mint(context.Background(), bot, MintRequest{Graph: "support-bot", RunID: "r", Nodes: []string{"refund"}, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ExpiresAt.Equal(e.clk.Now().Add(time.Hour)) {
		t.Errorf("expires at %v, want capped at MaxTTL", res.ExpiresAt)
	}
}

func TestGrantStoreDownFailsClosed(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newGrantsEnv(t, mustStore(t))
	res, err := e.grants.Mint(context.Background(), bot, MintRequest{Graph: "support-bot", RunID: "r", Nodes: []string{"triage"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Grants: e.store, Now: e.clk.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	e.store.fail.Store(true)
	tok := res.Tokens["triage"]
	p, bd, err := a.Authenticate(context.Background(), tok)
	if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "grant store unavailable") || p.Subject != "" || bd != nil {
		t.Fatalf("store down: %+v %+v %v", p, bd, err)
	}
	if logs.Len() != 1 {
		t.Fatalf("want the store error logged once, got %d entries", logs.Len())
	}
	assertNoToken(t, logLine(logs.All()[0]), tok)
}

func TestGrantsConfigValidate(t *testing.T) {
	for name, c := range map[string]GrantsConfig{
		"no store":     {Graphs: testGraphs},
		"no graphs":    {Store: &SQLGrantStore{}},
		"negative ttl": {Store: &SQLGrantStore{}, Graphs: testGraphs, MaxTTL: -1},
	} {
		if _, err := NewGrants(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSQLGrantStore(nil); err == nil {
		t.Error("nil db accepted")
	}
}

func mustStore(t testing.TB) *SQLGrantStore {
	s, err := NewSQLGrantStore(useDB(t, openSQLite(t), "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGrantTokenCarriesMinter: a grant token's principal carries the
// principal that minted the grant (subject and verified email in normal
// form, no groups), so the call's requester is the human or service behind
// it. A grant stored before minters were kept falls back to created_by.
func TestGrantTokenCarriesMinter(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newGrantsEnv(t, s)
			ctx := context.Background()
			ana := broker.Principal{Subject: "user:Ana@Example.COM", Email: "Ana@Example.COM", Groups: []string{"operators"}, Method: broker.AuthOIDC, Client: "langgraph"}
			res, err := e.grants.Mint(ctx, ana, MintRequest{Graph: "support-bot", RunID: "run-1", Nodes: []string{"triage"}, TTL: time.Minute, Scope: map[string]any{"customer_id": 1}})
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := e.auth.Authenticate(ctx, res.Tokens["triage"])
			if err != nil {
				t.Fatal(err)
			}
			if p.Minter == nil || p.Minter.Subject != "user:ana@example.com" || p.Minter.Email != "ana@example.com" || p.Minter.Method != broker.AuthOIDC || len(p.Minter.Groups) != 0 || p.Minter.Client != "" {
				t.Fatalf("minter = %+v", p.Minter)
			}
			if got := p.Requester().Subject; got != "user:ana@example.com" {
				t.Errorf("requester = %q", got)
			}
			if names := p.PersonalNames(); !slices.Contains(names, "user:ana@example.com") || !slices.Contains(names, "grant:"+res.GrantID) {
				t.Errorf("personal names = %v", names)
			}
			if slices.Contains(p.Names(), "user:ana@example.com") {
				t.Errorf("the grant token answers to its minter's name: %v", p.Names())
			}
			// A grant from before minters were stored.
			if _, err := s.db.Exec(s.q(`UPDATE grants SET minter = '' WHERE id = ?`), res.GrantID); err != nil {
				t.Fatal(err)
			}
			p, _, err = e.auth.Authenticate(ctx, res.Tokens["triage"])
			if err != nil || p.Minter == nil || p.Minter.Subject != "user:ana@example.com" {
				t.Fatalf("legacy grant minter = %+v, %v", p.Minter, err)
			}
		})
	}
}
