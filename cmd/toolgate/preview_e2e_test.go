package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// previewConfig holds crm_retier for approval by key:other, on a writable
// crm target.
const previewConfig = `listen: 127.0.0.1:0
store: {driver: sqlite, path: ./toolgate.db}
auth:
  api_keys:
    - {name: bot, sha256: "${E2E_BOT_SHA256}"}
    - {name: other, sha256: "${E2E_OTHER_SHA256}"}
targets:
  crm: {kind: postgres, dsn: "${E2E_CRM_DSN}", statement_timeout: 5s, preview_timeout: 2s, preview_lock_timeout: 500ms}
  api: {kind: http, base_url: "${E2E_API_URL}", timeout: 3s}
tools_dir: ./tools
approvals: {wait: 1s, preview: {max_rows: 5}}
graphs:
  support-bot:
    principals: ["key:bot"]
    nodes:
      billing:
        allow: [crm_retier]
        rules: [{tool: crm_retier, effect: approve, approvers: ["key:other"]}]
`

const retierTool = `{
  "name": "crm_retier",
  "description": "Move every promo member of one tier to another.",
  "target": "crm",
  "input_schema": {"type": "object", "properties": {"from_tier": {"type": "string"}, "to_tier": {"type": "string"}},
                   "required": ["from_tier", "to_tier"], "additionalProperties": false},
  "sql": {"statement": "UPDATE promo SET tier = $2, moves = moves + 1 WHERE tier = $1", "args": ["from_tier", "to_tier"]},
  "mask": {"rows.#.card": "last4"}
}`

// TestE2EApprovalPreview drives a held write through the real binary: the
// request shows what it would change (API and CLI, masked), it is approved
// with the CLI, rows are added before the run so the run is refused
// (approval_stale) and changes nothing; asked again, it shows the new
// count, and once approved runs exactly once.
func TestE2EApprovalPreview(t *testing.T) {
	e := prepareE2E(t, func(string) string { return previewConfig })
	if err := os.RemoveAll(filepath.Join(e.dir, "tools")); err != nil || os.Mkdir(filepath.Join(e.dir, "tools"), 0o755) != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "tools", "crm_retier.json"), []byte(retierTool), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := pgx.Connect(ctx, e.CRMDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE promo (id int PRIMARY KEY, email text NOT NULL, card text NOT NULL, tier text NOT NULL, moves int NOT NULL DEFAULT 0);
		INSERT INTO promo (id, email, card, tier) VALUES (1, 'ada@example.com', '4242424242424242', 'gold'),
			(2, 'grace@example.com', '5555555555554444', 'gold'), (3, 'alan@example.com', '378282246310005', 'silver')`); err != nil {
		t.Fatal(err)
	}
	e.tgProcess = e.start(t)
	args := `{"from_tier":"gold","to_tier":"platinum"}`
	run := []string{"X-Toolgate-Run", "promo-run"}

	id := e.heldRetier(t, args, run)
	preview := e.approvalPreview(t, id)
	sample, _ := json.Marshal(preview["sample"])
	if preview["rows_affected"] != 2.0 || preview["image"] != "after" || !strings.Contains(string(sample), `"card":"************4242"`) ||
		!strings.Contains(string(sample), `"tier":"platinum"`) || strings.Contains(string(sample), "4242424242424242") {
		t.Fatalf("GET /v1/approvals/%s preview = %v", id, preview)
	}
	code, out, errOut := runClient(t, e.URL, e.OtherKey, "approvals", "show", id)
	if code != 0 || !strings.Contains(out, "rows affected: 2; below: 2 rows as they would be after the change") ||
		!strings.Contains(out, "************4242") || !strings.Contains(out, "platinum") || strings.Contains(out, "4242424242424242") {
		t.Fatalf("approvals show: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runClient(t, e.URL, e.OtherKey, "approvals", "list")
	if code != 0 || !strings.Contains(out, "ROWS") || !containsRow(out, id, "crm_retier", "2") {
		t.Fatalf("approvals list:\n%s", out)
	}
	if code, out, errOut := runClient(t, e.URL, e.OtherKey, "approvals", "approve", id, "--reason", "two members, as shown"); code != 0 {
		t.Fatalf("approvals approve: exit %d %s%s", code, out, errOut)
	}

	// Another member joins the tier before the agent calls again.
	if _, err := db.Exec(ctx, `INSERT INTO promo (id, email, card, tier) VALUES (4, 'bo@example.com', '4000056655665556', 'gold')`); err != nil {
		t.Fatal(err)
	}
	status, body := e.callHTTP(t, e.BotKey, "billing", "crm_retier", args, run...)
	if status != 409 || errCode(body) != "approval_stale" ||
		!strings.Contains(body["_raw"].(string), "the data changed since it was approved: 2 rows previewed, 3 now; nothing was changed; ask again") {
		t.Fatalf("run on changed data: %d %s", status, body["_raw"])
	}
	if moved := countTier(t, db, "platinum"); moved != 0 {
		t.Fatalf("the refused run moved %d members", moved)
	}

	// Asked again: a new request with the new count, approved, runs once.
	id2 := e.heldRetier(t, args, run)
	if id2 == id || e.approvalPreview(t, id2)["rows_affected"] != 3.0 {
		t.Fatalf("asked again: %s, preview %v", id2, e.approvalPreview(t, id2))
	}
	if code, out, errOut := runClient(t, e.URL, e.OtherKey, "approvals", "approve", id2); code != 0 {
		t.Fatalf("approvals approve: exit %d %s%s", code, out, errOut)
	}
	for range 2 {
		status, body := e.callHTTP(t, e.BotKey, "billing", "crm_retier", args, run...)
		if status != 200 || !strings.Contains(body["_raw"].(string), `"row_count":3`) {
			t.Fatalf("approved run: %d %s", status, body["_raw"])
		}
	}
	var moves int
	if err := db.QueryRow(ctx, "SELECT sum(moves) FROM promo").Scan(&moves); err != nil || moves != 3 || countTier(t, db, "platinum") != 3 {
		t.Fatalf("after the approved run and a repeat: %d moves, %v", moves, err)
	}
	code, out, _ = runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", "promo-run", "--kind", "tool_call")
	if code != 0 || strings.Count(out, `"error_code":"approval_stale"`) != 1 {
		t.Fatalf("audit export: exit %d\n%s", code, out)
	}
}

// heldRetier calls crm_retier and returns the approval it is held on.
func (e *e2eEnv) heldRetier(t *testing.T, args string, headers []string) string {
	t.Helper()
	status, body := e.callHTTP(t, e.BotKey, "billing", "crm_retier", args, headers...)
	id, _ := body["approval_id"].(string)
	if status != 202 || id == "" {
		t.Fatalf("held call: %d %s", status, body["_raw"])
	}
	return id
}

// approvalPreview is the preview of GET /v1/approvals/{id}, read by the
// approver.
func (e *e2eEnv) approvalPreview(t *testing.T, id string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/v1/approvals/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+e.OtherKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var info struct {
		Preview map[string]any `json:"preview"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &info) != nil || info.Preview == nil {
		t.Fatalf("GET /v1/approvals/%s: %d %s", id, resp.StatusCode, b)
	}
	return info.Preview
}

func countTier(t *testing.T, db *pgx.Conn, tier string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM promo WHERE tier = $1", tier).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// containsRow reports whether a line of a table holds every cell.
func containsRow(table string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		all := true
		for _, c := range cells {
			found := false
			for _, f := range fields {
				found = found || f == c
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

// TestE2EPassthroughWritePreview: a passthrough write held for approval is
// previewed as the grant's own database role (the after-image's name is
// that role, not the admin login), masked by the target's column rules and
// the detectors, changes nothing, and runs once approved.
func TestE2EPassthroughWritePreview(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed")
	}
	port := freePort(t)
	e := prepareE2E(t, func(y string) string {
		y = strings.Replace(y, "read_only: true, max_rows: 100, statement_timeout: 5s}", "max_rows: 100, statement_timeout: 5s, mask: {customers.card_number: last4}}", 1)
		y = strings.Replace(y, "      billing: {allow: [crm_list_orders]}",
			"      billing:\n        allow: [crm_list_orders]\n        passthrough:\n"+
				"          crm:\n            statements: [read, write]\n            tables: [customers]\n"+
				"            rules: [{when: \"statement.class == 'write'\", effect: approve, approvers: [\"key:other\"]}]", 1)
		return y + fmt.Sprintf("approvals: {wait: 1s}\npassthrough:\n  postgres: [{listen: \"127.0.0.1:%d\", target: crm}]\n", port)
	})
	e.tgProcess = e.start(t)
	grant := mintGrant(t, e, "pt-preview", "billing")
	url := pgURL(grant, "billing", port)
	const stmt = "UPDATE customers SET name = current_user WHERE id IN (1, 2)"

	_, stderr, err := runPsql(url, stmt)
	i := strings.Index(stderr, "ap_")
	if err == nil || !strings.Contains(stderr, "NOT run") || i < 0 {
		t.Fatalf("held write: err=%v stderr=%q", err, stderr)
	}
	id := strings.FieldsFunc(stderr[i:], func(r rune) bool { return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z') })[0]
	code, out, errOut := runClient(t, e.URL, e.OtherKey, "approvals", "show", id)
	if code != 0 || !strings.Contains(out, "rows affected: 2; below: 2 rows as they would be after the change") ||
		!strings.Contains(out, "************4242") || !strings.Contains(out, "toolgate_pt_") ||
		strings.Contains(out, "4242424242424242") || strings.Contains(out, "123-45-6789") {
		t.Fatalf("approvals show: exit %d\n%s%s", code, out, errOut)
	}
	ctx := context.Background()
	db, err := pgx.Connect(ctx, e.CRMDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var renamed int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM customers WHERE name LIKE 'toolgate_pt_%'").Scan(&renamed); err != nil || renamed != 0 {
		t.Fatalf("the preview changed %d rows: %v", renamed, err)
	}
	if code, out, errOut := runClient(t, e.URL, e.OtherKey, "approvals", "approve", id); code != 0 {
		t.Fatalf("approve: exit %d %s%s", code, out, errOut)
	}
	if out, stderr, err := runPsql(url, stmt); err != nil || out != "UPDATE 2" {
		t.Fatalf("approved write: %q %s %v", out, stderr, err)
	}
	if err := db.QueryRow(ctx, "SELECT count(*) FROM customers WHERE name LIKE 'toolgate_pt_%'").Scan(&renamed); err != nil || renamed != 2 {
		t.Fatalf("the approved write changed %d rows: %v", renamed, err)
	}
}
