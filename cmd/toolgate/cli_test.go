package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/internal/testenv"
)

// TestVersionStamped: the version given at link time is what --version and
// `version` print, and the Makefile stamps it from git and says it builds.
func TestVersionStamped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "toolgate")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || string(out) != "toolgate v9.9.9-test\n" {
			t.Errorf("toolgate %v = %q, %v", args, out, err)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	plan, err := exec.Command("make", "-n", "--no-print-directory", "-C", "../..", "run", "VERSION=v1.2.3").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(plan), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "echo") || !strings.Contains(lines[0], "building") ||
		!strings.Contains(lines[1], "-X main.version=v1.2.3") || !strings.Contains(lines[2], "toolgate dev") {
		t.Errorf("make run should say it builds, build with the version, then start dev:\n%s", plan)
	}
	mk, _ := os.ReadFile("../../Makefile")
	if !strings.Contains(string(mk), "git describe --always --dirty") {
		t.Error("the Makefile does not take the version from git describe --always --dirty")
	}
}

// TestCLIErrorStyle: every error the CLI prints is "toolgate: <verb>: ...".
func TestCLIErrorStyle(t *testing.T) {
	cfg := quickstartConfig(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "explain", "--config", cfg, "--graph", "g"}, "toolgate: policy explain: required flag"},
		{[]string{"audit", "export", "--config", cfg, "--format", "xml"}, "toolgate: audit export: --format: "},
		{[]string{"grants", "list", "--graph", "g", "--server", "ftp://x", "--token", "t"}, "toolgate: grants list: --server must be"},
		{[]string{"approvals", "list", "--server", "http://127.0.0.1:1", "--token", "t"}, "toolgate: approvals list: unavailable: cannot reach"},
		{[]string{"check", "--config", "/nonexistent/toolgate.yaml"}, "toolgate: check: /nonexistent/toolgate.yaml: cannot read"},
		{[]string{"tools", "scaffold", "--config", cfg, "--target", "nope", "--tables", "x", "--out", t.TempDir()}, "toolgate: tools scaffold: --target: no target named"},
		{[]string{"replay", "--config", cfg, "nope"}, "toolgate: replay: no events are recorded"},
		{[]string{"nope"}, "toolgate: unknown command"},
	} {
		_, stderr, err := runCLI(t, c.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if err == nil || !strings.HasPrefix(lines[len(lines)-1], c.want) {
			t.Errorf("toolgate %v: %v\n%s\nwant the last line to start with %q", c.args, err, stderr, c.want)
		}
	}
}

// TestHelpTexts keeps help texts accurate.
func TestHelpTexts(t *testing.T) {
	out, _, err := runCLI(t, "approvals", "--help")
	if err != nil || strings.Contains(out, "of a graph principal") || !strings.Contains(out, "approvers") {
		t.Errorf("approvals --help:\n%s", out)
	}
	out, _, _ = runCLI(t, "check", "--help")
	if !strings.Contains(out, "--connect") || !strings.Contains(out, "toolgate-data/toolgate.yaml") {
		t.Errorf("check --help:\n%s", out)
	}
	out, _, _ = runCLI(t, "tools", "scaffold", "--help")
	for _, want := range []string{"--from-openapi", "--tables", "--force", "never printed"} {
		if !strings.Contains(out, want) {
			t.Errorf("tools scaffold --help lacks %q", want)
		}
	}
}

// TestReadmeReferencesTheRepository: the README links only files that are
// in the repository, names no design document outside it, and links the
// tool authoring guide.
func TestReadmeReferencesTheRepository(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if regexp.MustCompile(`DESIGN`).MatchString(readme) {
		t.Error("the README points at DESIGN, which is not in the repository")
	}
	if !strings.Contains(readme, "(docs/tools.md)") {
		t.Error("the README does not link the tool authoring guide")
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`).FindAllStringSubmatch(readme, -1) {
		if strings.Contains(m[1], "://") {
			continue
		}
		if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
			t.Errorf("the README links %s, which is not in the repository", m[1])
		}
	}
}

// lineOf returns the 1-based line of the first line of text holding s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not found", s)
	return 0
}

const locateConfig = `store: {driver: sqlite, path: ./tg.db}
auth:
  api_keys: [{name: bot, sha256: "` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `"}]
targets:
  demo: {kind: sqlite, path: ./demo.db}
graphs:
  g:
    principals: ["key:bot"]
    nodes:
      n:
        allow: [demo_ok, biling_refund]
        rules:
          - tool: demo_ok
            when: "args.nope > 1"
            effect: deny
      m:
        allow: [demo_broken, demo_typo]
`

// TestCheckLocatesEveryProblem: cross-references and CEL errors point at
// their line in toolgate.yaml, a broken tool file reports only its own
// problem, and a misspelled table on an SQLite target is caught without
// --connect.
func TestCheckLocatesEveryProblem(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "tools"), 0o755)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("toolgate.yaml", locateConfig)
	write("tools/demo_ok.json", `{"name": "demo_ok", "target": "demo", "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
 "sql": {"statement": "SELECT id FROM customers WHERE id = $1", "args": ["id"]}}`)
	write("tools/demo_broken.json", "{\n  \"name\": \"demo_broken\",\n  \"target\": \"demo\",\n  \"input_schema\": {\"type\": \"object\"},\n  \"sql\": {\"statement\": \"SELECT * FROM customers WHERE id = '{{id}}'\"}\n}\n")
	write("tools/demo_typo.json", "{\n  \"name\": \"demo_typo\",\n  \"target\": \"demo\",\n  \"input_schema\": {\"type\": \"object\"},\n  \"sql\": {\"statement\": \"SELECT id FROM custmers\"}\n}\n")
	db, err := sql.Open("sqlite", filepath.Join(dir, "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg := filepath.Join(dir, "toolgate.yaml")
	_, stderr, err := runCLI(t, "check", "--config", cfg)
	if err == nil {
		t.Fatal("check passed")
	}
	for _, want := range []string{
		fmt.Sprintf(`%s:%d: graphs.g.nodes.n.allow[1]: "biling_refund" matches no tool in the catalog`, cfg, lineOf(t, locateConfig, "biling_refund")),
		fmt.Sprintf(`%s:%d: graphs.g.nodes.n.rules[0].when: `, cfg, lineOf(t, locateConfig, "args.nope")),
		filepath.Join(dir, "tools", "demo_broken.json") + ":5: /sql/statement: contains the template marker",
		filepath.Join(dir, "tools", "demo_typo.json") + ":5: /sql/statement: the database refuses the statement: SQL logic error: no such table: custmers",
		"toolgate: check: 4 problems in " + cfg,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, `"demo_broken" matches no tool`) || strings.Contains(stderr, `"demo_ok" matches no tool`) {
		t.Errorf("a broken file buried its problem under cross-reference errors:\n%s", stderr)
	}
}

// countingListener accepts and closes connections, counting them.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// TestCheckConnect: --connect prepares every SQL tool on its live target
// and reaches every HTTP target, with file:line; without it nothing
// connects.
func TestCheckConnect(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.CreateDB(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE TABLE customers (id int PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	trap, trapHits := countingListener(t)
	var apiHits atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { apiHits.Add(1); w.WriteHeader(404) }))
	defer api.Close()
	down, _ := countingListener(t) // accepts, then closes: no HTTP answer

	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "tools"), 0o755)
	config := fmt.Sprintf(`store: {driver: sqlite, path: ./tg.db}
targets:
  crm: {kind: postgres, dsn: %q}
  trap: {kind: postgres, dsn: "postgres://u:secretpw@%s/db?connect_timeout=2"}
  api: {kind: http, base_url: %q}
  down: {kind: http, base_url: "http://%s"}
`, dsn, trap, api.URL, down)
	_ = os.WriteFile(filepath.Join(dir, "toolgate.yaml"), []byte(config), 0o644)
	tools := map[string]string{
		"crm_ok":    `"target": "crm", "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}}, "sql": {"statement": "SELECT name FROM customers WHERE id = $1", "args": ["id"]}`,
		"crm_typo":  `"target": "crm", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT nmae FROM customers"}`,
		"crm_type":  `"target": "crm", "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}, "sql": {"statement": "SELECT name FROM customers WHERE id = $1", "args": ["id"]}`,
		"trap_ping": `"target": "trap", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT 1"}`,
		"api_ping":  `"target": "api", "input_schema": {"type": "object"}, "http": {"method": "GET", "path": "/"}`,
	}
	for name, body := range tools {
		_ = os.WriteFile(filepath.Join(dir, "tools", name+".json"), []byte("{\n  \"name\": \""+name+"\",\n  "+body+"\n}\n"), 0o644)
	}
	cfg := filepath.Join(dir, "toolgate.yaml")

	out, stderr, err := runCLI(t, "check", "--config", cfg)
	if err != nil || !strings.Contains(out, "--connect checks them") {
		t.Fatalf("check without --connect: %v\n%s%s", err, out, stderr)
	}
	if trapHits.Load() != 0 || apiHits.Load() != 0 {
		t.Fatalf("check without --connect connected: %d postgres, %d http", trapHits.Load(), apiHits.Load())
	}

	out, stderr, err = runCLI(t, "check", "--config", cfg, "--connect", "--timeout", "3s")
	if err == nil {
		t.Fatalf("check --connect passed:\n%s", out)
	}
	toolFile := func(n string) string { return filepath.Join(dir, "tools", n+".json") }
	for _, want := range []string{
		toolFile("crm_typo") + `:3: /sql/statement: the database refuses the statement: column "nmae" does not exist (SQLSTATE 42703`,
		toolFile("crm_type") + `:3: /sql/args/0: $1 binds "id", which input_schema declares as string, but the database expects int4 here`,
		fmt.Sprintf("%s:%d: targets.trap: cannot connect to the database", cfg, lineOf(t, config, "trap:")),
		fmt.Sprintf("%s:%d: targets.down.base_url: cannot reach the target", cfg, lineOf(t, config, "down:")),
		"toolgate: check: 4 problems",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check --connect lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "crm_ok") || strings.Contains(stderr, "targets.api") || strings.Contains(stderr, "secretpw") {
		t.Errorf("check --connect reports a good tool or target, or a password:\n%s", stderr)
	}
	if apiHits.Load() == 0 || trapHits.Load() == 0 {
		t.Error("check --connect did not reach every target")
	}
}
