package console_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/auth/oidctest"
	"github.com/toolgate/toolgate/broker/console"
)

const consoleClient = "toolgate-console"

// oidcEnv is a console whose OIDC client is registered at an in-test
// issuer that signs ana in, and whose authenticator accepts the issuer's
// tokens for audience.
func oidcEnv(t *testing.T, audience string) (*env, *oidctest.Issuer) {
	t.Helper()
	var clk *clock // the issuer signs tokens on the console's clock
	is := oidctest.New(t, oidctest.Options{Audience: audience, Now: func() time.Time { return clk.Now() }})
	e := newEnv(t, func(c *console.Config) {
		c.OIDC = &console.OIDCConfig{Issuer: is.URL, ClientID: consoleClient, ClientSecret: "console-secret", HTTPClient: is.Client()}
	})
	clk = e.clock
	e.setKeys(t, map[string]string{"approver": keyApprover}, &auth.OIDCConfig{Issuer: is.URL, Audience: audience, HTTPClient: is.Client()})
	is.RegisterClient(consoleClient, "console-secret", e.srv.URL+"/console/auth/callback")
	is.SetLogin(map[string]any{"sub": "ana-sub", "email": "ana@example.com", "email_verified": true, "groups": []string{"finance"}})
	return e, is
}

// idp follows the identity provider's redirect back to the console.
func idp(t *testing.T, is *oidctest.Issuer, authorize string) string {
	t.Helper()
	c := is.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.RequestURI()
}

// startOIDC begins a sign-in in b and returns the authorization URL.
func startOIDC(t *testing.T, b *browser, next string) *url.URL {
	t.Helper()
	resp, _ := b.get("/console/auth/oidc?next=" + url.QueryEscape(next))
	u, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return u
}

// TestOIDCSignIn: the authorization code flow with PKCE S256, state bound
// to the browser and a nonce; the session then re-identifies with the
// access token the broker accepts, and refreshes it before it expires.
func TestOIDCSignIn(t *testing.T) {
	e, is := oidcEnv(t, "toolgate")
	b := e.browser(t)
	if _, page := b.get("/console/signin"); !strings.Contains(page, `href="/console/auth/oidc"`) {
		t.Fatal("the sign-in page offers no identity provider")
	}
	authz := startOIDC(t, b, "/console/history")
	q := authz.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || len(q.Get("state")) < 30 ||
		q.Get("client_id") != consoleClient || q.Get("redirect_uri") != e.srv.URL+"/console/auth/callback" || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("authorization request: %v", q)
	}
	callback := idp(t, is, authz.String())
	resp, body := b.get(callback)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/history" {
		t.Fatalf("callback: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tr := is.TokenRequests()
	sum := sha256.Sum256([]byte(tr[0].Get("code_verifier")))
	if len(tr) != 1 || tr[0].Get("grant_type") != "authorization_code" || base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
		t.Fatalf("token request: %v", tr)
	}
	if _, page := b.get("/console/history"); !strings.Contains(page, "user:ana@example.com") {
		t.Fatalf("signed in as someone else:\n%s", page)
	}
	if resp, _ := b.get(callback); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a replayed callback: %d, want 400", resp.StatusCode)
	}

	// The access token lives an hour; the session (used every 20 minutes,
	// so never idle) refreshes it shortly before and stays signed in.
	for i := 1; i <= 4; i++ {
		e.clock.Add(20 * time.Minute)
		if resp, _ := b.get("/console/inbox"); resp.StatusCode != http.StatusOK {
			t.Fatalf("after %d minutes: %d", 20*i, resp.StatusCode)
		}
	}
	if tr := is.TokenRequests(); tr[len(tr)-1].Get("grant_type") != "refresh_token" {
		t.Errorf("no refresh: %v", tr)
	}
}

// TestOIDCRefusals: a callback in another browser, a tampered state, a
// provider that says no and tokens the broker does not accept sign nobody
// in; a refused state redeems no code.
func TestOIDCRefusals(t *testing.T) {
	e, is := oidcEnv(t, "toolgate")
	signedIn := func(b *browser) bool {
		resp, _ := b.get("/console/inbox")
		return resp.StatusCode == http.StatusOK
	}

	b := e.browser(t)
	callback := idp(t, is, startOIDC(t, b, "").String())
	thief := e.browser(t)
	if resp, body := thief.get(callback); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not started from this browser") || signedIn(thief) {
		t.Errorf("callback in another browser: %d", resp.StatusCode)
	}

	b = e.browser(t)
	authz := startOIDC(t, b, "")
	cb, _ := url.Parse(idp(t, is, authz.String()))
	v := cb.Query()
	v.Set("state", v.Get("state")+"x")
	before := len(is.TokenRequests())
	if resp, _ := b.get(cb.Path + "?" + v.Encode()); resp.StatusCode != http.StatusBadRequest || signedIn(b) || len(is.TokenRequests()) != before {
		t.Errorf("tampered state: %d, token requests %d -> %d", resp.StatusCode, before, len(is.TokenRequests()))
	}

	is.SetLogin(nil)
	b = e.browser(t)
	if resp, body := b.get(idp(t, is, startOIDC(t, b, "").String())); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "access_denied") || signedIn(b) {
		t.Errorf("provider said no: %d", resp.StatusCode)
	}

	// Opaque access tokens and an ID token for another audience: toolgate
	// accepts neither, and says what to configure.
	is.SetLogin(map[string]any{"sub": "ana-sub"})
	is.SetOpaqueAccessTokens(true)
	b = e.browser(t)
	if resp, body := b.get(idp(t, is, startOIDC(t, b, "").String())); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "auth.oidc.audience") || signedIn(b) {
		t.Errorf("tokens toolgate does not accept: %d\n%s", resp.StatusCode, body)
	}
}

// TestOIDCWithIDToken: when the console's client id is auth.oidc's
// audience and access tokens are opaque, the session uses the ID token.
func TestOIDCWithIDToken(t *testing.T) {
	e, is := oidcEnv(t, consoleClient)
	is.SetOpaqueAccessTokens(true)
	b := e.browser(t)
	resp, _ := b.get(idp(t, is, startOIDC(t, b, "").String()))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d", resp.StatusCode)
	}
	if _, page := b.get("/console/inbox"); !strings.Contains(page, "user:ana@example.com") {
		t.Fatalf("not signed in with the ID token:\n%s", page)
	}
}
