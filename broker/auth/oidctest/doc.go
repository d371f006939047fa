// Package oidctest is an in-test OpenID Connect issuer: an httptest server
// that serves /.well-known/openid-configuration and a JWKS, and signs RS256
// and ES256 tokens with keys it generates. It can also mint the forgeries a
// verifier must refuse: a token signed by a key outside the JWKS, an
// unsigned "alg: none" token, an HS256 token keyed with the RSA public key,
// and a token naming an unknown key id. It can pretend to be down.
//
// For sign-in flows it also serves an authorization endpoint and a token
// endpoint (the authorization code flow with PKCE S256 required, single-use
// codes, refresh tokens) for registered clients, signing in at once the user
// SetLogin names.
//
// It is for tests only and must never be linked into the toolgate binary or
// used to sign anything outside a test.
package oidctest
