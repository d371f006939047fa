package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// DefaultAlgorithms are the JWT signing algorithms accepted when
// OIDCConfig.Algorithms is empty.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// acceptableAlgorithms are the asymmetric algorithms an OIDC config may
// name. "none" and the HMAC family are never acceptable: an HMAC key would
// have to be the issuer's public key, which is the key-confusion attack.
var acceptableAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// OIDCConfig configures the OIDC issuer whose JWTs are accepted.
type OIDCConfig struct {
	// Issuer is the issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration". It must be https,
	// except on a loopback host.
	Issuer string
	// Audience is the client id that must appear in the token's "aud".
	Audience string
	// GroupsClaim names the claim holding the groups; "groups" when empty.
	GroupsClaim string
	// Algorithms are the accepted signing algorithms; DefaultAlgorithms
	// when empty.
	Algorithms []string
	// HTTPClient reaches the issuer; a client with a 10s timeout when nil.
	HTTPClient *http.Client
	// DiscoveryTimeout bounds discovery on the first token; 5s when zero.
	DiscoveryTimeout time.Duration
	// RetryAfter is how long a failed discovery is remembered before it is
	// tried again, so a down issuer is not hammered; 2s when zero.
	RetryAfter time.Duration
	// KeyRefreshInterval is the least time between two JWKS fetches
	// triggered by an unknown key id, so forged tokens cannot make toolgate
	// hammer the issuer; 10s when zero.
	KeyRefreshInterval time.Duration
	// KeyMaxAge is the longest the issuer's keys are trusted without
	// fetching them again, so a key the issuer removed stops verifying
	// tokens; the JWKS response's Cache-Control max-age or Expires shortens
	// it (never below KeyRefreshInterval). 1h when zero.
	KeyMaxAge time.Duration
	// AssumeEmailVerified trusts the "email" claim of a token that carries
	// no "email_verified" claim, for issuers that only ever issue verified
	// emails and omit the claim (auth.oidc.assume_email_verified). An
	// explicit "email_verified": false is never trusted. Off by default: an
	// email counts only with "email_verified": true.
	AssumeEmailVerified bool
}

// Validate checks the OIDC config.
func (c OIDCConfig) Validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("oidc issuer %q must be an absolute https URL", c.Issuer)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("oidc issuer %q must use https (http is allowed only on a loopback host)", c.Issuer)
	}
	if c.Audience == "" {
		return fmt.Errorf("oidc audience is required (the client id tokens must be issued to)")
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(acceptableAlgorithms, a) {
			return fmt.Errorf("oidc algorithm %q is not accepted; use one of %s", a, strings.Join(acceptableAlgorithms, ", "))
		}
	}
	if c.DiscoveryTimeout < 0 || c.RetryAfter < 0 || c.KeyRefreshInterval < 0 || c.KeyMaxAge < 0 {
		return fmt.Errorf("oidc discovery timeout, retry and key refresh intervals and key max age must not be negative")
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// oidcVerifier verifies JWTs from one issuer. Discovery happens on the first
// token, not at start, so toolgate starts while the issuer is down.
type oidcVerifier struct {
	cfg    OIDCConfig
	algs   []string
	claim  string
	now    func() time.Time
	log    *zap.Logger
	client *http.Client

	ready    atomic.Pointer[oidc.IDTokenVerifier]
	mu       sync.Mutex
	failedAt time.Time
	lastErr  error
}

func newOIDCVerifier(cfg OIDCConfig, now func() time.Time, log *zap.Logger) *oidcVerifier {
	v := &oidcVerifier{cfg: cfg, algs: cfg.Algorithms, claim: cfg.GroupsClaim, now: now, log: log, client: cfg.HTTPClient}
	if len(v.algs) == 0 {
		v.algs = DefaultAlgorithms
	}
	if v.claim == "" {
		v.claim = "groups"
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.cfg.DiscoveryTimeout == 0 {
		v.cfg.DiscoveryTimeout = 5 * time.Second
	}
	if v.cfg.RetryAfter == 0 {
		v.cfg.RetryAfter = 2 * time.Second
	}
	if v.cfg.KeyRefreshInterval == 0 {
		v.cfg.KeyRefreshInterval = 10 * time.Second
	}
	if v.cfg.KeyMaxAge == 0 {
		v.cfg.KeyMaxAge = time.Hour
	}
	return v
}

var errUnreachable = errors.New("the identity provider could not be reached")

// idTokenVerifier returns the verifier, discovering the issuer if needed.
// Concurrent first calls share one discovery.
func (v *oidcVerifier) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if vr := v.ready.Load(); vr != nil {
		return vr, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if vr := v.ready.Load(); vr != nil {
		return vr, nil
	}
	if !v.failedAt.IsZero() && v.now().Sub(v.failedAt) < v.cfg.RetryAfter {
		return nil, v.lastErr
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), v.client), v.cfg.DiscoveryTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.cfg.Issuer)
	if err != nil {
		v.failedAt, v.lastErr = v.now(), fmt.Errorf("oidc discovery at %s: %w", v.cfg.Issuer, err)
		return nil, v.lastErr
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		v.failedAt, v.lastErr = v.now(), fmt.Errorf("oidc discovery at %s: no jwks_uri", v.cfg.Issuer)
		return nil, v.lastErr
	}
	ks := &keySet{url: meta.JWKSURI, client: v.client, now: v.now, minRefresh: v.cfg.KeyRefreshInterval, maxAge: v.cfg.KeyMaxAge}
	for _, a := range v.algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	vr := oidc.NewVerifier(v.cfg.Issuer, ks, &oidc.Config{ClientID: v.cfg.Audience, SupportedSigningAlgs: v.algs, Now: v.now})
	v.ready.Store(vr)
	v.failedAt, v.lastErr = time.Time{}, nil
	return vr, nil
}

// oidcClaims are the claims toolgate reads besides the registered ones.
type oidcClaims struct {
	Subject string `json:"sub"`
	Email   string `json:"email"`
	AZP     string `json:"azp"`
	JTI     string `json:"jti"`
}

// authenticate verifies a JWT and returns its principal. Every failure is
// unauthenticated, its message free of the token; the cause is logged
// without the token.
func (v *oidcVerifier) authenticate(ctx context.Context, token string) (broker.Principal, error) {
	idt, raw, err := v.verify(ctx, token)
	if err != nil {
		return broker.Principal{}, err
	}
	var c oidcClaims
	if err := idt.Claims(&c); err != nil {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the OIDC token's claims could not be read")
	}
	if c.Subject == "" {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the OIDC token has no \"sub\" claim")
	}
	groups, err := groupsClaim(raw[v.claim])
	if err != nil {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the OIDC token's %q claim must be a string or a list of strings", v.claim)
	}
	p := broker.Principal{Subject: broker.PrincipalName("user:" + c.Subject), Groups: groups, Method: broker.AuthOIDC, Client: c.AZP,
		IdPSubject: c.Subject}
	if c.Email != "" && v.emailVerified(raw["email_verified"]) {
		p.Subject = broker.PrincipalName("user:" + c.Email)
		p.Email = strings.TrimPrefix(p.Subject, "user:")
	}
	p.TokenID = c.JTI
	if p.TokenID == "" {
		sum := sha256.Sum256([]byte(token))
		p.TokenID = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return p, nil
}

// verify checks a JWT's algorithm, signature, issuer, audience and expiry
// and returns it with its raw claims. Every failure is unauthenticated, its
// message free of the token; the cause is logged without the token.
func (v *oidcVerifier) verify(ctx context.Context, token string) (*oidc.IDToken, map[string]json.RawMessage, error) {
	if alg, ok := jwtAlg(token); !ok {
		return nil, nil, broker.Errorf(broker.CodeUnauthenticated, "the bearer token is not a well-formed JWT")
	} else if !slices.Contains(v.algs, alg) {
		return nil, nil, broker.Errorf(broker.CodeUnauthenticated, "the OIDC token's signing algorithm is not accepted; accepted: %s", strings.Join(v.algs, ", "))
	}
	verifier, err := v.idTokenVerifier(ctx)
	if err != nil {
		v.log.Warn("oidc issuer unreachable", zap.String("issuer", v.cfg.Issuer), zap.Error(err))
		return nil, nil, broker.Wrap(broker.CodeUnauthenticated, errUnreachable, "the identity provider could not be reached; try again shortly")
	}
	idt, err := verifier.Verify(ctx, token)
	if err != nil {
		msg := verifyMessage(err)
		v.log.Debug("oidc token refused", zap.String("reason", msg), zap.String("cause", scrub(err.Error(), token)))
		return nil, nil, broker.Errorf(broker.CodeUnauthenticated, "%s", msg)
	}
	var raw map[string]json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return nil, nil, broker.Errorf(broker.CodeUnauthenticated, "the OIDC token's claims could not be read")
	}
	return idt, raw, nil
}

// emailVerified reports whether a token's email counts: its
// "email_verified" claim is true (or the string "true", as some issuers send
// it), or the claim is absent and the issuer is configured to issue only
// verified emails. Anything else (false, "false", null, another type) does
// not count.
func (v *oidcVerifier) emailVerified(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "true", `"true"`:
		return true
	case "":
		return v.cfg.AssumeEmailVerified
	default:
		return false
	}
}

// groupsClaim reads a groups claim that is a string or a list of strings.
// An absent, null or empty claim is no groups (nil), not an error.
func groupsClaim(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	out := many[:0]
	for _, g := range many {
		if g != "" {
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// looksLikeJWT reports whether a token has the three-segment compact shape.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// jwtAlg reads the "alg" header of a compact JWT without trusting it.
func jwtAlg(token string) (string, bool) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil || h.Alg == "" {
		return "", false
	}
	return h.Alg, true
}

// verifyMessage turns a go-oidc verification error into a safe sentence.
// go-oidc has no typed errors besides expiry, so the rest is matched on its
// wording; an unmatched error gets the generic sentence.
func verifyMessage(err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return "the OIDC token has expired"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "malformed jwt"):
		return "the bearer token is not a well-formed JWT"
	case strings.Contains(s, "issued by a different provider"):
		return "the OIDC token was issued by a different issuer than the one configured"
	case strings.Contains(s, "expected audience"):
		return "the OIDC token was not issued for this server (audience mismatch)"
	case strings.Contains(s, "nbf"):
		return "the OIDC token is not valid yet"
	case strings.Contains(s, "verify signature"), strings.Contains(s, "fetching keys"):
		return "the OIDC token's signature could not be verified"
	default:
		return "the OIDC token is not valid"
	}
}

// scrub removes the token from a string destined for a log.
func scrub(s, token string) string {
	if token == "" {
		return s
	}
	s = strings.ReplaceAll(s, token, "[token]")
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 {
			s = strings.ReplaceAll(s, part, "[token part]")
		}
	}
	return s
}
