package approvals_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"github.com/toolgate/toolgate/internal/testenv"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	_ "modernc.org/sqlite"
)

// card is a value the test masker masks wherever it appears.
const (
	card       = "4111111111111111"
	maskedCard = "************1111"
)

// masker masks the test card number.
type masker struct{}

func (m masker) PrepareTool(*broker.Tool) (broker.ToolMask, error) {
	return broker.ToolMaskFunc(func(doc []byte) ([]byte, broker.MaskStats, error) {
		out, err := m.MaskRecord(doc)
		return out, broker.MaskStats{}, err
	}), nil
}
func (masker) MaskRecord(doc []byte) ([]byte, error) {
	return []byte(strings.ReplaceAll(string(doc), card, maskedCard)), nil
}
func (masker) MaskText(s string) string { return strings.ReplaceAll(s, card, maskedCard) }

// recorder keeps every event; SetFail makes Record fail.
type recorder struct{ brokertest.Recorder }

// kinds returns the kinds of the events about one approval, tool calls left out.
func (r *recorder) kinds(approvalID string) []broker.EventKind {
	var out []broker.EventKind
	for _, ev := range r.Events() {
		if ev.ApprovalID == approvalID && ev.Kind != broker.EventToolCall {
			out = append(out, ev.Kind)
		}
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// migration is the whole store schema of a dialect.
func migration(t testing.TB, dialect string) string {
	t.Helper()
	return dbtest.Schema(t, dialect)
}

// sqliteDB opens a fresh SQLite file with the approvals schema.
func sqliteDB(t testing.TB) *db.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "toolgate.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(migration(t, "sqlite")); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return useDB(t, db, "sqlite", "")
}

// useDB wraps a migrated pool as the stores take it.
func useDB(t testing.TB, pool *sql.DB, driver, dsn string) *db.DB {
	t.Helper()
	d, err := db.Use(pool, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pgDSN returns a DSN for a fresh schema in a fresh database of the throwaway
// PostgreSQL (internal/testenv), skipping the test when PostgreSQL is missing.
func pgDSN(t testing.TB) string {
	t.Helper()
	dsn := testenv.Postgres(t).CreateDB(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "approvals_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", dsn)
		if err == nil {
			_, _ = a.Exec("DROP SCHEMA " + schema + " CASCADE")
			a.Close()
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	return dsn + sep + "search_path=" + schema
}

// pgDB opens dsn and applies the approvals schema when migrate is set.
func pgDB(t testing.TB, dsn string, migrate bool) *db.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if migrate {
		if _, err := db.Exec(migration(t, "postgres")); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return useDB(t, db, "postgres", dsn)
}

// env is a Service on a real store.
type env struct {
	svc   *approvals.Service
	store *approvals.Store
	rec   *recorder
	clock *clock
	db    *sql.DB
}

type envOpt func(*approvals.Config)

// opener opens a fresh env on one backend.
type opener func(t testing.TB, opts ...envOpt) *env

// backends runs f against SQLite and the throwaway
// Postgres (a fresh schema per env).
func backends(t *testing.T, f func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, func(t testing.TB, opts ...envOpt) *env { return newEnv(t, sqliteDB(t), opts...) })
	})
	t.Run("postgres", func(t *testing.T) {
		pgDSN(t) // skips without a server
		f(t, func(t testing.TB, opts ...envOpt) *env {
			return newEnv(t, pgDB(t, pgDSN(t), true), opts...)
		})
	})
}

var epoch = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, d *db.DB, opts ...envOpt) *env {
	t.Helper()
	st, err := approvals.NewStore(d)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, rec: &recorder{}, clock: &clock{t: epoch}, db: d.SQL()}
	cfg := approvals.Config{
		Store: st, Masker: masker{}, Recorder: e.rec, Now: e.clock.Now,
		Timeout: 30 * time.Minute, Wait: 50 * time.Millisecond, ProgressEvery: 20 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if e.svc, err = approvals.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// The principals of the tests.
var (
	agent = broker.Principal{Subject: "key:support-bot", Method: broker.AuthAPIKey, TokenID: "support-bot"}
	ana   = broker.Principal{Subject: "user:ana@example.com", Email: "ana@example.com", Groups: []string{"finance"}, Method: broker.AuthOIDC}
	ben   = broker.Principal{Subject: "user:ben@example.com", Email: "ben@example.com", Groups: []string{"finance"}, Method: broker.AuthOIDC}
	eve   = broker.Principal{Subject: "user:eve@example.com", Email: "eve@example.com", Groups: []string{"support"}, Method: broker.AuthOIDC}
)

var refundTool = &broker.Tool{Name: "billing_refund", Target: "billing"}

// request is an approval request of the refund tool by caller in run.
func request(caller broker.Principal, run string, args map[string]any, minApprovals int) broker.ApprovalRequest {
	return broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: caller, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: run}},
		Tool:     refundTool,
		Args:     args,
		ArgsHash: hashArgs(args),
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]", PolicyVersion: "pv1",
			Approvers: []string{"group:finance"}, MinApprovals: minApprovals},
	}
}
