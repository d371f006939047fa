package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker/auth/oidctest"
	"github.com/toolgate/toolgate/internal/config"
)

// consoleClient is a browser without scripts: a cookie jar, redirects not
// followed.
func consoleClient(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var formToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleRefusesGrantTokens: a grant token acts as a node of its
// graph, never as a person, so it cannot sign in to the console.
func TestConsoleRefusesGrantTokens(t *testing.T) {
	app := startConsoleApp(t)
	req, _ := http.NewRequest(http.MethodPost, app.url+"/v1/grants",
		strings.NewReader(`{"graph":"support-bot","run_id":"r-1","nodes":["billing"],"ttl":"5m"}`))
	req.Header.Set("Authorization", "Bearer "+app.keys.Agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var grant struct{ Tokens map[string]string }
	_ = json.NewDecoder(resp.Body).Decode(&grant)
	resp.Body.Close()
	token := grant.Tokens["billing"]
	if !strings.HasPrefix(token, "tg_") {
		t.Fatalf("mint: %d %+v", resp.StatusCode, grant)
	}
	c := consoleClient(t)
	_, page := fetch(t, c, http.MethodGet, app.url+"/console/signin", nil)
	resp, page = fetch(t, c, http.MethodPost, app.url+"/console/signin", url.Values{"csrf": {formToken.FindStringSubmatch(page)[1]}, "key": {token}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "grant token") || strings.Contains(page, token) {
		t.Fatalf("grant sign-in: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := fetch(t, c, http.MethodGet, app.url+"/console/inbox", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed in with a grant: %d", resp.StatusCode)
	}
}

// TestConsoleOIDCFromConfig: console.oidc and auth.oidc in the config make
// the sign-in page offer the identity provider, and its sign-in reaches
// the console as the user the broker identifies.
func TestConsoleOIDCFromConfig(t *testing.T) {
	idp := oidctest.New(t, oidctest.Options{Audience: "toolgate"})
	idp.SetLogin(map[string]any{"sub": "ana-sub", "email": "ana@example.com", "email_verified": true})
	app := startConsoleApp(t, func(cfg *config.Config) {
		cfg.Auth.OIDC = &config.OIDC{Issuer: idp.URL, Audience: "toolgate"}
		cfg.Console.OIDC = &config.ConsoleOIDC{ClientID: "console", ClientSecret: "console-secret-123"}
		idp.RegisterClient("console", "console-secret-123", cfg.PublicURL+"/console/auth/callback")
	})
	c := consoleClient(t)
	resp, _ := fetch(t, c, http.MethodGet, app.url+"/console/auth/oidc?next=%2Fconsole%2Fhistory", nil)
	authz := resp.Header.Get("Location")
	if !strings.HasPrefix(authz, idp.URL+"/authorize?") || !strings.Contains(authz, "code_challenge_method=S256") {
		t.Fatalf("start: %d %q", resp.StatusCode, authz)
	}
	resp, _ = fetch(t, consoleClient(t), http.MethodGet, authz, nil)
	resp, _ = fetch(t, c, http.MethodGet, resp.Header.Get("Location"), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/history" {
		t.Fatalf("callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := fetch(t, c, http.MethodGet, app.url+"/console/history", nil); !strings.Contains(page, "user:ana@example.com") {
		t.Fatalf("history:\n%s", page)
	}
	if tr := idp.TokenRequests(); len(tr) != 1 || tr[0].Get("code_verifier") == "" {
		t.Fatalf("token requests: %v", tr)
	}
}

// TestConsoleSessionEndsWhenPrincipalDisabled: the console identifies its
// session's credential through the broker on every request, so an admin
// disabling the principal ends its console session at the next page.
func TestConsoleSessionEndsWhenPrincipalDisabled(t *testing.T) {
	app := startConsoleApp(t, func(cfg *config.Config) { cfg.Auth.Admins = []string{"key:approver"} })
	c := consoleClient(t)
	_, page := fetch(t, c, http.MethodGet, app.url+"/console/signin", nil)
	resp, _ := fetch(t, c, http.MethodPost, app.url+"/console/signin", url.Values{"csrf": {formToken.FindStringSubmatch(page)[1]}, "key": {app.keys.Agent}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if resp, _ := fetch(t, c, http.MethodGet, app.url+"/console/history", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, app.url+"/v1/principals/"+url.PathEscape("key:support-bot")+"/disable", strings.NewReader(`{"reason":"left the team"}`))
	req.Header.Set("Authorization", "Bearer "+app.keys.Approver)
	dresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dresp.Body.Close()
	if dresp.StatusCode/100 != 2 {
		t.Fatalf("disable: %d", dresp.StatusCode)
	}
	resp, _ = fetch(t, c, http.MethodGet, app.url+"/console/history", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "why=refused") {
		t.Fatalf("after the principal was disabled: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
