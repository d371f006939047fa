package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestE2EStdio runs `toolgate stdio` as a local agent would: credentials
// from the environment, JSON-RPC lines on stdin and stdout.
func TestE2EStdio(t *testing.T) {
	e := newE2E(t)
	e.stop(t) // the store is the stdio process's now
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(token string) (map[int]json.RawMessage, string) {
		cmd := exec.CommandContext(ctx, toolgateBinary(t), "stdio", "--config", "toolgate.yaml")
		cmd.Dir = e.Dir
		cmd.Env = append(os.Environ(), e.env...)
		cmd.Env = append(cmd.Env, "TOOLGATE_TOKEN="+token, "TOOLGATE_GRAPH=support-bot", "TOOLGATE_NODE=billing", "TOOLGATE_RUN=r1")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := []string{
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
			`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"crm_list_orders","arguments":{"customer_id":1}}}`,
			`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"crm_find_customer","arguments":{"email":"ada@example.com"}}}`,
		}
		for _, l := range lines {
			_, _ = io.WriteString(stdin, l+"\n")
		}
		got := map[int]json.RawMessage{}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for len(got) < 4 && sc.Scan() {
			var msg struct {
				ID     *int            `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &msg) != nil || msg.ID == nil {
				continue
			}
			if msg.Error != nil {
				got[*msg.ID] = msg.Error
			} else {
				got[*msg.ID] = msg.Result
			}
		}
		_ = stdin.Close()
		_ = cmd.Wait()
		return got, stderr.String()
	}

	got, stderr := run(e.BotKey)
	if !strings.Contains(string(got[2]), `"crm_list_orders"`) || strings.Contains(string(got[2]), `"crm_find_customer"`) {
		t.Errorf("tools/list for billing = %s\n%s", got[2], stderr)
	}
	if !strings.Contains(string(got[3]), `"row_count":2`) {
		t.Errorf("crm_list_orders = %s", got[3])
	}
	if !strings.Contains(string(got[4]), `"isError":true`) || !strings.Contains(string(got[4]), "forbidden") {
		t.Errorf("crm_find_customer from billing = %s", got[4])
	}

	// A bad token: nothing is listed or run.
	got, _ = run("tgk_notarealkeynotarealkeynotarealkey0000")
	if strings.Contains(string(got[2]), "crm_list_orders") || strings.Contains(string(got[3]), "row_count") {
		t.Errorf("bad token still listed or ran: list=%s call=%s", got[2], got[3])
	}
}
