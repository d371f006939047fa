package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/connectors/pgwire"
	"github.com/toolgate/toolgate/examples/quickstart"
	"github.com/toolgate/toolgate/internal/config"
)

// backtestCall is one call the fixture runs through the broker, and the
// refusal code it must get ("" for none, "pending" for held).
type backtestCall struct {
	node, tool, args, sql, code string
}

// backtestCalls are the recorded calls, in order: record rNN is the NNth.
var backtestCalls = []backtestCall{
	{node: "triage", tool: "crm_find_customer", args: `{"email":"ada@example.com"}`},
	{node: "triage", tool: "crm_search_customers", args: `{"name":"Ad"}`},
	{node: "triage", tool: "crm_search_customers", args: `{"name":"A"}`, code: "forbidden"},
	{node: "triage", tool: "billing_refund", args: `{"order_id":101,"amount":20,"reason":"arrived broken"}`, code: "forbidden"},
	{node: "billing", tool: "crm_list_orders", args: `{"customer_id":1}`},
	{node: "billing", tool: "billing_refund", args: `{"order_id":101,"amount":20,"reason":"arrived broken"}`},
	{node: "billing", tool: "billing_refund", args: `{"order_id":102,"amount":250,"reason":"arrived broken"}`, code: "pending"},
	{node: "billing", tool: "billing_refund", args: `{"order_id":101,"amount":9000,"reason":"arrived broken"}`, code: "forbidden"},
	{node: "billing", tool: "billing_refund", args: `{"order_id":103,"amount":30,"reason":"charged twice on card 4242 4242 4242 4242"}`},
	{node: "billing", tool: "crm_list_orders", args: `{"customer_id":"one"}`, code: "invalid_arguments"},
	{node: "triage", sql: "SELECT name FROM customers WHERE email = 'ada@example.com'"},
	{node: "triage", sql: "DELETE FROM orders WHERE id = 101", code: "forbidden"},
}

// backtestEnv is a store recorded by real calls through the broker.
type backtestEnv struct {
	dir, config string
	// ids maps each record id to its name, rNN.
	ids map[string]string
}

// newBacktestEnv copies the quickstart tools, writes the recorded config
// (testdata/backtest/header.yaml + graphs.yaml), runs backtestCalls through
// the real broker (SQLite target, masking, SQLite audit store) on a fixed
// clock, and closes everything. Afterwards BT_DEMO_DB names a file that
// does not exist: nothing may create it.
func newBacktestEnv(t *testing.T) *backtestEnv {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, quickstart.Files); err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, "seed.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if err := seedSQLite(filepath.Join(dir, "demo.db"), string(seed)); err != nil {
		t.Fatal(err)
	}
	const key = "tgk_backtest_agent_key"
	t.Setenv("BT_AGENT_SHA256", auth.HashKey(key))
	t.Setenv("BT_DEMO_DB", filepath.Join(dir, "demo.db"))
	e := &backtestEnv{dir: dir, config: writeBacktestConfig(t, dir, "toolgate", "graphs.yaml")}
	cfg, err := config.Load(e.config, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	a, err := openAppClock(context.Background(), cfg, zap.NewNop(), func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	if err != nil {
		t.Fatal(err)
	}
	closeApp := sync.OnceFunc(a.Close)
	defer closeApp()
	b := a.broker
	for i, c := range backtestCalls {
		mu.Lock()
		now = now.Add(time.Second)
		mu.Unlock()
		if got := runBacktestCall(t, b, key, c); got != c.code {
			t.Fatalf("call %d (%s %s%s): got %q, want %q", i+1, c.node, c.tool, c.sql, got, c.code)
		}
	}
	closeApp()
	t.Setenv("BT_DEMO_DB", filepath.Join(dir, "absent.db"))
	e.ids = recordNames(t, cfg)
	return e
}

// runBacktestCall makes one call (or sends one statement) and returns its
// refusal code.
func runBacktestCall(t *testing.T, b *broker.Broker, key string, c backtestCall) string {
	t.Helper()
	ctx := context.Background()
	caller, err := b.Identify(ctx, broker.Credentials{Token: key, Claimed: broker.Context{Graph: "support-bot", Node: c.node, Run: "r1"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.sql != "" {
		st := pgwire.Classify(c.sql)
		_, err = b.Statement(ctx, broker.StatementCall{Caller: caller, Door: "pgwire", Target: "demo", Statement: st[0]})
		return string(broker.CodeOf(err))
	}
	res, err := b.Call(ctx, broker.Call{Caller: caller, Door: "http", Tool: c.tool, Args: json.RawMessage(c.args)})
	if res.Pending != nil {
		return "pending"
	}
	return string(broker.CodeOf(err))
}

// writeBacktestConfig writes testdata/backtest/header.yaml followed by
// graphs (a path under testdata/backtest) as <name>.yaml in dir.
func writeBacktestConfig(t *testing.T, dir, name, graphs string) string {
	t.Helper()
	var b []byte
	for _, f := range []string{"header.yaml", graphs} {
		part, err := os.ReadFile(filepath.Join("testdata", "backtest", f))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, part...)
	}
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordNames names the recorded tool calls and statements r01, r02, ...
// in the order they were made.
func recordNames(t *testing.T, cfg *config.Config) map[string]string {
	t.Helper()
	out, errOut, err := runCLI(t, "audit", "export", "--config", cfg.File)
	if err != nil {
		t.Fatalf("audit export: %v\n%s", err, errOut)
	}
	ids := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct{ Event broker.Event }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		ev := rec.Event
		if ev.Kind == broker.EventToolCall || (ev.Kind == broker.EventStatement && ev.Detail["phase"] == nil) {
			ids[ev.ID] = fmt.Sprintf("r%02d", len(ids)+1)
		}
	}
	if len(ids) != len(backtestCalls) {
		t.Fatalf("the store holds %d call records, want %d", len(ids), len(backtestCalls))
	}
	return ids
}

var recordID = regexp.MustCompile(`\b(call|stm)_[0-9a-f]{36}\b`)

// normalize names records rNN, replaces the temp dir, and aligns the text
// table again, since the names are shorter than the ids.
func (e *backtestEnv) normalize(out string) string {
	out = recordID.ReplaceAllStringFunc(out, func(id string) string {
		if n, ok := e.ids[id]; ok {
			return n
		}
		return "r??"
	})
	out = strings.ReplaceAll(out, e.dir, "<dir>")
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	cells := regexp.MustCompile(`  +`)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "TIME ") || strings.HasPrefix(line, "2026-") {
			line = strings.Join(cells.Split(line, -1), "\t")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// checkGolden compares got with testdata/backtest/<name>, or rewrites it
// with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "backtest", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// storeDigest hashes every file of the store (with its WAL and shared
// memory files, when present) and notes whether the demo target exists.
func storeDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"toolgate.db", "toolgate.db-wal", "toolgate.db-shm", "absent.db"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "%s: absent\n", f)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s: %s\n", f, hex.EncodeToString(sum[:]))
	}
	return b.String()
}

var backtestCases = []string{"unchanged", "tighten", "deny_tool", "remove_node", "masked_threshold", "unmasked_threshold", "budget"}

// TestPolicyBacktestGolden backtests every candidate in testdata/backtest
// against calls recorded by the real broker, in text and JSON, and proves
// that no backtest changed a byte of the store or opened the target.
func TestPolicyBacktestGolden(t *testing.T) {
	e := newBacktestEnv(t)
	before := storeDigest(t, e.dir)
	for _, c := range backtestCases {
		t.Run(c, func(t *testing.T) {
			cand := writeBacktestConfig(t, e.dir, c, c+"/graphs.yaml")
			for _, format := range []string{"text", "json"} {
				out, errOut, err := runCLI(t, "policy", "backtest", "--config", e.config, "--candidate", cand, "--format", format)
				if err != nil {
					t.Fatalf("backtest: %v\n%s", err, errOut)
				}
				checkGolden(t, c+"/want."+map[string]string{"text": "txt", "json": "json"}[format], e.normalize(out))
			}
		})
	}
	if after := storeDigest(t, e.dir); after != before {
		t.Errorf("a backtest changed the store or created the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestPolicyBacktestCLI pins filters, check --backtest and every refusal of
// the verbs (testdata/backtest/cli_<name>.txt), and proves none of them
// changed the store.
func TestPolicyBacktestCLI(t *testing.T) {
	e := newBacktestEnv(t)
	tighten := writeBacktestConfig(t, e.dir, "tighten", "tighten/graphs.yaml")
	threshold := writeBacktestConfig(t, e.dir, "unmasked_threshold", "unmasked_threshold/graphs.yaml")
	broken := filepath.Join(e.dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("graphs: {support-bot: {nodes: {triage: {allow: [no_such_tool]}}}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	if err := os.CopyFS(elsewhere, quickstart.Files); err != nil {
		t.Fatal(err)
	}
	nostore := writeBacktestConfig(t, elsewhere, "toolgate", "graphs.yaml")
	before := storeDigest(t, e.dir)
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"filters", []string{"policy", "backtest", "--config", e.config, "--candidate", threshold, "--node", "billing", "--tool", "billing_refund", "--since", "2026-03-02T09:00:07Z"}, 0},
		{"until", []string{"policy", "backtest", "--config", e.config, "--candidate", threshold, "--graph", "support-bot", "--until", "2026-03-02T09:00:07Z"}, 0},
		{"other_graph", []string{"policy", "backtest", "--config", e.config, "--candidate", threshold, "--graph", "nobody"}, 0},
		{"check_unchanged", []string{"check", "--config", e.config, "--backtest", "2026-03-01"}, 0},
		{"check_tighten", []string{"check", "--config", tighten, "--backtest", "2026-03-01"}, 0},
		{"bad_format", []string{"policy", "backtest", "--config", e.config, "--candidate", tighten, "--format", "xml"}, 2},
		{"bad_since", []string{"policy", "backtest", "--config", e.config, "--candidate", tighten, "--since", "last tuesday"}, 2},
		{"bad_window", []string{"policy", "backtest", "--config", e.config, "--candidate", tighten, "--since", "2026-03-02", "--until", "2026-03-01"}, 2},
		{"broken_candidate", []string{"policy", "backtest", "--config", e.config, "--candidate", broken}, 1},
		{"no_store", []string{"policy", "backtest", "--config", nostore, "--candidate", tighten}, 2},
		{"check_bad_backtest", []string{"check", "--config", e.config, "--backtest", "soon"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runAuditCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			got := strings.ReplaceAll(out+"--- stderr\n"+errOut, elsewhere, "<elsewhere>")
			checkGolden(t, "cli_"+c.name+".txt", e.normalize(got))
		})
	}
	if after := storeDigest(t, e.dir); after != before {
		t.Errorf("the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "toolgate.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a backtest of a config without a store created one: %v", err)
	}
}

// TestBacktestBinary runs the built binary: its exit codes and output are
// the ones the in-process goldens pin.
func TestBacktestBinary(t *testing.T) {
	e := newBacktestEnv(t)
	cand := writeBacktestConfig(t, e.dir, "tighten", "tighten/graphs.yaml")
	run := func(args ...string) (int, string) {
		cmd := exec.Command(toolgateBinary(t), args...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, out := run("policy", "backtest", "--config", e.config, "--candidate", cand, "--format", "json")
	want, err := os.ReadFile(filepath.Join("testdata", "backtest", "tighten", "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || e.normalize(out) != string(want) {
		t.Errorf("policy backtest: exit %d\n%s\nwant exit 0\n%s", code, out, want)
	}
	if code, out := run("check", "--config", cand, "--backtest", "3650d"); code != 0 || !strings.Contains(out, "1 changed (1 allow -> approve)") {
		t.Errorf("check --backtest: exit %d\n%s", code, out)
	}
	if code, _ := run("check", "--config", cand, "--backtest", "yesterday"); code != 2 {
		t.Errorf("check --backtest yesterday: exit %d, want 2", code)
	}
}
