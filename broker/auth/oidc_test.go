package auth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth/oidctest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newOIDCAuth(t *testing.T, is *oidctest.Issuer, now func() time.Time, log *zap.Logger) *Authenticator {
	t.Helper()
	a, err := New(Config{OIDC: &OIDCConfig{Issuer: is.URL, Audience: "toolgate", HTTPClient: is.Client()}, Now: now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestOIDCTokens(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	core, logs := observer.New(zap.DebugLevel)
	a := newOIDCAuth(t, is, nil, zap.New(core))
	now := time.Now()
	ok := func(want broker.Principal) func(*testing.T, broker.Principal) {
		return func(t *testing.T, got broker.Principal) {
			t.Helper()
			if got.Subject != want.Subject || got.Email != want.Email || got.Client != want.Client ||
				got.Method != broker.AuthOIDC || strings.Join(got.Groups, ",") != strings.Join(want.Groups, ",") ||
				(want.Groups == nil) != (got.Groups == nil) {
				t.Errorf("principal = %+v, want %+v", got, want)
			}
			if want.Client != "" && !slices.Contains(got.Names(), "client:"+want.Client) {
				t.Errorf("names %v lack client:%s", got.Names(), want.Client)
			}
			for _, g := range want.Groups {
				if !slices.Contains(got.Names(), "group:"+g) {
					t.Errorf("names %v lack group:%s", got.Names(), g)
				}
			}
			if want.Email == "" && slices.Contains(got.Names(), "user:mallory@example.com") {
				t.Errorf("unverified email became a name: %v", got.Names())
			}
			if want.TokenID != "" && got.TokenID != want.TokenID {
				t.Errorf("token id = %q, want %q", got.TokenID, want.TokenID)
			}
			if !strings.HasPrefix(got.TokenID, "sha256:") && got.TokenID != want.TokenID {
				t.Errorf("token id = %q", got.TokenID)
			}
		}
	}
	cases := []struct {
		name    string
		token   string
		wantErr string // substring of the refusal; "" means accepted
		check   func(*testing.T, broker.Principal)
	}{
		{name: "valid RS256 with verified email, groups and azp",
			token: is.Token(map[string]any{"email": "alice@example.com", "email_verified": true, "groups": []string{"ops", "finance"}, "azp": "langgraph", "jti": "j-1"}),
			check: ok(broker.Principal{Subject: "user:alice@example.com", Email: "alice@example.com", Groups: []string{"ops", "finance"}, Client: "langgraph", TokenID: "j-1"})},
		{name: "valid ES256, no email",
			token: is.Token(map[string]any{"sub": "u-42"}, oidctest.ES256()),
			check: ok(broker.Principal{Subject: "user:u-42"})},
		{name: "unverified email falls back to sub",
			token: is.Token(map[string]any{"email": "mallory@example.com", "email_verified": false}),
			check: ok(broker.Principal{Subject: "user:alice"})},
		{name: "missing groups claim is no groups",
			token: is.Token(map[string]any{"groups": nil}),
			check: ok(broker.Principal{Subject: "user:alice"})},
		{name: "groups as a string",
			token: is.Token(map[string]any{"groups": "ops"}),
			check: ok(broker.Principal{Subject: "user:alice", Groups: []string{"ops"}})},
		{name: "groups of the wrong type", token: is.Token(map[string]any{"groups": []any{"ops", 7}}), wantErr: "must be a string or a list of strings"},
		{name: "expired", token: is.Token(map[string]any{"exp": now.Add(-time.Minute).Unix()}), wantErr: "has expired"},
		{name: "no exp", token: is.Token(map[string]any{"exp": nil}), wantErr: "has expired"},
		{name: "not yet valid", token: is.Token(map[string]any{"nbf": now.Add(time.Hour).Unix()}), wantErr: "not valid yet"},
		{name: "wrong audience", token: is.Token(map[string]any{"aud": "someone-else"}), wantErr: "audience mismatch"},
		{name: "wrong issuer", token: is.Token(map[string]any{"iss": "https://evil.example.com"}), wantErr: "different issuer"},
		{name: "bad signature", token: is.Token(nil, oidctest.ForeignKey()), wantErr: "signature could not be verified"},
		{name: "alg none", token: is.Token(nil, oidctest.AlgNone()), wantErr: "signing algorithm is not accepted"},
		{name: "HS256 keyed with the public key", token: is.Token(nil, oidctest.HS256WithPublicKey()), wantErr: "signing algorithm is not accepted"},
		{name: "unknown kid", token: is.Token(nil, oidctest.KeyID("nobody")), wantErr: "signature could not be verified"},
		{name: "no sub", token: is.Token(map[string]any{"sub": nil}), wantErr: "no \"sub\" claim"},
		{name: "malformed JWT", token: "abc.def.ghi", wantErr: "not a well-formed JWT"},
		{name: "malformed payload", token: strings.SplitN(is.Token(nil), ".", 2)[0] + ".!!!.sig", wantErr: "not a well-formed JWT"},
		{name: "tampered payload", token: tamper(is.Token(nil)), wantErr: "signature could not be verified"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, bd, err := a.Authenticate(context.Background(), c.token)
			if c.wantErr == "" {
				if err != nil || bd != nil {
					t.Fatalf("refused a valid token: %v", err)
				}
				c.check(t, p)
				return
			}
			if broker.CodeOf(err) != broker.CodeUnauthenticated {
				t.Fatalf("err = %v, want unauthenticated", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("err = %q, want it to say %q", err, c.wantErr)
			}
			if p.Subject != "" {
				t.Errorf("refusal returned a principal %+v", p)
			}
			assertNoToken(t, err.Error(), c.token)
		})
	}
	for _, e := range logs.All() {
		for _, c := range cases {
			assertNoToken(t, logLine(e), c.token)
		}
	}
}

// tamper flips the subject in a signed token's payload.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = parts[1][:len(parts[1])-2] + "AA"
	return strings.Join(parts, ".")
}

func logLine(e observer.LoggedEntry) string {
	var b strings.Builder
	b.WriteString(e.Message)
	for k, v := range e.ContextMap() {
		b.WriteString(" " + k + "=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")))
	}
	return b.String()
}

func assertNoToken(t *testing.T, s, token string) {
	t.Helper()
	if token == "" {
		return
	}
	if strings.Contains(s, token) {
		t.Errorf("%q contains the token", s)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 16 && strings.Contains(s, part) {
			t.Errorf("%q contains part of the token", s)
		}
	}
}

func TestOIDCIssuerDownAtFirstUse(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	is.SetDown(true)
	clk := &clock{t: time.Now()}
	a := newOIDCAuth(t, is, clk.Now, nil) // New must not need the issuer.
	tok := is.Token(nil)
	_, _, err := a.Authenticate(context.Background(), tok)
	if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "identity provider could not be reached") {
		t.Fatalf("issuer down: err = %v", err)
	}
	assertNoToken(t, err.Error(), tok)
	is.SetDown(false)
	// Within RetryAfter the failure is remembered: still refused, and the
	// issuer is not asked again.
	if _, _, err := a.Authenticate(context.Background(), tok); broker.CodeOf(err) != broker.CodeUnauthenticated {
		t.Fatalf("within retry interval: err = %v", err)
	}
	if n := is.Discoveries(); n != 0 {
		t.Fatalf("discoveries = %d during the retry interval", n)
	}
	clk.Add(3 * time.Second)
	p, _, err := a.Authenticate(context.Background(), tok)
	if err != nil || p.Subject != "user:alice" {
		t.Fatalf("issuer back up: %+v %v", p, err)
	}
	// The provider and keys are cached: a second token costs no request.
	d, j := is.Discoveries(), is.JWKSFetches()
	if _, _, err := a.Authenticate(context.Background(), is.Token(map[string]any{"sub": "bob"})); err != nil {
		t.Fatal(err)
	}
	if is.Discoveries() != d || is.JWKSFetches() != j {
		t.Errorf("second token refetched discovery or keys")
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	clk := &clock{t: time.Now()}
	a := newOIDCAuth(t, is, clk.Now, nil)
	if _, _, err := a.Authenticate(context.Background(), is.Token(nil)); err != nil {
		t.Fatal(err)
	}
	rotated := is.RotateIn(t, "rsa-2")
	// Within KeyRefreshInterval an unknown kid does not refetch the keys.
	fetches := is.JWKSFetches()
	if _, _, err := a.Authenticate(context.Background(), is.Token(nil, rotated)); broker.CodeOf(err) != broker.CodeUnauthenticated {
		t.Fatalf("unknown kid within the refresh interval: %v", err)
	}
	if is.JWKSFetches() != fetches {
		t.Fatal("refetched keys within the refresh interval")
	}
	clk.Add(11 * time.Second)
	if _, _, err := a.Authenticate(context.Background(), is.Token(nil, rotated)); err != nil {
		t.Fatalf("token signed by a newly published key: %v", err)
	}
}

func TestOIDCForgeriesDoNotHammerIssuer(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	a := newOIDCAuth(t, is, nil, nil)
	if _, _, err := a.Authenticate(context.Background(), is.Token(nil)); err != nil {
		t.Fatal(err)
	}
	fetches := is.JWKSFetches()
	for i := 0; i < 200; i++ {
		for _, tok := range []string{is.Token(nil, oidctest.ForeignKey()), is.Token(nil, oidctest.KeyID(fmt.Sprint("k", i)))} {
			if _, _, err := a.Authenticate(context.Background(), tok); broker.CodeOf(err) != broker.CodeUnauthenticated {
				t.Fatalf("forgery accepted: %v", err)
			}
		}
	}
	if n := is.JWKSFetches() - fetches; n > 1 {
		t.Errorf("400 forged tokens caused %d JWKS fetches, want at most 1", n)
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	for name, c := range map[string]OIDCConfig{
		"no issuer":      {Audience: "a"},
		"relative":       {Issuer: "idp.example.com", Audience: "a"},
		"plain http":     {Issuer: "http://idp.example.com", Audience: "a"},
		"no audience":    {Issuer: "https://idp.example.com"},
		"alg none":       {Issuer: "https://idp.example.com", Audience: "a", Algorithms: []string{"none"}},
		"alg HS256":      {Issuer: "https://idp.example.com", Audience: "a", Algorithms: []string{"RS256", "HS256"}},
		"negative retry": {Issuer: "https://idp.example.com", Audience: "a", RetryAfter: -1},
	} {
		if _, err := New(Config{OIDC: &c}); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
	for _, c := range []OIDCConfig{
		{Issuer: "https://idp.example.com", Audience: "a"},
		{Issuer: "http://127.0.0.1:9999", Audience: "a", Algorithms: []string{"ES384"}},
	} {
		if _, err := New(Config{OIDC: &c}); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestJWTWithoutOIDC(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Authenticate(context.Background(), is.Token(nil))
	if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "no auth.oidc") {
		t.Fatalf("err = %v", err)
	}
	if is.Discoveries() != 0 {
		t.Error("contacted an issuer that is not configured")
	}
}

func fmtAny(v any) string { return strings.TrimSpace(fmt.Sprint(v)) }

func TestGrantTokenWithoutStore(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewToken(GrantTokenPrefix)
	_, bd, err := a.Authenticate(context.Background(), tok)
	if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "grant tokens are not accepted") || bd != nil {
		t.Fatalf("err = %v", err)
	}
}

func TestOIDCIssuerConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	is := oidctest.New(t, oidctest.Options{})
	a, err := New(Config{OIDC: &OIDCConfig{Issuer: "http://" + addr, Audience: "toolgate", DiscoveryTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Authenticate(context.Background(), is.Token(map[string]any{"iss": "http://" + addr}))
	if broker.CodeOf(err) != broker.CodeUnauthenticated || !strings.Contains(err.Error(), "identity provider could not be reached") {
		t.Fatalf("err = %v", err)
	}
}

// TestOIDCEmailNeedsVerification: an email claim makes the principal
// user:<email> only with "email_verified": true. A token that omits the
// claim (an IdP that leaves it out, or a forged profile) acts as
// user:<sub>, so an approver or auditor listed by email cannot be
// impersonated; the per-issuer opt-in assume_email_verified trusts an
// absent claim, never an explicit false. Emails are compared lower-cased.
func TestOIDCEmailNeedsVerification(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	strict := newOIDCAuth(t, is, nil, nil)
	lenient, err := New(Config{OIDC: &OIDCConfig{Issuer: is.URL, Audience: "toolgate", HTTPClient: is.Client(), AssumeEmailVerified: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		claims         map[string]any
		strict, lenien string
	}{
		{"no email_verified claim", map[string]any{"sub": "u-mallory", "email": "boss@example.com"}, "user:u-mallory", "user:boss@example.com"},
		{"email_verified false", map[string]any{"sub": "u-mallory", "email": "boss@example.com", "email_verified": false}, "user:u-mallory", "user:u-mallory"},
		{"email_verified null", map[string]any{"sub": "u-mallory", "email": "boss@example.com", "email_verified": "null"}, "user:u-mallory", "user:u-mallory"},
		{"email_verified \"false\"", map[string]any{"sub": "u-mallory", "email": "boss@example.com", "email_verified": "false"}, "user:u-mallory", "user:u-mallory"},
		{"email_verified 1", map[string]any{"sub": "u-mallory", "email": "boss@example.com", "email_verified": 1}, "user:u-mallory", "user:u-mallory"},
		{"email_verified true", map[string]any{"sub": "u-ana", "email": "Ana@Example.COM", "email_verified": true}, "user:ana@example.com", "user:ana@example.com"},
		{"email_verified \"true\"", map[string]any{"sub": "u-ana", "email": "ana@example.com", "email_verified": "true"}, "user:ana@example.com", "user:ana@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := is.Token(tc.claims)
			for _, c := range []struct {
				a    *Authenticator
				want string
			}{{strict, tc.strict}, {lenient, tc.lenien}} {
				p, _, err := c.a.Authenticate(context.Background(), tok)
				if err != nil {
					t.Fatal(err)
				}
				if p.Subject != c.want {
					t.Errorf("subject = %q, want %q", p.Subject, c.want)
				}
				if c.want == "user:u-mallory" && (p.Email != "" || slices.Contains(p.Names(), "user:boss@example.com")) {
					t.Errorf("an unverified email counts: %+v names %v", p, p.Names())
				}
			}
		})
	}
}

// TestOIDCRemovedKeyStopsVerifying: the key set is cached no longer than
// its Cache-Control max-age (or Expires, or 1h without either); a key the
// issuer has removed stops verifying tokens once the cache expires, and
// expired keys are not used when the issuer cannot be reached.
func TestOIDCRemovedKeyStopsVerifying(t *testing.T) {
	for _, tc := range []struct {
		name, header, value string
		alive, expired      time.Duration
	}{
		{"cache-control max-age", "Cache-Control", "public, max-age=60", 50 * time.Second, 61 * time.Second},
		{"no-store is the refresh interval", "Cache-Control", "no-store", 5 * time.Second, 11 * time.Second},
		{"expires", "Expires", "", 100 * time.Second, 121 * time.Second},
		{"no cache headers: one hour", "", "", 59 * time.Minute, 61 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			is := oidctest.New(t, oidctest.Options{Now: clk.Now})
			value := tc.value
			if tc.header == "Expires" {
				value = clk.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
			}
			if tc.header != "" {
				is.SetJWKSHeader(tc.header, value)
			}
			a := newOIDCAuth(t, is, clk.Now, nil)
			ctx := context.Background()
			old := is.Token(nil) // signed with rsa-1, valid for an hour and more
			if _, _, err := a.Authenticate(ctx, old); err != nil {
				t.Fatal(err)
			}
			next := is.RotateIn(t, "rsa-2")
			is.Retire(oidctest.RSAKeyID)
			clk.Add(tc.alive)
			if _, _, err := a.Authenticate(ctx, old); err != nil {
				t.Fatalf("within the cache lifetime: %v", err)
			}
			clk.Add(tc.expired - tc.alive)
			long := is.Token(map[string]any{"exp": clk.Now().Add(time.Hour).Unix()})
			if _, _, err := a.Authenticate(ctx, long); broker.CodeOf(err) != broker.CodeUnauthenticated {
				t.Fatalf("a token of the removed key after the cache expired: %v, want unauthenticated", err)
			}
			if _, _, err := a.Authenticate(ctx, is.Token(map[string]any{"exp": clk.Now().Add(time.Hour).Unix()}, next)); err != nil {
				t.Fatalf("a token of the new key: %v", err)
			}
			// Expired keys are not used while the issuer is down.
			clk.Add(2 * time.Hour)
			is.SetDown(true)
			tok := is.Token(map[string]any{"exp": clk.Now().Add(time.Hour).Unix()}, next)
			if _, _, err := a.Authenticate(ctx, tok); broker.CodeOf(err) != broker.CodeUnauthenticated {
				t.Fatalf("expired keys with the issuer down: %v, want unauthenticated", err)
			}
		})
	}
}
