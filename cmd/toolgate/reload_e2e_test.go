package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestE2EReload edits the running server's config: a valid change applies
// without a restart, a broken one is refused while the old one keeps
// serving, SIGHUP reloads, and calls in flight never see a half-loaded
// policy.
func TestE2EReload(t *testing.T) {
	e := newE2E(t)
	cfgFile := filepath.Join(e.Dir, "toolgate.yaml")
	orig, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		// A new size and mtime make the change visible to the watcher.
		if err := os.WriteFile(cfgFile, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	billingTools := func() []string {
		return dialMCPGo(t, e.URL, e.BotKey, "billing", "").list(t)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if ok() {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s\n%s", what, e.stderr.String())
	}

	// 1. A valid change: billing may now also find customers.
	widened := strings.Replace(string(orig), "billing: {allow: [crm_list_orders]}", "billing: {allow: [crm_list_orders, crm_find_customer]}", 1)
	write(widened)
	waitFor("the widened policy", func() bool {
		return slices.Equal(billingTools(), []string{"crm_find_customer", "crm_list_orders"})
	})

	// 2. A broken change is refused; the widened policy keeps serving.
	write(widened + "graphs_typo: {}\n")
	waitFor("the refusal in the log", func() bool { return strings.Contains(e.stderr.String(), "graphs_typo: unknown key") })
	if got := billingTools(); !slices.Equal(got, []string{"crm_find_customer", "crm_list_orders"}) {
		t.Fatalf("after a broken reload billing sees %v", got)
	}

	// 3. Calls in flight while the policy flips: each call is either
	// allowed with a result or forbidden, never anything else.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int32
	var seen sync.Map
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				status, out := e.callHTTP(t, e.BotKey, "billing", "crm_find_customer", `{"email":"grace@example.com"}`)
				seen.Store(status, true)
				if status != 200 && !(status == 403 && errCode(out) == "forbidden") {
					bad.Add(1)
					t.Errorf("call during reload: %d %s", status, out["_raw"])
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		write(string(orig))
		time.Sleep(2500 * time.Millisecond)
		write(widened + strings.Repeat("#\n", i+1))
		time.Sleep(2500 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if _, ok := seen.Load(200); !ok {
		t.Error("no call was allowed during the flips")
	}
	if _, ok := seen.Load(403); !ok {
		t.Error("no call was refused during the flips")
	}

	// 4. SIGHUP reloads even when the watcher would not notice.
	write(string(orig))
	waitFor("the original policy", func() bool { return slices.Equal(billingTools(), []string{"crm_list_orders"}) })
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("a SIGHUP reload", func() bool { return strings.Count(e.stderr.String(), "configuration reloaded") >= 3 })
}

// TestE2ERestartContinuesChain: on a SQLite store a restarted toolgate
// continues its audit chain ("local"), so records written before the
// restart stay linked to those after it.
func TestE2ERestartContinuesChain(t *testing.T) {
	e := newE2E(t)
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
		t.Fatalf("call: %d %s", status, out["_raw"])
	}
	e.stop(t)
	e.tgProcess = e.start(t)
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"grace@example.com"}`); status != 200 {
		t.Fatalf("call after restart: %d %s", status, out["_raw"])
	}
	e.stop(t)
	cmd := exec.Command(toolgateBinary(t), "audit", "verify", "--config", "toolgate.yaml")
	cmd.Dir, cmd.Env = e.Dir, append(os.Environ(), e.env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 records in 1 chain") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}
