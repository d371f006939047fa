package config

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testEnv(name string) (string, bool) {
	vals := map[string]string{
		"BOT_KEY_SHA256":    strings.Repeat("ab", 32),
		"CRM_DSN":           "postgres://crm:s3cret@127.0.0.1/crm",
		"BILLING_TOKEN":     "billing-secret-token",
		"SLACK_BOT_TOKEN":   "xoxb-test",
		"SLACK_APP_TOKEN":   "xapp-test",
		"TOOLGATE_MASK_KEY": "mask-key",
		"CRM_READER_PW":     "reader-pw-secret",
		"TOOLGATE_ROLE_KEY": "role-key-0123456789",
	}
	v, ok := vals[name]
	return v, ok
}

// TestGolden loads each testdata case and compares the problems (or "ok")
// with expected.txt.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/toolgate.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range cases {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := Load(file, testEnv)
			got := "ok\n"
			if err != nil {
				got = err.Error() + "\n"
			}
			golden := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, want)
			}
			for _, secret := range []string{"s3cret", "billing-secret-token", "xoxb-test", "mask-key", "reader-pw-secret", "role-key-0123"} {
				if strings.Contains(got, secret) {
					t.Errorf("problem report leaks a secret value %q", secret)
				}
			}
		})
	}
}

func TestValidDecodes(t *testing.T) {
	cfg, err := Load("testdata/valid/toolgate.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Targets["crm"].Postgres.DSN; got != "postgres://crm:s3cret@127.0.0.1/crm" {
		t.Errorf("dsn not substituted: %q", got)
	}
	if got := cfg.Targets["billing"].HTTP.Headers["Authorization"]; got != "Bearer billing-secret-token" {
		t.Errorf("header not substituted: %q", got)
	}
	if got := cfg.Targets["crm"].Postgres.StatementTimeout.D(); got != 5*time.Second {
		t.Errorf("statement_timeout = %v", got)
	}
	if pg := cfg.Targets["crm"].Postgres; pg.PreviewTimeout.D() != 3*time.Second || pg.PreviewLockTimeout.D() != 500*time.Millisecond {
		t.Errorf("preview_timeout, preview_lock_timeout = %v, %v", pg.PreviewTimeout.D(), pg.PreviewLockTimeout.D())
	}
	if got := cfg.Approvals.Preview; got != (ApprovalPreview{MaxRows: 10, MaxBytes: 32768}) {
		t.Errorf("approvals.preview = %+v", got)
	}
	if got := cfg.Recordings.Retention.D(); got != 90*24*time.Hour {
		t.Errorf("retention = %v", got)
	}
	if got := cfg.Graphs["support-bot"].Nodes["refund"].Bind["billing_refund"]["customer_id"]; got != "scope.customer_id" {
		t.Errorf("bind = %q", got)
	}
	if got := cfg.Graphs["support-bot"].Nodes["refund"].Rules[0].MinApprovals; got != 1 {
		t.Errorf("min_approvals = %d", got)
	}
	if want := filepath.Join("testdata/valid", "data/demo.db"); cfg.Targets["demo"].SQLite.Path != want {
		t.Errorf("sqlite target path = %q, want %q (relative to the config file)", cfg.Targets["demo"].SQLite.Path, want)
	}
	role := cfg.Graphs["support-bot"].Nodes["reporting"].Passthrough["crm"].Role
	if role == nil || role.User != "crm_reader" || role.Password != "reader-pw-secret" {
		t.Errorf("declared passthrough role = %+v", role)
	}
	if cfg.Passthrough.RoleKey != "role-key-0123456789" || cfg.Passthrough.Postgres[0].RoleConnLimit != 4 {
		t.Errorf("role_key / role_conn_limit not decoded: %+v", cfg.Passthrough.Postgres[0])
	}
	if out, _ := json.Marshal(cfg); strings.Contains(string(out), "reader-pw-secret") || strings.Contains(string(out), "role-key-0123") {
		t.Errorf("a secret survives JSON encoding of the config: %s", out)
	}
	if cfg.PublicURL != "" {
		t.Errorf("public_url = %q; it defaults at serve time from the bound address", cfg.PublicURL)
	}
	if p := cfg.Passthrough.Postgres[0]; p.MaxConnsPerGrant != 4 || p.MaxPendingLogins != 32 || p.MaxMessageBytes != 8<<20 || p.MaxRowBytes != 4<<20 || p.MaxCellBytes != 1<<20 {
		t.Errorf("passthrough.postgres[0] bounds = %+v", p)
	}
}

func TestEscapedDollarIsLiteral(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte("masking: {hash_key: \"$${LITERAL}\"}\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Masking.HashKey != "${LITERAL}" {
		t.Errorf("hash_key = %q", cfg.Masking.HashKey)
	}
}

func TestEnvValueIsNotReparsedAsYAML(t *testing.T) {
	env := func(string) (string, bool) { return "a: b\n- [c", true }
	cfg, err := Parse("x.yaml", []byte("masking:\n  hash_key: ${K}\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Masking.HashKey != "a: b\n- [c" {
		t.Errorf("hash_key = %q", cfg.Masking.HashKey)
	}
}

func TestProblemsIsAnError(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml", testEnv)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Reason, "cannot read") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5s": 5 * time.Second, "90d": 90 * 24 * time.Hour, "1.5h": 90 * time.Minute, "250ms": 250 * time.Millisecond} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseDuration("soon"); err == nil {
		t.Error("ParseDuration(soon) succeeded")
	}
}

// TestLineOfPaths: a loaded config knows the line of each path, for
// problems found after loading (policy cross-references, CEL).
func TestLineOfPaths(t *testing.T) {
	doc := "listen: 127.0.0.1:8080\ngraphs:\n  g:\n    nodes:\n      n:\n        allow: [a, b]\n        rules:\n          - tool: a\n            when: \"args.x > 1\"\n            effect: deny\n"
	cfg, err := Parse("t.yaml", []byte(doc), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"listen": 1, "graphs.g": 3, "graphs.g.nodes.n.allow[1]": 6, "graphs.g.nodes.n.rules[0].when": 9,
		"graphs.g.nodes.n.rules[0].effect": 10, "graphs.g.nodes.n.rules[3].when": 7, "nowhere": 0,
	} {
		if got := cfg.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	if p := cfg.Problem("graphs.g.nodes.n.allow[1]", "bad"); p.String() != "t.yaml:6: graphs.g.nodes.n.allow[1]: bad" {
		t.Errorf("Problem = %s", p)
	}
}
