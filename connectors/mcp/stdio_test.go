package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// stdioConfig runs this test binary as an mcp-go stdio server.
func stdioConfig(t testing.TB) Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{Name: "fx", Command: []string{exe}, Expose: ExposeAll,
		Env: map[string]string{serveStdioEnv: "1", "FX_CONFIGURED": "configured-value", "FX_TOKEN": "tok-9f8e7d6c5b4a"}}
}

// textOf returns the first text block of an Output.
func textOf(t testing.TB, out broker.Output) string {
	t.Helper()
	var doc struct {
		Content []struct{ Text string } `json:"content"`
	}
	if err := json.Unmarshal(out.Value, &doc); err != nil || len(doc.Content) == 0 {
		t.Fatalf("output %s has no text", out.Value)
	}
	return doc.Content[0].Text
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z' && data[i+2] != 'X'
}

func pidOf(t testing.TB, u *Upstream, tool string) int {
	t.Helper()
	out, err := call(t, u, context.Background(), tool, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(textOf(t, out))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestStdioOversizedLine: a response line over max_result_bytes is never
// handed to mcp-go; its call fails with target_error and the same process
// serves the next call.
func TestStdioOversizedLine(t *testing.T) {
	cfg := stdioConfig(t)
	cfg.MaxResultBytes = 64 << 10
	u, ev, _ := connect(t, cfg, nil)
	pid := pidOf(t, u, "fx_pid")
	for _, withProgress := range []bool{false, true} {
		_, err := call(t, u, context.Background(), "fx_big", map[string]any{"n": 1 << 20, "progress": withProgress})
		wantCode(t, err, broker.CodeTargetError, "exceeds max_result_bytes (65536 bytes)")
		if f := fieldOf(err); f != "targets.fx.max_result_bytes" {
			t.Errorf("field %q, want targets.fx.max_result_bytes", f)
		}
		if got := pidOf(t, u, "fx_pid"); got != pid {
			t.Fatalf("the server was restarted (pid %d, then %d)", pid, got)
		}
	}
	if n := ev.count(EventConnected); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}

// TestStdioSupervision: a stdio server that dies is reaped, restarted and
// re-initialised, and calls work again.
func TestStdioSupervision(t *testing.T) {
	u, ev, _ := connect(t, stdioConfig(t), nil)
	first := pidOf(t, u, "fx_pid")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "disconnected", isKind(EventDisconnected))
	ev.wait(t, "evaluated after restart", evaluated("reconnect"))
	second := pidOf(t, u, "fx_pid")
	if second == first {
		t.Fatalf("the same process %d answered after it was killed", first)
	}
	if alive(first) {
		t.Errorf("the killed server %d was not reaped", first)
	}
}

// TestStdioEnvironmentAndStderr: the server sees only a neutral
// environment plus its configured env, and its stderr is logged with
// configured secrets removed.
func TestStdioEnvironmentAndStderr(t *testing.T) {
	t.Setenv("TOOLGATE_TEST_SECRET", "toolgate-own-secret")
	u, _, logs := connect(t, stdioConfig(t), nil)
	out, err := call(t, u, context.Background(), "fx_env", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := textOf(t, out)
	if strings.Contains(env, "TOOLGATE_TEST_SECRET") || !strings.Contains(env, "FX_CONFIGURED=configured-value") || !strings.Contains(env, "PATH=") {
		t.Errorf("the server's environment:\n%s", env)
	}
	if _, err := call(t, u, context.Background(), "fx_stderr", map[string]any{"text": "warning: token tok-9f8e7d6c5b4a rejected"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && logs.FilterMessage("upstream stderr").FilterFieldKey("line").Len() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	var lines []string
	for _, e := range logs.FilterMessage("upstream stderr").All() {
		lines = append(lines, e.ContextMap()["line"].(string))
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "warning: token [redacted] rejected") || strings.Contains(joined, "tok-9f8e7d6c5b4a") {
		t.Errorf("stderr logged as %q", joined)
	}
}

// TestCloseLeavesNothing: a restart and Close each end the server's whole
// process group, and every goroutine the connector started ends, over
// stdio and HTTP alike.
func TestCloseLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	ev := newEvents()
	opt, _ := testOptions(ev)
	u, err := New(stdioConfig(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, firstChild := pidOf(t, u, "fx_pid"), pidOf(t, u, "fx_spawn")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "evaluated after restart", evaluated("reconnect"))
	if alive(first) || alive(firstChild) {
		t.Errorf("after a restart: old server alive %v, its child alive %v", alive(first), alive(firstChild))
	}
	second, secondChild := pidOf(t, u, "fx_pid"), pidOf(t, u, "fx_spawn")
	for i := 0; i < 20; i++ {
		if _, err := call(t, u, context.Background(), "fx_echo", map[string]any{"text": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = call(t, u, context.Background(), "fx_big", map[string]any{"n": 8 << 20})
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(second) || alive(secondChild) {
		t.Errorf("after Close: server alive %v, its child alive %v", alive(second), alive(secondChild))
	}

	_, h := serveFixture(t)
	hu, err := New(Config{Name: "fx", URL: h.url(), Expose: ExposeAll}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := hu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := call(t, hu, context.Background(), "fx_echo", map[string]any{"text": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	_ = hu.Close()
	h.stop()
	checkGoroutines(t, base)
}

// checkGoroutines waits for the goroutine count to return to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+1 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after Close\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestStdioMissingProgram: a server that cannot start is reported, and
// its calls are refused as target_unavailable.
func TestStdioMissingProgram(t *testing.T) {
	u, err := New(Config{Name: "gone", Command: []string{"/nonexistent/mcp-server"}, Expose: ExposeAll}, Options{Compile: compile})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	err = u.Start(context.Background())
	if err == nil || err.Error() != "start /nonexistent/mcp-server: no such file or directory" {
		t.Fatalf("Start = %v", err)
	}
	_, err = rawCall(u, "echo", `{}`)
	wantCode(t, err, broker.CodeTargetUnavailable, "has not been reached yet")
}
