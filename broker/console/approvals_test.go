package console_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// record writes a small run: a call, a denied call on another node, a
// passthrough statement.
func record(t *testing.T, e *env, run string) {
	t.Helper()
	start := e.clock.Now().Add(-time.Minute)
	for i, ev := range []broker.Event{
		{Kind: broker.EventToolCall, Node: "triage", Tool: "crm_find_customer", Status: broker.StatusOK, Decision: "allow", DurationMS: 3.5,
			Args: json.RawMessage(`{"email":"a***@example.com"}`), Result: json.RawMessage(`{"rows":[{"card":"************4242"}]}`)},
		{Kind: broker.EventToolCall, Node: "billing", Tool: "crm_find_customer", Status: broker.StatusDenied, ErrorCode: "forbidden", Decision: "deny"},
		{Kind: broker.EventStatement, Node: "billing", Target: "crm", Status: broker.StatusOK, Detail: map[string]any{"statement": "SELECT id FROM orders"}},
	} {
		ev.ID, ev.Time, ev.Graph, ev.Run, ev.Principal = broker.NewID("evt", start), start.Add(time.Duration(i)*time.Second), "support-bot", run, "key:agent"
		if err := e.rec.Record(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInboxAndDecisions: the inbox shows what the approver may decide,
// with tool, node, run, masked arguments, rule, requester, expiry and
// votes; approving and denying go through the service and say what they
// did; history filters by status.
func TestInboxAndDecisions(t *testing.T) {
	e := newEnv(t)
	approveMe := e.hold(t, "run-1", 250)
	denyMe := e.hold(t, "run-2", 300)
	b := e.browser(t)
	inbox := b.signIn(keyApprover)
	shown := html.UnescapeString(inbox)
	for _, want := range []string{approveMe, denyMe, "billing_refund", "billing", "run-1", "key:agent",
		"graphs.support-bot.nodes.billing.rules[0]", "0 of 1", `"amount": 250`, "data-countdown", `<label for="reason-` + approveMe} {
		if !strings.Contains(shown, want) {
			t.Errorf("the inbox does not show %q", want)
		}
	}
	if other := e.browser(t); !strings.Contains(other.signIn(keyAuditor), "Nothing waits for your decision") {
		t.Error("the auditor, who approves nothing, has requests in its inbox")
	}
	token := csrf(t, inbox)
	resp, _ := b.do(http.MethodPost, "/console/approvals/"+approveMe+"/approve", url.Values{"csrf": {token}, "reason": {"photo checked"}, "back": {"/console/inbox"}})
	_, page := b.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "You approved "+approveMe) || strings.Contains(page, `id="`+approveMe+`"`) {
		t.Errorf("after approving:\n%s", page)
	}
	resp, _ = b.do(http.MethodPost, "/console/approvals/"+denyMe+"/deny", url.Values{"csrf": {token}, "reason": {"too much"}})
	_, page = b.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "You denied "+denyMe) || !strings.Contains(page, "Nothing waits for your decision") {
		t.Errorf("after denying:\n%s", page)
	}
	if e.status(t, approveMe) != broker.ApprovalApproved || e.status(t, denyMe) != broker.ApprovalDenied {
		t.Fatalf("statuses %s, %s", e.status(t, approveMe), e.status(t, denyMe))
	}
	// A second vote is refused by the service and changes nothing.
	resp, _ = b.do(http.MethodPost, "/console/approvals/"+denyMe+"/approve", url.Values{"csrf": {token}})
	if _, page = b.get(resp.Header.Get("Location")); !strings.Contains(page, "Nothing was decided") {
		t.Errorf("a vote on a decided request:\n%s", page)
	}
	_, hist := b.get("/console/history?status=denied")
	if !strings.Contains(hist, denyMe) || strings.Contains(hist, approveMe) || !strings.Contains(hist, "too much") {
		t.Errorf("history of denied requests:\n%s", hist)
	}
	if resp, body := b.get("/console/history?since=yesterday"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "is not a time") {
		t.Errorf("a bad since: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/console/approvals/ap_nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown request: %d", resp.StatusCode)
	}
	stranger := e.browser(t)
	stranger.signIn(keyAgent)
	if resp, body := stranger.get("/console/approvals/" + approveMe); resp.StatusCode != http.StatusOK || strings.Contains(body, `class="decide"`) {
		t.Errorf("the requester sees its request (%d) and must not get a decision form", resp.StatusCode)
	}
}

// TestLiveInbox: the poll returns the list alone, whose version changes
// when a request arrives.
func TestLiveInbox(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn(keyApprover)
	_, before := b.get("/console/inbox/live")
	id := e.hold(t, "run-9", 900)
	resp, after := b.get("/console/inbox/live")
	if resp.StatusCode != 200 || strings.Contains(after, "<html") || !strings.Contains(after, id) || version(before) == version(after) {
		t.Errorf("live fragment: %d, versions %q %q\n%s", resp.StatusCode, version(before), version(after), after)
	}
}

func version(fragment string) string {
	_, v, _ := strings.Cut(fragment, `data-version="`)
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// TestRunsForAuditorsOnly: an approver who is no auditor gets a 403 page
// that says why, for every audit view; an auditor sees the runs, the
// timeline with masked values and the chain status, and downloads the run.
func TestRunsForAuditorsOnly(t *testing.T) {
	e := newEnv(t)
	record(t, e, "run-7")
	b := e.browser(t)
	inbox := b.signIn(keyApprover)
	if strings.Contains(inbox, `href="/console/runs"`) {
		t.Error("a non-auditor's navigation links the runs")
	}
	for _, path := range []string{"/console/runs", "/console/runs/run-7", "/console/runs/run-7/export?format=jsonl"} {
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "key:approver, which is not an auditor") || strings.Contains(body, "crm_find_customer") {
			t.Errorf("%s for a non-auditor: %d\n%s", path, resp.StatusCode, body)
		}
	}

	a := e.browser(t)
	a.signIn(keyAuditor)
	_, runs := a.get("/console/runs")
	if !strings.Contains(runs, `href="/console/runs/run-7"`) || !strings.Contains(runs, "support-bot") {
		t.Errorf("runs page:\n%s", runs)
	}
	_, tl := a.get("/console/runs/run-7")
	for _, want := range []string{"Intact: chain local verified", "triage", "billing", "Passthrough statement", "crm: SELECT id FROM orders",
		"************4242", "a***@example.com", "forbidden", "3.5ms"} {
		if !strings.Contains(tl, want) {
			t.Errorf("the timeline does not show %q", want)
		}
	}
	_, only := a.get("/console/runs/run-7?node=billing")
	if strings.Contains(only, "a***@example.com") || !strings.Contains(only, "Showing node <strong>billing</strong>") {
		t.Error("the node filter keeps other nodes' events")
	}
	for format, want := range map[string]string{"jsonl": `"prev_hash"`, "csv": "id,time,chain,seq"} {
		resp, body := a.get("/console/runs/run-7/export?format=" + format)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="toolgate-run-run-7.`+format+`"`) || !strings.Contains(body, want) {
			t.Errorf("%s download: %d %q\n%s", format, resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
		}
	}
	if resp, _ := a.get("/console/runs/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown run: %d", resp.StatusCode)
	}
}

// TestInternalFailureShowsAnIncident: when a store fails, the page says
// so with the incident the broker logged, never the cause.
func TestInternalFailureShowsAnIncident(t *testing.T) {
	e := newEnv(t)
	a := e.browser(t)
	a.signIn(keyAuditor)
	e.db.Close()
	resp, body := a.get("/console/runs")
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "incident") || leaksCause(body) || e.incidents.Load() == 0 {
		t.Fatalf("store down: %d, incidents %d\n%s", resp.StatusCode, e.incidents.Load(), body)
	}
}

// leaksCause reports whether a page shows the store's error ("sql:
// database is closed"). The page's random CSRF token may hold the letters
// sql, never a colon or a space.
func leaksCause(body string) bool {
	low := strings.ToLower(body)
	return strings.Contains(low, "sql:") || strings.Contains(low, "database is closed")
}
