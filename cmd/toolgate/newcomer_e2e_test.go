package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ENewcomer plays a newcomer with the real binary: toolgate dev,
// tools scaffolded from the demo database, checked against it, served from
// a copy of the dev folder, called over HTTP, then audit export and replay
// on the same instance, with no environment variable set anywhere.
func TestE2ENewcomer(t *testing.T) {
	home := t.TempDir()
	dev := startBinary(t, home, nil, "dev", "--listen", "127.0.0.1:0")
	data := filepath.Join(home, "toolgate-data")
	var keys devKeys
	if b, err := os.ReadFile(filepath.Join(data, "dev-keys.json")); err != nil || json.Unmarshal(b, &keys) != nil {
		t.Fatalf("dev keys: %v", err)
	}
	cfg, _ := os.ReadFile(filepath.Join(data, "toolgate.yaml"))
	if strings.Contains(string(cfg), "${") || strings.Contains(string(cfg), home) {
		t.Errorf("the dev config needs variables or names its folder:\n%s", cfg)
	}

	// The CLI reads the running dev instance from its folder.
	if status, out := dev.callHTTP(t, keys.Agent, "triage", "crm_find_customer", `{"email":"ada@example.com"}`, "X-Toolgate-Run", "r-dev"); status != 200 {
		t.Fatalf("dev call: %d %s", status, out["_raw"])
	}
	code, out, errOut := runToolgate(t, home, nil, "audit", "export", "--run", "r-dev")
	if code != 0 || !strings.Contains(out, `"tool":"crm_find_customer"`) || !strings.Contains(errOut, "using toolgate-data/toolgate.yaml") {
		t.Fatalf("audit export on the dev instance: exit %d\n%s%s", code, out, errOut)
	}

	// Scaffold from the demo database into the instance's tools folder.
	code, out, errOut = runToolgate(t, home, nil, "tools", "scaffold", "--target", "demo", "--tables", "customers,orders", "--out", "toolgate-data/tools")
	if code != 0 || !strings.Contains(out, "wrote toolgate-data/tools/demo_get_customers.json") {
		t.Fatalf("scaffold: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "4242424242424242") || strings.Contains(out, "ada@example.com") {
		t.Errorf("scaffold printed a sampled value:\n%s", out)
	}
	code, out, errOut = runToolgate(t, home, nil, "tools", "scaffold", "--target", "demo", "--tables", "customers", "--out", "toolgate-data/tools")
	if code == 0 || !strings.Contains(out, "kept") {
		t.Errorf("a second scaffold overwrote the drafts: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runToolgate(t, home, nil, "check", "--connect")
	if code != 0 || !strings.Contains(out, "ok (8 tools") {
		t.Fatalf("check --connect of the drafts: exit %d\n%s%s", code, out, errOut)
	}
	dev.stop(t)

	// A copy of the folder, with a node allowed the new tools, serves them.
	elsewhere := t.TempDir()
	copyTree(t, data, filepath.Join(elsewhere, "toolgate-data"))
	copied := filepath.Join(elsewhere, "toolgate-data", "toolgate.yaml")
	b, _ := os.ReadFile(copied)
	edited := strings.Replace(string(b), "allow: [crm_*]", "allow: [crm_*, demo_get_customers]", 1)
	if edited == string(b) {
		t.Fatal("the dev config's triage allow list moved; update the test")
	}
	if err := os.WriteFile(copied, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startBinary(t, elsewhere, nil, "serve", "--config", copied, "--listen", "127.0.0.1:0")
	status, res := srv.callHTTP(t, keys.Agent, "triage", "demo_get_customers", `{"id": 1}`, "X-Toolgate-Run", "r-new")
	if status != 200 || !strings.Contains(res["_raw"].(string), `"card_number":"************4242"`) || strings.Contains(res["_raw"].(string), "ada@example.com") {
		t.Fatalf("scaffolded tool: %d %s", status, res["_raw"])
	}
	code, out, errOut = runToolgate(t, elsewhere, nil, "audit", "export", "--run", "r-new")
	if code != 0 || !strings.Contains(out, `"tool":"demo_get_customers"`) {
		t.Fatalf("audit export of the copy: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runToolgate(t, elsewhere, nil, "replay", "r-new")
	if code != 0 || !strings.Contains(out, "demo_get_customers") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = runToolgate(t, elsewhere, nil, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}

// TestE2EArgumentProblemsOnBothDoors: a call with several bad arguments is
// refused with every problem and its field, over HTTP and over MCP.
func TestE2EArgumentProblemsOnBothDoors(t *testing.T) {
	data := t.TempDir()
	s := startBinary(t, data, nil, "dev", "--listen", "127.0.0.1:0", "--data", data)
	var keys devKeys
	b, _ := os.ReadFile(filepath.Join(data, "dev-keys.json"))
	_ = json.Unmarshal(b, &keys)
	args := `{"order_id": 0, "amount": "lots", "reason": "x", "extra": true}`
	status, out := s.callHTTP(t, keys.Agent, "billing", "billing_refund", args)
	e, _ := out["error"].(map[string]any)
	probs, _ := e["problems"].([]any)
	if status != 400 || errCode(out) != "invalid_arguments" || len(probs) != 4 || !strings.HasPrefix(e["message"].(string), "4 problems with the arguments") {
		t.Fatalf("HTTP: %d %s", status, out["_raw"])
	}
	fields := map[string]bool{}
	for _, p := range probs {
		fields[p.(map[string]any)["field"].(string)] = true
	}
	for _, f := range []string{"/amount", "/extra", "/order_id", "/reason"} {
		if !fields[f] {
			t.Errorf("HTTP problems lack %s: %s", f, out["_raw"])
		}
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(args), &m)
	isErr, res, text := dialMCPGo(t, s.URL, keys.Agent, "billing", "").call(t, "billing_refund", m)
	me, _ := res["error"].(map[string]any)
	mp, _ := me["problems"].([]any)
	if !isErr || len(mp) != 4 || !strings.Contains(text, "4 problems with the arguments") {
		t.Fatalf("MCP: isError %v %v %s", isErr, res, text)
	}
	if strings.Contains(text, "lots") || strings.Contains(out["_raw"].(string), "lots") {
		t.Error("an argument value is echoed")
	}
}
