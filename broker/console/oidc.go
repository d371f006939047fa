package console

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// oidcClient is the console's OAuth client: the authorization code flow
// with PKCE (S256), a nonce bound into the ID token and a state bound to
// the browser by a cookie. Discovery happens on the first sign-in, so
// toolgate starts while the identity provider is down.
type oidcClient struct {
	cfg      OIDCConfig
	redirect string
	now      func() time.Time
	client   *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	pending  map[string]login
}

// login is an OIDC sign-in in flight, keyed by the random value of the
// browser's login cookie.
type login struct {
	state, nonce, verifier, next string
	started                      time.Time
}

// Bounds on sign-ins in flight: each is dropped after loginTTL, and at
// most maxLogins are kept (the oldest goes first), so unauthenticated
// requests cannot grow memory without bound.
const (
	loginTTL  = 10 * time.Minute
	maxLogins = 1000
)

func newOIDCClient(cfg OIDCConfig, redirect string, now func() time.Time) *oidcClient {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{oidc.RS256, oidc.ES256}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &oidcClient{cfg: cfg, redirect: redirect, now: now, client: client, pending: map[string]login{}}
}

// ctx carries the client's HTTP client to go-oidc and x/oauth2.
func (o *oidcClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, o.client), o.client)
}

// setup discovers the provider once and returns the OAuth config and the
// ID token verifier.
func (o *oidcClient) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	p := o.provider
	o.mu.Unlock()
	if p == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if p, err = oidc.NewProvider(o.ctx(dctx), o.cfg.Issuer); err != nil {
			return nil, nil, err
		}
		o.mu.Lock()
		o.provider = p
		o.mu.Unlock()
	}
	oc := &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: o.redirect, Scopes: o.cfg.Scopes}
	v := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, SupportedSigningAlgs: o.cfg.Algorithms, Now: o.now})
	return oc, v, nil
}

// begin records a sign-in in flight and returns its cookie value.
func (o *oidcClient) begin(l login) string {
	id := randomToken(32)
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for k, p := range o.pending {
		if now.Sub(p.started) > loginTTL {
			delete(o.pending, k)
		}
	}
	for len(o.pending) >= maxLogins {
		oldest := ""
		for k, p := range o.pending {
			if oldest == "" || p.started.Before(o.pending[oldest].started) {
				oldest = k
			}
		}
		delete(o.pending, oldest)
	}
	l.started = now
	o.pending[id] = l
	return id
}

// finish takes the sign-in in flight of cookie value id: it works once.
func (o *oidcClient) finish(id string) (login, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.pending[id]
	delete(o.pending, id)
	if !ok || o.now().Sub(l.started) > loginTTL {
		return login{}, false
	}
	return l, true
}

// oidcStart sends the browser to the identity provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.errorPage(w, r, http.StatusNotFound, "Not available", "Sign-in with an identity provider is not configured here (console.oidc); sign in with an API key.")
		return
	}
	oc, _, err := c.oidc.setup(r.Context())
	if err != nil {
		c.log.Warn("console: the identity provider cannot be reached", zap.Error(err))
		c.errorPage(w, r, http.StatusServiceUnavailable, "Identity provider unavailable", "The identity provider cannot be reached right now, so you cannot sign in with it; try again later or sign in with an API key.")
		return
	}
	l := login{state: randomToken(24), nonce: randomToken(24), verifier: oauth2.GenerateVerifier(), next: localPath(r.URL.Query().Get("next"))}
	c.setCookie(w, cookieLogin, c.oidc.begin(l), int(loginTTL.Seconds()))
	http.Redirect(w, r, oc.AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce)), http.StatusFound)
}

// oidcCallback finishes a sign-in: the state must be the one this browser
// started with, the code is exchanged with the PKCE verifier, the ID token
// must verify for this client with this sign-in's nonce, and the broker
// must accept the token the session will re-identify with.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		c.setCookie(w, cookieLogin, "", -1)
		c.renderSignIn(w, r, status, signInData{OIDC: c.oidc != nil, Error: msg})
	}
	if c.oidc == nil {
		fail(http.StatusNotFound, "Sign-in with an identity provider is not configured here.")
		return
	}
	q := r.URL.Query()
	l, ok := c.oidc.finish(c.cookie(r, cookieLogin))
	if !ok || !equalToken(q.Get("state"), l.state) {
		fail(http.StatusBadRequest, "This sign-in was not started from this browser, or it took longer than 10 minutes; sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The identity provider did not sign you in ("+e+").")
		return
	}
	s, err := c.exchange(r.Context(), q.Get("code"), l)
	if err != nil {
		e, _ := broker.AsError(err)
		c.log.Info("console OIDC sign-in refused", zap.String("code", string(e.Code)), zap.Error(e.Cause))
		fail(door.Status(e.Code), e.Message)
		return
	}
	c.startSession(w, r, s, l.next)
}

// exchange redeems code and returns the session for the signed-in user.
func (c *Console) exchange(ctx context.Context, code string, l login) (session, error) {
	oc, verifier, err := c.oidc.setup(ctx)
	if err != nil {
		return session{}, broker.Wrap(broker.CodeUnavailable, err, "The identity provider cannot be reached right now; try again later.")
	}
	tok, err := oc.Exchange(c.oidc.ctx(ctx), code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		return session{}, broker.Wrap(broker.CodeUnauthenticated, err, "The identity provider did not accept the sign-in code; sign in again.")
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return session{}, broker.Wrap(broker.CodeUnauthenticated, err, "The identity provider's ID token did not verify; sign in again.")
	}
	if !equalToken(idt.Nonce, l.nonce) {
		return session{}, broker.Errorf(broker.CodeUnauthenticated, "The identity provider's ID token is not for this sign-in (nonce); sign in again.")
	}
	s := session{oauth: tok, method: broker.AuthOIDC}
	if err := c.pickBearer(ctx, &s); err != nil {
		return session{}, err
	}
	return s, nil
}

// pickBearer chooses the token the session re-identifies with: the access
// token when the broker accepts it (a JWT for auth.oidc's audience), else
// the ID token (when the console's client id is that audience).
func (c *Console) pickBearer(ctx context.Context, s *session) error {
	idToken, _ := s.oauth.Extra("id_token").(string)
	var firstErr error
	for _, cand := range []struct{ kind, token string }{{"access", s.oauth.AccessToken}, {"id", idToken}} {
		if cand.token == "" || (s.bearer != "" && s.bearer != cand.kind) {
			continue
		}
		caller, err := c.cfg.Identifier.Identify(ctx, broker.Credentials{Token: cand.token})
		if err == nil {
			s.token, s.bearer, s.subject = cand.token, cand.kind, caller.Principal.Subject
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no token")
	}
	return broker.Wrap(broker.CodeUnauthenticated, firstErr,
		"You signed in at the identity provider, but toolgate does not accept its tokens (check that auth.oidc.audience is the console's client id, or that the provider issues access tokens for that audience).")
}

// refresh renews an OIDC session's tokens shortly before they expire, when
// the provider gave a refresh token; on failure the session keeps its
// token, which the broker then refuses once it has expired.
func (c *Console) refresh(ctx context.Context, id string, s session) session {
	if s.oauth.RefreshToken == "" || s.oauth.Expiry.IsZero() || c.now().Add(time.Minute).Before(s.oauth.Expiry) {
		return s
	}
	oc, _, err := c.oidc.setup(ctx)
	if err != nil {
		return s
	}
	// A token with only the refresh token makes the source refresh now,
	// whatever the wall clock says.
	tok, err := oc.TokenSource(c.oidc.ctx(ctx), &oauth2.Token{RefreshToken: s.oauth.RefreshToken}).Token()
	if err != nil {
		c.log.Info("console: token refresh failed", zap.String("principal", s.subject), zap.Error(err))
		return s
	}
	if _, ok := tok.Extra("id_token").(string); !ok && s.bearer == "id" {
		return s
	}
	next := s
	next.oauth = tok
	if err := c.pickBearer(ctx, &next); err != nil {
		return s
	}
	c.sessions.update(id, next.token, next.oauth)
	return next
}
