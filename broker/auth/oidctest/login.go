package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// client is a registered OAuth client of the issuer.
type client struct {
	secret    string
	redirects []string
}

// grant is an issued authorization code or refresh token.
type grant struct {
	client    string
	redirect  string
	challenge string
	nonce     string
	claims    map[string]any
}

// RegisterClient registers an OAuth client for the authorization code flow:
// its secret ("" for a public client) and the exact redirect URIs it may use.
func (is *Issuer) RegisterClient(id, secret string, redirectURIs ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.clients == nil {
		is.clients = map[string]client{}
	}
	is.clients[id] = client{secret: secret, redirects: redirectURIs}
}

// SetLogin makes the authorization endpoint sign in, at once and without a
// page, the user with these claims (merged into Claims, so "sub" and the
// like can be set); nil makes it answer access_denied.
func (is *Issuer) SetLogin(claims map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.login = claims
}

// SetOpaqueAccessTokens makes the token endpoint issue random access tokens
// instead of JWTs for Audience, as some identity providers do.
func (is *Issuer) SetOpaqueAccessTokens(opaque bool) { is.opaque.Store(opaque) }

// AuthRequests returns the query of every authorization request received,
// oldest first.
func (is *Issuer) AuthRequests() []url.Values {
	is.mu.Lock()
	defer is.mu.Unlock()
	return slices.Clone(is.authRequests)
}

// TokenRequests returns the form of every token request received, oldest
// first, without client secrets.
func (is *Issuer) TokenRequests() []url.Values {
	is.mu.Lock()
	defer is.mu.Unlock()
	return slices.Clone(is.tokenRequests)
}

// serveAuthorize is the authorization endpoint: it requires a registered
// client, an exact redirect URI and a PKCE S256 challenge, then redirects
// back with a single-use code (or an OAuth error).
func (is *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	is.mu.Lock()
	is.authRequests = append(is.authRequests, q)
	c, ok := is.clients[q.Get("client_id")]
	login := is.login
	is.mu.Unlock()
	redirect := q.Get("redirect_uri")
	if !ok || !slices.Contains(c.redirects, redirect) {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back := url.Values{"state": {q.Get("state")}}
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE with S256 is required")
	case login == nil:
		back.Set("error", "access_denied")
	default:
		code := random()
		is.mu.Lock()
		is.codes[code] = grant{client: q.Get("client_id"), redirect: redirect, challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), claims: login}
		is.mu.Unlock()
		back.Set("code", code)
	}
	http.Redirect(w, r, redirect+"?"+back.Encode(), http.StatusFound)
}

// serveToken is the token endpoint: authorization_code (checking the
// client, the redirect URI and the PKCE verifier; a code works once) and
// refresh_token grants.
func (is *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	logged := url.Values{}
	for k, v := range r.PostForm {
		if k != "client_secret" {
			logged[k] = v
		}
	}
	is.mu.Lock()
	is.tokenRequests = append(is.tokenRequests, logged)
	c, known := is.clients[id]
	is.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		tokenError(w, "invalid_client")
		return
	}
	g, ok := is.redeem(r.PostForm, id)
	if !ok {
		tokenError(w, "invalid_grant")
		return
	}
	is.issue(w, id, g)
}

// redeem takes the code or refresh token of a token request; ok is false
// for anything unknown, reused, issued to another client, or whose
// redirect URI or PKCE verifier does not match.
func (is *Issuer) redeem(form url.Values, clientID string) (grant, bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	switch form.Get("grant_type") {
	case "authorization_code":
		g, ok := is.codes[form.Get("code")]
		delete(is.codes, form.Get("code"))
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		challenge := base64.RawURLEncoding.EncodeToString(sum[:])
		return g, ok && g.client == clientID && g.redirect == form.Get("redirect_uri") &&
			subtle.ConstantTimeCompare([]byte(challenge), []byte(g.challenge)) == 1
	case "refresh_token":
		g, ok := is.refresh[form.Get("refresh_token")]
		g.nonce = ""
		return g, ok && g.client == clientID
	}
	return grant{}, false
}

// issue answers a token request with an ID token for the client, an access
// token for Audience and a refresh token.
func (is *Issuer) issue(w http.ResponseWriter, clientID string, g grant) {
	idClaims := map[string]any{"aud": clientID, "azp": clientID}
	if g.nonce != "" {
		idClaims["nonce"] = g.nonce
	}
	for k, v := range g.claims {
		idClaims[k] = v
	}
	idClaims["aud"] = clientID
	access := is.Token(merge(g.claims, map[string]any{"azp": clientID}))
	if is.opaque.Load() {
		access = random()
	}
	refresh := random()
	is.mu.Lock()
	is.refresh[refresh] = g
	is.mu.Unlock()
	writeJSON(w, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(time.Hour.Seconds()),
		"id_token": is.Token(idClaims), "refresh_token": refresh,
	})
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
