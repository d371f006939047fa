package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key ids of the issuer's published keys.
const (
	RSAKeyID = "rsa-1"
	ECKeyID  = "ec-1"
)

// Options configures an Issuer. The zero value is usable.
type Options struct {
	// Audience is the default "aud" claim; "toolgate" when empty.
	Audience string
	// Now is the clock used for default iat and exp; time.Now when nil.
	Now func() time.Time
}

// Issuer is a running in-test OIDC issuer.
type Issuer struct {
	// URL is the issuer URL, the value of "iss" and of the discovery
	// document's "issuer".
	URL string
	// Audience is the default "aud" claim.
	Audience string

	srv     *httptest.Server
	now     func() time.Time
	rsaKey  *rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
	foreign *rsa.PrivateKey

	mu            sync.Mutex
	extra         []jose.JSONWebKey
	retired       map[string]bool
	header        http.Header
	clients       map[string]client
	login         map[string]any
	codes         map[string]grant
	refresh       map[string]grant
	authRequests  []url.Values
	tokenRequests []url.Values
	opaque        atomic.Bool

	down        atomic.Bool
	discoveries atomic.Int64
	jwksFetches atomic.Int64
}

// New starts an issuer that is closed when the test ends.
func New(t testing.TB, opts Options) *Issuer {
	t.Helper()
	is := &Issuer{Audience: opts.Audience, now: opts.Now, codes: map[string]grant{}, refresh: map[string]grant{}}
	if is.Audience == "" {
		is.Audience = "toolgate"
	}
	if is.now == nil {
		is.now = time.Now
	}
	var err error
	if is.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.foreign, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.serveDiscovery)
	mux.HandleFunc("GET /jwks", is.serveJWKS)
	mux.HandleFunc("GET /authorize", is.serveAuthorize)
	mux.HandleFunc("POST /token", is.serveToken)
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// Client returns an HTTP client that reaches the issuer.
func (is *Issuer) Client() *http.Client { return is.srv.Client() }

// SetDown makes every endpoint answer 503 (down = true) or serve normally.
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Discoveries returns how many discovery documents were served.
func (is *Issuer) Discoveries() int64 { return is.discoveries.Load() }

// JWKSFetches returns how many key sets were served.
func (is *Issuer) JWKSFetches() int64 { return is.jwksFetches.Load() }

// RotateIn publishes a new RSA key under kid and returns a TokenOption that
// signs with it, to test that a verifier picks up keys it has not seen.
func (is *Issuer) RotateIn(t testing.TB, kid string) TokenOption {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	is.extra = append(is.extra, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"})
	is.mu.Unlock()
	return func(o *tokenOpts) { o.alg, o.key, o.kid = "RS256", k, kid }
}

// Retire removes the key kid from the published key set, as an issuer does
// after a rotation: tokens it signed must stop verifying once a verifier's
// cached copy expires.
func (is *Issuer) Retire(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.retired == nil {
		is.retired = map[string]bool{}
	}
	is.retired[kid] = true
}

// SetJWKSHeader sets a header on every key set response from now on (e.g.
// Cache-Control: max-age=60, or Expires).
func (is *Issuer) SetJWKSHeader(name, value string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.header == nil {
		is.header = http.Header{}
	}
	is.header.Set(name, value)
}

func (is *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if is.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	is.discoveries.Add(1)
	writeJSON(w, map[string]any{
		"issuer":                                is.URL,
		"jwks_uri":                              is.URL + "/jwks",
		"authorization_endpoint":                is.URL + "/authorize",
		"token_endpoint":                        is.URL + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
	})
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if is.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	is.jwksFetches.Add(1)
	keys := []jose.JSONWebKey{
		{Key: is.rsaKey.Public(), KeyID: RSAKeyID, Algorithm: "RS256", Use: "sig"},
		{Key: is.ecKey.Public(), KeyID: ECKeyID, Algorithm: "ES256", Use: "sig"},
	}
	is.mu.Lock()
	keys = append(keys, is.extra...)
	published := keys[:0]
	for _, k := range keys {
		if !is.retired[k.KeyID] {
			published = append(published, k)
		}
	}
	for name, v := range is.header {
		w.Header()[name] = v
	}
	is.mu.Unlock()
	writeJSON(w, jose.JSONWebKeySet{Keys: published})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TokenOption changes how Token signs.
type TokenOption func(*tokenOpts)

type tokenOpts struct {
	alg  string
	key  crypto.Signer
	kid  string
	mode int
}

const (
	modeSigned = iota
	modeNone
	modeHS256Public
)

// ES256 signs with the issuer's published EC key.
func ES256() TokenOption {
	return func(o *tokenOpts) { o.alg, o.kid, o.mode = "ES256", ECKeyID, modeSigned; o.key = nil }
}

// ForeignKey signs with an RSA key that is not in the JWKS but claims the
// published RSA key id: the signature does not verify.
func ForeignKey() TokenOption {
	return func(o *tokenOpts) { o.mode = modeSigned; o.key = foreignMarker{} }
}

// AlgNone produces an unsigned token with header {"alg":"none"}.
func AlgNone() TokenOption { return func(o *tokenOpts) { o.mode = modeNone } }

// HS256WithPublicKey produces a token with header alg HS256 whose HMAC key
// is the PEM of the issuer's RSA public key (the classic key-confusion
// attack).
func HS256WithPublicKey() TokenOption { return func(o *tokenOpts) { o.mode = modeHS256Public } }

// KeyID sets the "kid" header, e.g. to one the JWKS does not contain.
func KeyID(kid string) TokenOption { return func(o *tokenOpts) { o.kid = kid } }

// foreignMarker selects the issuer's foreign key in Token.
type foreignMarker struct{ crypto.Signer }

// Claims returns the default claims merged with claims: iss, aud, sub
// "alice", iat now and exp in one hour. A claim set to nil is removed.
func (is *Issuer) Claims(claims map[string]any) map[string]any {
	now := is.now()
	out := map[string]any{
		"iss": is.URL,
		"aud": is.Audience,
		"sub": "alice",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// Token returns a compact JWT carrying Claims(claims), signed RS256 with the
// published RSA key unless an option says otherwise. It panics on a signing
// failure, which cannot happen with the generated keys.
func (is *Issuer) Token(claims map[string]any, opts ...TokenOption) string {
	o := tokenOpts{alg: "RS256", kid: RSAKeyID}
	for _, f := range opts {
		f(&o)
	}
	payload, err := json.Marshal(is.Claims(claims))
	if err != nil {
		panic(err)
	}
	switch o.mode {
	case modeNone:
		return segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(payload) + "."
	case modeHS256Public:
		der, err := x509.MarshalPKIXPublicKey(is.rsaKey.Public())
		if err != nil {
			panic(err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		signing := segment(map[string]any{"alg": "HS256", "typ": "JWT", "kid": o.kid}) + "." + b64(payload)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		return signing + "." + b64(mac.Sum(nil))
	}
	var key any
	switch k := o.key.(type) {
	case foreignMarker:
		key = is.foreign
	case nil:
		if o.alg == "ES256" {
			key = is.ecKey
		} else {
			key = is.rsaKey
		}
	default:
		key = k
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(o.alg), Key: jose.JSONWebKey{Key: key, KeyID: o.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

func segment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64(b)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ServiceAccountClaims are the claims of a Kubernetes projected service
// account token for service account sa in namespace ns, bound to a pod,
// issued for audience aud (the volume's audience) and valid for life:
// iss, sub "system:serviceaccount:<ns>:<sa>", aud as a list, iat, nbf,
// exp, jti and the "kubernetes.io" claim. Pass them to Token.
func (is *Issuer) ServiceAccountClaims(ns, sa, aud string, life time.Duration) map[string]any {
	now := is.now()
	return map[string]any{
		"sub": "system:serviceaccount:" + ns + ":" + sa,
		"aud": []string{aud},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(life).Unix(),
		"jti": "8f2c1a7e-" + ns + "-" + sa,
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"pod":            map[string]any{"name": sa + "-7d9f8c6b5-x2x7q", "uid": "4b1f6c1e-0f0e-4b7e-9a51-3f7c2d1e0a11"},
			"serviceaccount": map[string]any{"name": sa, "uid": "c0a8e6f2-5d8b-4a53-8f5c-8a8c7b9e2d10"},
			"node":           map[string]any{"name": "worker-1", "uid": "a1b2c3d4-0000-4000-8000-000000000001"},
		},
	}
}
