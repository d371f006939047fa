package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/examples/quickstart"
)

var update = flag.Bool("update", false, "rewrite golden files")

// quickstartConfig writes the quickstart into a temp dir and sets the
// variables `toolgate dev` would supply.
func quickstartConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := copyFS(quickstart.Files, dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOOLGATE_DEV_DATA", dir)
	t.Setenv("TOOLGATE_DEV_AGENT_KEY_SHA256", strings.Repeat("a", 64))
	t.Setenv("TOOLGATE_DEV_APPROVER_KEY_SHA256", strings.Repeat("b", 64))
	t.Setenv("TOOLGATE_DEV_MASK_KEY", "0123456789abcdef0123")
	return filepath.Join(dir, "toolgate.yaml")
}

// runCLI runs the root command in-process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func TestPolicyExplainGolden(t *testing.T) {
	cfg := quickstartConfig(t)
	for _, c := range []struct{ name, node, tool, args string }{
		{"allow", "billing", "billing_refund", `{"order_id":1,"amount":20,"reason":"broken"}`},
		{"approve", "billing", "billing_refund", `{"order_id":1,"amount":250,"reason":"broken"}`},
		{"deny_over_limit", "billing", "billing_refund", `{"order_id":1,"amount":9000,"reason":"broken"}`},
		{"default_deny_other_node", "triage", "billing_refund", `{"order_id":1,"amount":20,"reason":"broken"}`},
		{"bad_args", "triage", "crm_find_customer", `{"email":42}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, err := runCLI(t, "policy", "explain", "--config", cfg, "--graph", "support-bot", "--node", c.node, "--tool", c.tool, "--args", c.args, "--principal", "key:support-bot", "--run", "r1")
			if err != nil {
				t.Fatalf("explain: %v\n%s", err, errOut)
			}
			// The policy version hashes the config; keep goldens stable.
			lines := strings.Split(out, "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "version:") {
					lines[i] = "version:  <hash>"
				}
			}
			out = strings.Join(lines, "\n")
			golden := filepath.Join("testdata", "explain", c.name+".txt")
			if *update {
				_ = os.WriteFile(golden, []byte(out), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("golden (run with -update): %v", err)
			}
			if out != string(want) {
				t.Errorf("explain differs\n--- got\n%s\n--- want\n%s", out, want)
			}
		})
	}
}

func TestPolicyExplainRefusals(t *testing.T) {
	cfg := quickstartConfig(t)
	for name, args := range map[string][]string{
		"unknown tool": {"policy", "explain", "--config", cfg, "--graph", "support-bot", "--node", "triage", "--tool", "nope"},
		"bad args":     {"policy", "explain", "--config", cfg, "--graph", "support-bot", "--node", "triage", "--tool", "crm_find_customer", "--args", "[1]"},
		"no config":    {"policy", "explain", "--config", "/nonexistent.yaml", "--graph", "g", "--node", "n", "--tool", "t"},
	} {
		_, stderr, err := runCLI(t, args...)
		if err == nil || stderr == "" {
			t.Errorf("%s: err=%v stderr=%q", name, err, stderr)
		}
	}
}

// TestDockerComposeConfigChecks keeps the deployment example's config
// valid: `toolgate check` must accept it with its environment set.
func TestDockerComposeConfigChecks(t *testing.T) {
	for k, v := range map[string]string{
		"HOSTNAME": "toolgate-a", "TOOLGATE_STORE_DSN": "postgres://toolgate@127.0.0.1:1/toolgate",
		"AGENT_KEY_SHA256": strings.Repeat("a", 64), "AUDITOR_KEY_SHA256": strings.Repeat("b", 64),
		"CRM_DSN": "postgres://crm@127.0.0.1:1/crm", "TOOLGATE_MASK_KEY": "0123456789abcdef01",
		"TOOLGATE_CHECKPOINT_KEY": "0123456789abcdef01",
	} {
		t.Setenv(k, v)
	}
	out, errOut, err := runCLI(t, "check", "--config", "../../examples/docker-compose/toolgate.yaml")
	if err != nil || !strings.Contains(out, ": ok (") {
		t.Fatalf("check: %v\n%s%s", err, out, errOut)
	}
}
