package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/connectors/mcp"
)

const upstreamCheckConfig = `store: {driver: sqlite, path: ./tg.db}
auth:
  api_keys: [{name: bot, sha256: "` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `"}]
targets:
  demo: {kind: sqlite, path: ./demo.db}
  files: {kind: mcp, url: "http://%s/mcp"}
  both: {kind: mcp, url: "http://%s/mcp", command: [srv]}
  hdr: {kind: mcp, command: [srv], headers: {X-Team: ops}}
  ren:
    kind: mcp
    command: [srv]
    rename: {a: same, b: same}
    tools: {t: {mask: {x: hash}}}
graphs:
  g:
    principals: ["key:bot"]
    nodes:
      n:
        allow: ["files_*", files_read, files_raed]
        rules:
          - {tool: files_read, when: "args.path.startsWith('/etc')", effect: deny}
`

// TestCheckUpstreamConfig: check, without connecting to anything, reports
// every problem of mcp targets at its line, a pinned upstream tool whose
// catalog name a declared tool has, and an exact upstream tool name that
// the tools lock does not pin; a glob and a pinned name load.
func TestCheckUpstreamConfig(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "tools"), 0o755)
	addr, dials := countingListener(t)
	text := fmt.Sprintf(upstreamCheckConfig, addr, addr)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("toolgate.yaml", text)
	pins, err := mcp.Pin([]mcp.Definition{{Tool: "read", InputSchema: json.RawMessage(`{"type":"object"}`)}, {Tool: "list", InputSchema: json.RawMessage(`{"type":"object"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	lock := &mcp.Lock{}
	lock.Set("files", pins)
	if err := lock.WriteFile(filepath.Join(dir, "tools.lock")); err != nil {
		t.Fatal(err)
	}
	write("tools/files_list.json", `{"name": "files_list", "target": "demo", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT 1"}}`)
	cfg := filepath.Join(dir, "toolgate.yaml")
	_, stderr, err := runCLI(t, "check", "--config", cfg)
	if err == nil {
		t.Fatal("check passed")
	}
	for _, want := range []string{
		fmt.Sprintf(`%s:%d: targets.both: set url or command, not both`, cfg, lineOf(t, text, "both:")),
		fmt.Sprintf(`%s:%d: targets.hdr.headers: headers apply to a streamable HTTP server`, cfg, lineOf(t, text, "hdr:")),
		fmt.Sprintf(`%s:%d: targets.ren.rename.b: rename "a" and "b" both map to "same"`, cfg, lineOf(t, text, "rename:")),
		fmt.Sprintf(`%s:%d: targets.ren.tools.t: `, cfg, lineOf(t, text, "tools: {t:")),
		fmt.Sprintf(`%s:%d: targets.files: upstream tool "list" is pinned under the catalog name "files_list", which the tool declared in`, cfg, lineOf(t, text, "files:")),
		fmt.Sprintf(`%s:%d: graphs.g.nodes.n.allow[2]: "files_raed" matches no tool in the catalog`, cfg, lineOf(t, text, "files_raed")),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Count(stderr, "\n") != 7 {
		t.Errorf("want 6 problems and the summary:\n%s", stderr)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("check without --connect connected to an upstream %d times", n)
	}

	write("tools.lock", "{not json")
	if _, stderr, _ = runCLI(t, "check", "--config", cfg); !strings.Contains(stderr, cfg+": tools_lock: the tools lock is not valid") {
		t.Errorf("an unreadable lock:\n%s", stderr)
	}
}
