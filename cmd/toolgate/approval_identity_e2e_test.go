package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EApprovalIdentity drives the real binary through the attacks of a
// person who is both an operator of the graph and an approver:
//
//   - she mints a grant, calls a gated tool with its token and tries to
//     approve the request herself, over HTTP and the CLI, under another
//     letter case of her email: refused, the request names her as who
//     asked; another approver's approval lets the call run once;
//   - another principal of the graph repeating the approved call gets its
//     own new request and nothing runs;
//   - a reload that changes the governing rule makes an unused approval
//     stale (409 approval_stale, nothing runs) and the next call asks again.
func TestE2EApprovalIdentity(t *testing.T) {
	e := newIdentityE2E(t)
	verified := func(email string, groups ...string) string {
		return e.idp.Token(map[string]any{"sub": "sub-" + strings.ToLower(email), "email": email, "email_verified": true, "groups": groups})
	}
	ana := verified("Ana@Example.COM", "langgraph-operators", "finance")
	anaLower := verified("ana@example.com", "finance")
	ben := verified("ben@example.com", "finance")
	args := `{"email":"grace@example.com"}`

	_, tokens := e.mintWith(t, ana, `{"graph":"support-bot","run_id":"self-run","nodes":["review"],"ttl":"10m"}`)
	grant := tokens["review"]
	ran := e.okCalls(t)
	status, out := e.callHTTP(t, grant, "", "crm_find_customer", args)
	if status != 202 || out["status"] != "approval_pending" {
		t.Fatalf("gated call with the grant: %d %s", status, out["_raw"])
	}
	id := out["approval_id"].(string)

	// Who asked is Ana, the grant's minter, in one normal form.
	st, info, _ := e.request(t, "GET", "/v1/approvals/"+id, "", "Authorization", "Bearer "+ben)
	if via, _ := info["via"].(string); st != 200 || info["principal"] != "user:ana@example.com" || !strings.HasPrefix(via, "grant:gr_") {
		t.Fatalf("approval as approvers see it: %d %s", st, info["_raw"])
	}
	for _, who := range []string{ana, anaLower} {
		st, body, _ := e.request(t, "POST", "/v1/approvals/"+id+"/approve", `{"reason":"mine"}`, "Authorization", "Bearer "+who)
		if st != 403 || errCode(body) != "forbidden" || !strings.Contains(body["_raw"].(string), "may not approve") {
			t.Fatalf("self-approval over HTTP: %d %s", st, body["_raw"])
		}
	}
	if code, _, errOut := runClient(t, e.URL, anaLower, "approvals", "approve", id); code == 0 || !strings.HasPrefix(errOut, "toolgate: approvals approve: forbidden: ") {
		t.Fatalf("self-approval with the CLI: exit %d: %s", code, errOut)
	}
	if st, body := e.callHTTP(t, grant, "", "crm_find_customer", args); st != 202 || e.okCalls(t) != ran {
		t.Fatalf("after the refused self-approvals: %d %s", st, body["_raw"])
	}
	if st, body, _ := e.request(t, "POST", "/v1/approvals/"+id+"/approve", `{}`, "Authorization", "Bearer "+ben); st != 200 {
		t.Fatalf("ben approves: %d %s", st, body["_raw"])
	}

	// Bound to the caller: the graph's API key repeating the call in the
	// same run and node gets its own request; nothing runs.
	st, other := e.callHTTP(t, e.BotKey, "review", "crm_find_customer", args, "X-Toolgate-Run", "self-run")
	if st != 202 || other["approval_id"] == id || e.okCalls(t) != ran {
		t.Fatalf("another principal on the approved request: %d %s", st, other["_raw"])
	}
	if st, body := e.callHTTP(t, e.BotKey, "review", "crm_find_customer", args, "X-Toolgate-Run", "self-run", "X-Toolgate-Approval", id); st != 403 || e.okCalls(t) != ran {
		t.Fatalf("another principal naming the approval: %d %s", st, body["_raw"])
	}
	if st, body := e.callHTTP(t, grant, "", "crm_find_customer", args); st != 200 || e.okCalls(t) != ran+1 {
		t.Fatalf("the grant's call after approval: %d %s", st, body["_raw"])
	}

	// A rule change makes an unused approval stale.
	st, out = e.callHTTP(t, grant, "", "crm_find_customer", `{"email":"alan@example.com"}`)
	if st != 202 {
		t.Fatalf("second gated call: %d %s", st, out["_raw"])
	}
	id2 := out["approval_id"].(string)
	if st, body, _ := e.request(t, "POST", "/v1/approvals/"+id2+"/approve", `{}`, "Authorization", "Bearer "+ben); st != 200 {
		t.Fatalf("approve: %d %s", st, body["_raw"])
	}
	e.editAndReload(t, `approvers: ["group:finance"], min_approvals: 1`, `approvers: ["group:finance"], min_approvals: 2`)
	st, out = e.callHTTP(t, grant, "", "crm_find_customer", `{"email":"alan@example.com"}`)
	if st != 409 || errCode(out) != "approval_stale" || e.okCalls(t) != ran+1 {
		t.Fatalf("call on an approval of the old rule: %d %s", st, out["_raw"])
	}
	st, out = e.callHTTP(t, grant, "", "crm_find_customer", `{"email":"alan@example.com"}`)
	if st != 202 || out["approval_id"] == id2 {
		t.Fatalf("next call after the stale approval: %d %s", st, out["_raw"])
	}
	st, info, _ = e.request(t, "GET", "/v1/approvals/"+out["approval_id"].(string), "", "Authorization", "Bearer "+ben)
	if st != 200 || info["min_approvals"] != 2.0 {
		t.Fatalf("the new request: %d %s", st, info["_raw"])
	}
}

// mintWith mints a grant with credential token.
func (e *identityEnv) mintWith(t *testing.T, token, body string) (string, map[string]string) {
	t.Helper()
	status, out := e.mint(t, token, body)
	if status != 201 {
		t.Fatalf("mint: %d %s", status, out["_raw"])
	}
	tokens := map[string]string{}
	for n, v := range out["tokens"].(map[string]any) {
		tokens[n] = v.(string)
	}
	return out["grant_id"].(string), tokens
}

// editAndReload replaces old with new in the running server's config and
// waits for the SIGHUP reload to apply.
func (e *identityEnv) editAndReload(t *testing.T, old, new string) {
	t.Helper()
	path := filepath.Join(e.Dir, "toolgate.yaml")
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("config lacks %q: %v", old, err)
	}
	before := strings.Count(e.stderr.String(), "configuration reloaded")
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(e.stderr.String(), "configuration reloaded") == before {
		if time.Now().After(deadline) {
			t.Fatalf("no reload\n%s", e.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
