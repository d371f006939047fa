package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/testenv"
)

// npmBin returns the folder of the third-party MCP servers from npm.
func npmBin(t testing.TB) string { return testenv.MCPServers(t) }

// sessionPid returns the pid of the live stdio server.
func sessionPid(t testing.TB, u *Upstream) int {
	t.Helper()
	s := u.sess.Load()
	if s == nil || s.proc == nil {
		t.Fatal("no live stdio session")
	}
	return s.proc.cmd.Process.Pid
}

// everythingTools are tools server-everything lists whatever the client.
var everythingTools = []string{"echo", "get-sum", "get-structured-content", "get-env", "trigger-long-running-operation", "get-tiny-image"}

// TestEverythingStdio runs @modelcontextprotocol/server-everything over
// stdio: its definitions compile and pin, calls and progress work, its
// environment is neutral, and when it is killed it is restarted.
func TestEverythingStdio(t *testing.T) {
	bin := npmBin(t)
	t.Setenv("TOOLGATE_TEST_SECRET", "toolgate-own-secret")
	u, ev, _ := connect(t, Config{Name: "everything", Command: []string{filepath.Join(bin, "mcp-server-everything"), "stdio"},
		Env: map[string]string{"EVERYTHING_CONFIGURED": "yes"}, Expose: ExposeAll, Timeout: 20 * time.Second}, nil)
	checkEverything(t, u)

	var defs []Definition
	for _, e := range u.Snapshot().Entries {
		defs = append(defs, *e.Definition)
	}
	pins, err := Pin(defs)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Diff(pins, defs)
	if err != nil || len(changes) != len(defs) {
		t.Fatalf("diff: %v, %d changes for %d tools", err, len(changes), len(defs))
	}
	for _, c := range changes {
		if c.Status != StatusUnchanged {
			t.Errorf("%s: %s right after pinning", c.Tool, c.Status)
		}
	}

	out, err := call(t, u, context.Background(), "everything_get-env", nil)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(textOf(t, out)), &env); err != nil {
		t.Fatal(err)
	}
	if _, leaked := env["TOOLGATE_TEST_SECRET"]; leaked || env["EVERYTHING_CONFIGURED"] != "yes" {
		t.Errorf("server-everything sees the environment %v", env)
	}

	pid := sessionPid(t, u)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "evaluated after restart", evaluated("reconnect"))
	if got := sessionPid(t, u); got == pid || alive(pid) {
		t.Fatalf("after killing %d: serving pid %d, old one alive %v", pid, got, alive(pid))
	}
	checkEverything(t, u)
}

// checkEverything checks server-everything's tools and calls a few.
func checkEverything(t *testing.T, u *Upstream) {
	t.Helper()
	snap := u.Snapshot()
	for _, e := range snap.Entries {
		if e.State != StateExposed {
			t.Errorf("server-everything tool %s is %s: %s", e.Tool, e.State, e.Reason)
		}
	}
	for _, name := range everythingTools {
		if e, ok := snap.Entry(name); !ok || e.State != StateExposed {
			t.Errorf("server-everything tool %s is missing", name)
		}
	}
	ctx := context.Background()
	out, err := call(t, u, ctx, "everything_echo", map[string]any{"message": "hi there"})
	if err != nil || textOf(t, out) != "Echo: hi there" {
		t.Fatalf("echo: %v %s", err, out.Value)
	}
	out, err = call(t, u, ctx, "everything_get-structured-content", map[string]any{"location": "Chicago"})
	if err != nil || !strings.Contains(string(out.Value), `"structuredContent":{"temperature":`) {
		t.Fatalf("structured content: %v %s", err, out.Value)
	}
	_, err = call(t, u, ctx, "everything_get-sum", map[string]any{"a": "two", "b": 3})
	wantCode(t, err, broker.CodeInvalidArguments, `"a" must be a number`)

	var mu sync.Mutex
	var steps []float64
	pctx := broker.WithProgress(ctx, func(p, total float64, _ string) {
		mu.Lock()
		steps = append(steps, p)
		mu.Unlock()
	})
	if _, err := call(t, u, pctx, "everything_trigger-long-running-operation", map[string]any{"duration": 0.2, "steps": 2}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(steps) != "[1 2]" {
		t.Errorf("progress relayed: %v, want [1 2]", steps)
	}
}

// TestEverythingStreamableHTTP runs server-everything's streamable HTTP
// transport as a separate process and calls it through the connector.
func TestEverythingStreamableHTTP(t *testing.T) {
	bin := npmBin(t)
	port := freePort(t)
	cmd := exec.Command(filepath.Join(bin, "mcp-server-everything"), "streamableHttp")
	cmd.Env = append(NeutralEnv(os.Environ()), "PORT="+strconv.Itoa(port))
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitListening(t, addr)

	u, _, _ := connect(t, Config{Name: "everything", URL: "http://" + addr + "/mcp", Expose: ExposeAll,
		Headers: map[string]string{"X-Team": "toolgate"}, Timeout: 20 * time.Second}, nil)
	checkEverything(t, u)
}

// TestFilesystemStdio runs @modelcontextprotocol/server-filesystem on a
// temporary folder: renamed and prefixed tools work inside the folder, and
// its refusal outside it is a target_error that does not leak the file.
func TestFilesystemStdio(t *testing.T) {
	bin := npmBin(t)
	root, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello from the share\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("the launch codes"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, _, _ := connect(t, Config{Name: "files", Command: []string{filepath.Join(bin, "mcp-server-filesystem"), root},
		Prefix: "fs_", Rename: map[string]string{"read_text_file": "share_read"}, Expose: ExposeAll, Timeout: 20 * time.Second}, nil)
	if e, _ := u.Snapshot().Entry("read_text_file"); e.Name != "share_read" || e.State != StateExposed {
		t.Fatalf("read_text_file = %+v", e)
	}
	ctx := context.Background()
	out, err := call(t, u, ctx, "fs_list_directory", map[string]any{"path": root})
	if err != nil || !strings.Contains(textOf(t, out), "hello.txt") {
		t.Fatalf("list_directory: %v %s", err, out.Value)
	}
	out, err = call(t, u, ctx, "share_read", map[string]any{"path": filepath.Join(root, "hello.txt")})
	if err != nil || textOf(t, out) != "hello from the share\n" {
		t.Fatalf("read_text_file: %v %s", err, out.Value)
	}
	_, err = call(t, u, ctx, "share_read", map[string]any{"path": filepath.Join(outside, "secret.txt")})
	wantCode(t, err, broker.CodeTargetError, "upstream tool share_read reported an error")
	if strings.Contains(err.Error(), "launch codes") {
		t.Fatal("the refusal carries the file outside the share")
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}
