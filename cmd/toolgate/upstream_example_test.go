package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/internal/testenv"
)

// TestUpstreamExample keeps examples/upstream-mcp and the README true: its
// config loads, its tools.lock pins exactly what the npm versions it names
// serve (tools diff finds no change), and through the real binary a file
// in share/ is read with its card masked while the deny rule, a tool left
// out of the node's allow list and an unpinned name are refused.
func TestUpstreamExample(t *testing.T) {
	bin := testenv.MCPServers(t)
	dir := t.TempDir()
	copyExample(t, "../../examples/upstream-mcp", dir)
	version := pinnedServerVersion(t)
	port := startEverythingHTTP(t, bin)

	cfgPath := filepath.Join(dir, "toolgate.yaml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, r := range [][2]string{
		{"listen: 127.0.0.1:8080", "listen: 127.0.0.1:0"},
		{`[npx, -y, "@modelcontextprotocol/server-filesystem@` + version + `", ./share]`, `["` + filepath.Join(bin, "mcp-server-filesystem") + `", ./share]`},
		{"url: http://127.0.0.1:3001/mcp", "url: http://127.0.0.1:" + strconv.Itoa(port) + "/mcp"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the example's toolgate.yaml no longer says %s (the README and this test follow it)", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	agent, agentSum, _ := auth.NewAPIKey()
	_, reviewerSum, _ := auth.NewAPIKey()
	env := []string{"AGENT_KEY_SHA256=" + agentSum, "REVIEWER_KEY_SHA256=" + reviewerSum}

	if code, out, errOut := runToolgate(t, dir, env, "tools", "diff", "--config", "toolgate.yaml"); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("tools diff on the example: exit %d\n%s%s", code, out, errOut)
	}
	tg := startBinary(t, dir, env, "serve", "--config", "toolgate.yaml")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("toolgate's log:\n%s", tg.stderr.String())
		}
	})
	code, out := tg.callHTTP(t, agent, "research", "fs_read_text_file", `{"path":"welcome.txt"}`)
	if text := out["_raw"].(string); code != 200 || !strings.Contains(text, "Welcome") || strings.Contains(text, "4242 4242 4242 4242") {
		t.Errorf("research reads welcome.txt: %d %s", code, text)
	}
	for _, c := range []struct{ node, tool, args, code string }{
		{"research", "fs_read_text_file", `{"path":"private/notes.txt"}`, "forbidden"},
		{"research", "fs_write_file", `{"path":"x.txt","content":"x"}`, "forbidden"},
		{"research", "everything_no-such-tool", `{}`, "unknown_tool"},
	} {
		if _, out := tg.callHTTP(t, agent, c.node, c.tool, c.args); errCode(out) != c.code {
			t.Errorf("%s calls %s: %v, want %s", c.node, c.tool, out["_raw"], c.code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "share", "x.txt")); err == nil {
		t.Error("a refused write ran")
	}
	if code, out := tg.callHTTP(t, agent, "research", "everything_get-sum", `{"a":2,"b":3}`); code != 200 || !strings.Contains(out["_raw"].(string), "5") {
		t.Errorf("everything over streamable HTTP: %d %v", code, out["_raw"])
	}
}

// pinnedServerVersion is the version of the reference MCP servers the
// tests install (internal/testenv/mcpnpm), which the example names too.
func pinnedServerVersion(t *testing.T) string {
	raw, err := os.ReadFile("../../internal/testenv/mcpnpm/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	v := pkg.Dependencies["@modelcontextprotocol/server-filesystem"]
	if v == "" || v != pkg.Dependencies["@modelcontextprotocol/server-everything"] {
		t.Fatalf("the pinned servers' versions: %v", pkg.Dependencies)
	}
	return v
}

// copyExample copies the example's config, lock and folders (not its
// database) into dir.
func copyExample(t *testing.T, from, dir string) {
	t.Helper()
	for _, f := range []string{"toolgate.yaml", "tools.lock", "share/welcome.txt", "tools/.gitkeep"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startEverythingHTTP runs server-everything's streamable HTTP transport on
// a free loopback port, as the README's example does on 3001.
func startEverythingHTTP(t *testing.T, bin string) int {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(filepath.Join(bin, "mcp-server-everything"), "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	within(t, 30*time.Second, "server-everything listens", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}
