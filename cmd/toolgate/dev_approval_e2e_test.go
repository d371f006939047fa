package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EDevRefundApproval is the quickstart's approval story as a user
// runs it: in `toolgate dev`, a refund over the threshold is held, the
// requester cannot approve it, `toolgate approvals approve` with the
// approver key releases it, and the refund runs exactly once however often
// the agent repeats the call.
func TestE2EDevRefundApproval(t *testing.T) {
	data := t.TempDir()
	s := startBinary(t, data, nil, "dev", "--listen", "127.0.0.1:0", "--data", data)
	var keys devKeys
	b, err := os.ReadFile(filepath.Join(data, "dev-keys.json"))
	if err != nil || json.Unmarshal(b, &keys) != nil {
		t.Fatalf("dev keys: %v", err)
	}
	refund := `{"order_id":104,"amount":250,"reason":"arrived broken"}`
	run := []string{"X-Toolgate-Run", "run-approval"}

	status, out := s.callHTTP(t, keys.Agent, "billing", "billing_refund", refund, run...)
	if status != 202 || out["status"] != "approval_pending" {
		t.Fatalf("first call: %d %s", status, out["_raw"])
	}
	id, _ := out["approval_id"].(string)
	if !strings.Contains(out["_raw"].(string), "NOT performed") {
		t.Errorf("pending answer does not say the action was not performed: %s", out["_raw"])
	}
	if n := refunds(t, data, 104); n != 0 {
		t.Fatalf("a pending refund ran: %d rows", n)
	}

	// The requester cannot approve its own call.
	code, _, stderr := runClient(t, s.URL, keys.Agent, "approvals", "approve", id, "--reason", "self")
	if code == 0 || !strings.Contains(stderr, "forbidden") {
		t.Fatalf("self-approval: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runClient(t, s.URL, keys.Approver, "approvals", "list")
	if code != 0 || !strings.Contains(stdout, id) {
		t.Fatalf("approvals list: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runClient(t, s.URL, keys.Approver, "approvals", "approve", id, "--reason", "photo checked")
	if code != 0 {
		t.Fatalf("approve: exit %d\n%s%s", code, stdout, stderr)
	}

	var first string
	for i := 0; i < 3; i++ {
		status, out = s.callHTTP(t, keys.Agent, "billing", "billing_refund", refund, run...)
		if status != 200 {
			t.Fatalf("repeat %d: %d %s", i, status, out["_raw"])
		}
		res, _ := json.Marshal(out["result"])
		if i == 0 {
			first = string(res)
		} else if string(res) != first {
			t.Errorf("repeat %d answered %s, want the recorded %s", i, res, first)
		}
	}
	if n := refunds(t, data, 104); n != 1 {
		t.Fatalf("refund rows for order 104: %d, want exactly 1", n)
	}
	// Changed arguments never ride on the old approval.
	status, out = s.callHTTP(t, keys.Agent, "billing", "billing_refund", `{"order_id":104,"amount":260,"reason":"arrived broken"}`, run...)
	if status != 202 || out["approval_id"] == id {
		t.Errorf("changed amount: %d %s", status, out["_raw"])
	}
	if n := refunds(t, data, 104); n != 1 {
		t.Errorf("refund rows after changed arguments: %d", n)
	}
}

// refunds counts the demo database's refunds of one order.
func refunds(t *testing.T, data string, order int) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "demo.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM refunds WHERE order_id = ?", order).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
