package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/console"
)

const wantCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// inlineAttr finds what a strict CSP would block besides inline scripts:
// an event handler attribute, a style attribute or element, a javascript:
// URL.
var inlineAttr = regexp.MustCompile(`(?i)\son[a-z]+\s*=|\sstyle\s*=|<style|javascript:`)

// scriptTag finds script elements with what they hold.
var scriptTag = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)

// inlineCode returns the first piece of inline code in page, "" for none:
// every script must be an empty element loading a file from the console.
func inlineCode(page string) string {
	for _, m := range scriptTag.FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], `src="/console/static/`) || strings.TrimSpace(m[2]) != "" {
			return m[0]
		}
	}
	return inlineAttr.FindString(page)
}

func checkHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	h := resp.Header
	for name, want := range map[string]string{
		"Content-Security-Policy": wantCSP, "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

// TestSecurityHeaders: every console response, signed in or not, page,
// redirect, static file or error, carries the CSP and its companions, and
// no page holds inline code.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	e.hold(t, "run-1", 250)
	anon := e.browser(t)
	b := e.browser(t)
	b.signIn(keyApprover)
	aud := e.browser(t)
	aud.signIn(keyAuditor)
	record(t, e, "run-1")
	for _, tc := range []struct {
		b    *browser
		path string
	}{
		{anon, "/console/signin"}, {anon, "/console/inbox"}, {anon, "/console/static/console.js"},
		{anon, "/console/static/console.css"}, {anon, "/console/nope"}, {b, "/console/inbox"},
		{b, "/console/history"}, {b, "/console/runs"}, {aud, "/console/runs"}, {aud, "/console/runs/run-1"},
	} {
		resp, body := tc.b.get(tc.path)
		checkHeaders(t, tc.path, resp)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") && resp.StatusCode < 300 || resp.StatusCode >= 400 {
			if m := inlineCode(body); m != "" {
				t.Errorf("%s holds inline code: %q", tc.path, m)
			}
			if !strings.Contains(body, `<html lang="en">`) {
				t.Errorf("%s has no lang attribute", tc.path)
			}
		}
	}
}

// TestWithoutSessionRedirects: a browser without a session is sent to the
// sign-in page (and back afterwards), a poll gets 401, and a POST changes
// nothing.
func TestWithoutSessionRedirects(t *testing.T) {
	e := newEnv(t)
	id := e.hold(t, "run-1", 250)
	b := e.browser(t)
	for path, want := range map[string]string{
		"/console/":                "/console/signin?next=%2Fconsole%2F",
		"/console/inbox":           "/console/signin?next=%2Fconsole%2Finbox",
		"/console/runs/r-1?node=x": "/console/signin?next=%2Fconsole%2Fruns%2Fr-1%3Fnode%3Dx",
		"/console/approvals/" + id: "/console/signin?next=%2Fconsole%2Fapprovals%2F" + id,
	} {
		resp, _ := b.get(path)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("GET %s: %d to %q, want 303 to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if resp, _ := b.get("/console/inbox/live"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("poll without a session: %d, want 401", resp.StatusCode)
	}
	resp, _ := b.do(http.MethodPost, "/console/approvals/"+id+"/approve", url.Values{"csrf": {"x"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Errorf("POST without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st := e.status(t, id); st != broker.ApprovalPending {
		t.Fatalf("a POST without a session changed the request to %s", st)
	}
}

// sessionCookie returns the Set-Cookie of the session cookie in resp.
func sessionCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestCookieFlags: the session cookie is HttpOnly and SameSite=Lax; over
// http it is scoped to /console/, and when public_url is https it is
// Secure with the __Host- prefix (Path=/, no Domain).
func TestCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		public, name, path string
		secure             bool
	}{
		{"", "toolgate_console", "/console/", false},
		{"https://toolgate.example.com", "__Host-toolgate_console", "/", true},
	} {
		e := newEnv(t, func(c *console.Config) {
			if tc.public != "" {
				c.PublicURL = tc.public
			}
		})
		b := e.browser(t)
		_, page := b.get("/console/signin")
		pre := csrf(t, page)
		resp, _ := b.do(http.MethodPost, "/console/signin", url.Values{"csrf": {pre}, "key": {keyApprover}},
			"Cookie", strings.Replace(tc.name, "toolgate_console", "toolgate_console_pre", 1)+"="+pre)
		c := sessionCookie(resp, tc.name)
		if resp.StatusCode != http.StatusSeeOther || c == nil {
			t.Fatalf("%s: sign-in %d, cookies %v", tc.name, resp.StatusCode, resp.Cookies())
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != tc.path || c.Domain != "" || c.Secure != tc.secure || len(c.Value) < 40 {
			t.Errorf("%s: cookie %+v", tc.name, c)
		}
		if strings.Contains(resp.Header.Get("Set-Cookie"), keyApprover) {
			t.Errorf("the key is in a cookie")
		}
	}
}

// TestSignInRefusals: a wrong key, an empty key and a form without the
// pre-session token sign nobody in, and say why.
func TestSignInRefusals(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	_, page := b.get("/console/signin")
	token := csrf(t, page)
	for _, tc := range []struct {
		name, key, csrf string
		status          int
		says            string
	}{
		{"wrong key", "tgk_nope_0123456789abcdef", "page", 401, "That key was not accepted"},
		{"empty key", " ", "page", 400, "Paste an API key"},
		{"no token", keyApprover, "", 403, "nothing was changed"},
		{"wrong token", keyApprover, "forged", 403, "nothing was changed"},
	} {
		form := url.Values{"key": {tc.key}}
		switch tc.csrf {
		case "page":
			form.Set("csrf", token)
		case "":
		default:
			form.Set("csrf", tc.csrf)
		}
		resp, body := b.do(http.MethodPost, "/console/signin", form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) || sessionCookie(resp, "toolgate_console") != nil {
			t.Errorf("%s: %d, session cookie %v\n%s", tc.name, resp.StatusCode, sessionCookie(resp, "toolgate_console"), body)
		}
		if strings.Contains(body, "tgk_nope") {
			t.Errorf("%s: the page repeats the key", tc.name)
		}
		if tc.status != 403 {
			token = csrf(t, body)
		}
	}
	if resp, _ := b.get("/console/inbox"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after refused sign-ins the inbox answers %d", resp.StatusCode)
	}
}

// TestCSRF: a state change without the session's token, with a wrong one
// or from a foreign origin is refused with 403 and changes nothing; the
// right token decides.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	id := e.hold(t, "run-1", 250)
	b := e.browser(t)
	token := csrf(t, b.signIn(keyApprover))
	path := "/console/approvals/" + id + "/approve"
	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{"reason": {"ok"}}, nil},
		{"empty token", url.Values{"csrf": {""}}, nil},
		{"wrong token", url.Values{"csrf": {strings.Repeat("A", len(token))}}, nil},
		{"foreign origin", url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example"}},
		{"null origin", url.Values{"csrf": {token}}, []string{"Origin", "null"}},
	} {
		resp, body := b.do(http.MethodPost, path, tc.form, tc.header...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "nothing was changed") {
			t.Errorf("%s: %d\n%s", tc.name, resp.StatusCode, body)
		}
		if st := e.status(t, id); st != broker.ApprovalPending {
			t.Fatalf("%s: the request became %s", tc.name, st)
		}
	}
	if resp, _ := b.do(http.MethodPost, "/console/signout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without a token: %d", resp.StatusCode)
	}
	resp, _ := b.do(http.MethodPost, path, url.Values{"csrf": {token}, "reason": {"checked"}}, "Origin", e.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || e.status(t, id) != broker.ApprovalApproved {
		t.Fatalf("with the token: %d, status %s", resp.StatusCode, e.status(t, id))
	}
}

// TestNextIsLocal: sign-in follows next only to a plain path inside the
// console; anything else lands on the inbox.
func TestNextIsLocal(t *testing.T) {
	e := newEnv(t)
	for next, want := range map[string]string{
		"/console/runs?graph=support-bot": "/console/runs?graph=support-bot",
		"/console/history":                "/console/history",
		"https://evil.example/console/":   "/console/inbox",
		"//evil.example/console/":         "/console/inbox",
		"/console//evil.example":          "/console/inbox",
		"/console/../v1/tools":            "/console/inbox",
		"/console/%2e%2e/v1":              "/console/inbox",
		`/console\evil`:                   "/console/inbox",
		"/console/\r\nSet-Cookie: x=1":    "/console/inbox",
		"/v1/approvals":                   "/console/inbox",
		"javascript:alert(1)":             "/console/inbox",
		"/console/signin?next=//evil":     "/console/inbox",
		"":                                "/console/inbox",
	} {
		b := e.browser(t)
		_, page := b.get("/console/signin?next=" + url.QueryEscape(next))
		resp, _ := b.do(http.MethodPost, "/console/signin", url.Values{"csrf": {csrf(t, page)}, "key": {keyApprover}, "next": {next}})
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != want {
			t.Errorf("next %q: %d to %q, want %q", next, resp.StatusCode, got, want)
		}
	}
}

// TestSessionEnds: a session ends when idle too long, when its lifetime
// is over, at sign-out (its cookie no longer works anywhere) and at once
// when its key is no longer accepted.
func TestSessionEnds(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.SessionTTL, c.IdleTimeout = 2*time.Hour, 30*time.Minute })
	signedIn := func(b *browser) bool {
		resp, _ := b.get("/console/inbox")
		return resp.StatusCode == http.StatusOK
	}
	b := e.browser(t)
	b.signIn(keyApprover)
	e.clock.Add(29 * time.Minute)
	if !signedIn(b) {
		t.Fatal("signed out before the idle timeout")
	}
	e.clock.Add(31 * time.Minute)
	if signedIn(b) {
		t.Fatal("still signed in after 31 idle minutes")
	}

	b.signIn(keyApprover)
	for i := 0; i < 5; i++ { // active, never idle, for 2h05m
		e.clock.Add(25 * time.Minute)
		if got := signedIn(b); got != (i < 4) {
			t.Fatalf("after %d min: signed in = %v", (i+1)*25, got)
		}
	}

	inbox := b.signIn(keyApprover)
	u, _ := url.Parse(e.srv.URL + "/console/")
	old := b.c.Jar.Cookies(u)
	resp, _ := b.do(http.MethodPost, "/console/signout", url.Values{"csrf": {csrf(t, inbox)}})
	if resp.StatusCode != http.StatusSeeOther || signedIn(b) {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	replay := e.browser(t)
	replay.c.Jar.SetCookies(u, old)
	if signedIn(replay) {
		t.Fatal("the cookie of a signed-out session still works")
	}

	b.signIn(keyApprover)
	e.setKeys(t, map[string]string{"auditor": keyAuditor}, nil) // a reload removed the approver's key
	resp, _ = b.get("/console/history")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "why=refused") {
		t.Fatalf("revoked key: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.setKeys(t, map[string]string{"approver": keyApprover}, nil)
	if signedIn(b) {
		t.Fatal("a session refused once came back")
	}
}

// TestSelfApprovalRefused: the approvals service's rules hold in the
// console: a requester never sees its own request in its inbox, and a
// forged approval is refused with the reason, changing nothing.
func TestSelfApprovalRefused(t *testing.T) {
	e := newEnv(t)
	args := map[string]any{"order_id": 1, "amount": 500}
	out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
		Caller: broker.Caller{Principal: broker.Principal{Subject: "key:approver", Method: broker.AuthAPIKey}, Context: broker.Context{Graph: "g", Node: "n", Run: "r"}},
		Tool:   &broker.Tool{Name: "billing_refund"},
		Args:   args, ArgsHash: "h",
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "r0", Approvers: []string{"key:approver"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	inbox := b.signIn(keyApprover)
	if strings.Contains(inbox, out.ID) {
		t.Fatal("the requester's own request is in its inbox")
	}
	resp, _ := b.do(http.MethodPost, "/console/approvals/"+out.ID+"/approve", url.Values{"csrf": {csrf(t, inbox)}})
	_, page := b.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "Nothing was decided") || !strings.Contains(page, "asked for this call and may not approve it") {
		t.Errorf("self-approval page:\n%s", page)
	}
	if st := e.status(t, out.ID); st != broker.ApprovalPending {
		t.Fatalf("self-approval changed the request to %s", st)
	}
}
