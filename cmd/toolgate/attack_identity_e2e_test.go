package main

import (
	"strings"
	"testing"
)

// TestAttackSelfApprovalAcrossTokenKinds: one person holds two kinds of
// token from the same IdP, an access token without an email claim (the
// principal is user:<sub>) and an ID token with a verified email (the
// principal is user:<email>). She asks for a gated call with one and tries
// to approve it with the other, over HTTP and through the CLI, in both
// orders. The OIDC subject is hers either way, so every attempt is refused
// with forbidden, the request stays pending and nothing runs.
func TestAttackSelfApprovalAcrossTokenKinds(t *testing.T) {
	e := newIdentityE2E(t)
	access := e.idp.Token(map[string]any{"sub": "u-alice-7", "groups": []string{"langgraph-operators", "finance"}})
	idToken := e.idp.Token(map[string]any{"sub": "u-alice-7", "email": "alice@example.com", "email_verified": true,
		"groups": []string{"langgraph-operators", "finance"}})
	for i, tc := range []struct{ name, ask, approve string }{
		{"asks without email, approves with verified email", access, idToken},
		{"asks with verified email, approves without email", idToken, access},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := e.okCalls(t)
			args := `{"email":"grace` + string(rune('a'+i)) + `@example.com"}`
			status, out := e.callHTTP(t, tc.ask, "review", "crm_find_customer", args, "X-Toolgate-Run", "self-run")
			if status != 202 || out["status"] != "approval_pending" {
				t.Fatalf("gated call: %d %s", status, out["_raw"])
			}
			id := out["approval_id"].(string)
			st, res, _ := e.request(t, "POST", "/v1/approvals/"+id+"/approve", `{"reason":"mine"}`, "Authorization", "Bearer "+tc.approve)
			if st != 403 || errCode(res) != "forbidden" {
				t.Errorf("self-approval over HTTP: %d %s", st, res["_raw"])
			}
			code, _, errOut := runClient(t, e.URL, tc.approve, "approvals", "approve", id)
			if code == 0 || !strings.HasPrefix(errOut, "toolgate: approvals approve: forbidden: ") {
				t.Errorf("self-approval through the CLI: exit %d: %s", code, errOut)
			}
			status, out = e.callHTTP(t, tc.ask, "review", "crm_find_customer", args, "X-Toolgate-Run", "self-run", "X-Toolgate-Approval", id)
			if status != 202 || out["status"] != "approval_pending" {
				t.Errorf("call after the refused self-approval: %d %s", status, out["_raw"])
			}
			if got := e.okCalls(t); got != ran {
				t.Fatalf("a self-approved call ran")
			}
		})
	}
}
