package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/recordings"
)

// auditFixture writes a config naming a SQLite store and fills the store
// with two chains of fixed events.
func auditFixture(t *testing.T) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath = filepath.Join(dir, "toolgate.yaml")
	dbPath = filepath.Join(dir, "tg.db")
	if err := os.WriteFile(cfgPath, []byte("store: {driver: sqlite, path: ./tg.db}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), db.Config{Driver: db.DriverSQLite, Path: dbPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	chains := map[string][]broker.Event{
		"node-a": {
			{ID: "ev1", Time: at(0), Kind: broker.EventToolCall, Principal: "key:bot", AuthMethod: "api_key", Graph: "support-bot", Node: "triage", Run: "r1", ToolCallID: "tc1",
				Tool: "crm_find_customer", Target: "crm", Door: "mcp", Args: json.RawMessage(`{"email":"a***@example.com"}`), Decision: "allow", Rule: "graphs.support-bot.nodes.triage.allow",
				Status: broker.StatusOK, Rows: 1, Bytes: 80, DurationMS: 2.5, ExecMS: 1.25},
			{ID: "ev2", Time: at(40), Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "billing", Run: "r1", Tool: "crm_drop_table",
				Door: "http", Decision: "deny", Rule: "default", Status: broker.StatusDenied, ErrorCode: "forbidden", Error: "node billing may not call crm_drop_table"},
			{ID: "ev3", Time: at(90), Kind: broker.EventStatement, Principal: "grant:g1", Graph: "support-bot", Node: "triage", Run: "r1", Target: "crm", Door: "pgwire",
				Decision: "allow", Status: broker.StatusOK, Rows: 2, DurationMS: 1200, Detail: map[string]any{"statement": "SELECT id, name\n  FROM customers WHERE id = $1"}},
			{ID: "ev4", Time: at(5000), Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "triage", Run: "r2", Tool: "crm_find_customer", Status: broker.StatusOK},
		},
		"node-b": {
			{ID: "ev5", Time: at(60), Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "triage", Run: "r1", Tool: "=cmd()",
				Status: broker.StatusError, ErrorCode: "target_unavailable", Error: "target crm is down"},
		},
	}
	for _, chain := range []string{"node-a", "node-b"} {
		rec, err := recordings.NewStore(d, recordings.Config{Instance: chain}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range chains[chain] {
			if err := rec.Record(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		_ = rec.Close()
	}
	return cfgPath, dbPath
}

// runAuditCLI runs the toolgate command line in-process and returns its
// exit code, as main computes it.
func runAuditCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func tamper(t *testing.T, dbPath string, stmts ...string) {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, s := range stmts {
		if _, err := d.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestAuditCLIGolden pins the output of audit export, audit verify and
// replay on a small store (testdata/audit/*.golden; regenerate with -update).
func TestAuditCLIGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string
		args   []string
		code   int
	}{
		{"export_jsonl", nil, []string{"audit", "export"}, 0},
		{"export_csv_triage", nil, []string{"audit", "export", "--format", "csv", "--node", "triage"}, 0},
		{"export_run_r1_tool_calls", nil, []string{"audit", "export", "--run", "r1", "--kind", "tool_call", "--since", "2026-03-01T12:00:00.010Z", "--until", "2026-03-02"}, 0},
		{"export_limit", nil, []string{"audit", "export", "--graph", "support-bot", "--thread", "", "--tool", "crm_find_customer", "--limit", "1"}, 0},
		{"export_bad_since", nil, []string{"audit", "export", "--since", "last tuesday"}, 2},
		{"export_bad_format", nil, []string{"audit", "export", "--format", "xml"}, 2},
		{"verify_intact", nil, []string{"audit", "verify"}, 0},
		{"verify_intact_json", nil, []string{"audit", "verify", "--json"}, 0},
		{"verify_edited", []string{`UPDATE audit_events SET event = replace(event, '"rows":1', '"rows":9') WHERE id = 'ev1'`}, []string{"audit", "verify"}, 1},
		{"verify_edited_column", []string{`UPDATE audit_events SET node = 'refund' WHERE id = 'ev5'`}, []string{"audit", "verify"}, 1},
		{"verify_removed", []string{`DELETE FROM audit_events WHERE id = 'ev2'`}, []string{"audit", "verify"}, 1},
		{"verify_reordered", []string{
			`UPDATE audit_events SET seq = -2 WHERE id = 'ev2'`,
			`UPDATE audit_events SET seq = 2 WHERE id = 'ev3'`,
			`UPDATE audit_events SET seq = 3 WHERE id = 'ev2'`,
		}, []string{"audit", "verify"}, 1},
		{"replay_r1", nil, []string{"replay", "r1"}, 0},
		{"replay_r1_json", nil, []string{"replay", "r1", "--json"}, 0},
		{"replay_unknown", nil, []string{"replay", "nope"}, 1},
		{"replay_no_run", nil, []string{"replay"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, dbPath := auditFixture(t)
			tamper(t, dbPath, tc.tamper...)
			code, stdout, stderr := runAuditCLI(t, append(tc.args, "--config", cfg)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			got := fmt.Sprintf("$ toolgate %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tc.args, " "), code, stdout, stderr)
			golden(t, filepath.Join("testdata", "audit", tc.name+".golden"), got)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestAuditExportOut: --out writes a 0600 file whose jsonl matches stdout.
func TestAuditExportOut(t *testing.T) {
	cfg, _ := auditFixture(t)
	out := filepath.Join(t.TempDir(), "export.jsonl")
	code, _, stderr := runAuditCLI(t, "audit", "export", "--run", "r1", "--out", out, "--config", cfg)
	if code != 0 || stderr != "wrote 4 records to "+out+"\n" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, stdout, _ := runAuditCLI(t, "audit", "export", "--run", "r1", "--config", cfg)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != stdout || strings.Count(stdout, "\n") != 4 {
		t.Fatalf("file and stdout differ:\n%s\n%s", b, stdout)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestAuditCLIStoreDown: a store that cannot be opened is exit 2 with a
// clear message, not a verdict on the chain.
func TestAuditCLIStoreDown(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "toolgate.yaml")
	if err := os.WriteFile(cfg, []byte("store: {driver: postgres, dsn: \"postgres://u:secretpw@127.0.0.1:1/x?connect_timeout=1\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"audit", "verify"}, {"audit", "export"}, {"replay", "r1"}} {
		code, stdout, stderr := runAuditCLI(t, append(args, "--config", cfg)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "store does not answer") || strings.Contains(stderr, "secretpw") {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
	}
	code, _, stderr := runAuditCLI(t, "audit", "verify", "--config", filepath.Join(dir, "missing.yaml"))
	if code != 2 || stderr == "" {
		t.Fatalf("missing config: exit %d %s", code, stderr)
	}
}
