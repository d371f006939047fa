package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth/oidctest"
)

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// bogusTokens returns n invalid bearer tokens of every shape: unknown grant
// tokens, unknown API keys, garbage, JWT-shaped noise, and JWTs forged with
// a key outside the JWKS or an unknown kid.
func bogusTokens(is *oidctest.Issuer, n int) []string {
	var forged []string
	for i := 0; i < 50; i++ {
		forged = append(forged, is.Token(map[string]any{"sub": fmt.Sprint("mallory", i)}, oidctest.ForeignKey()),
			is.Token(map[string]any{"sub": fmt.Sprint("mallory", i)}, oidctest.KeyID(fmt.Sprint("kid", i))),
			is.Token(nil, oidctest.AlgNone()), is.Token(nil, oidctest.HS256WithPublicKey()))
	}
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		switch i % 6 {
		case 0:
			tok, _ := NewToken(GrantTokenPrefix)
			out = append(out, tok)
		case 1:
			tok, _ := NewToken(APIKeyPrefix)
			out = append(out, tok)
		case 2:
			out = append(out, randB64(30))
		case 3:
			head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + randB64(6) + `"}`))
			out = append(out, head+"."+randB64(60)+"."+randB64(256))
		case 4, 5:
			out = append(out, forged[i%len(forged)])
		}
	}
	return out
}

// TestBogusTokenFlood sends 10,000 invalid tokens concurrently with valid
// ones: every bogus token is refused, every valid call keeps working, and
// no log entry contains any token.
func TestBogusTokenFlood(t *testing.T) {
	is := oidctest.New(t, oidctest.Options{})
	core, logs := observer.New(zap.DebugLevel)
	store := mustStore(t)
	key, sum, _ := NewAPIKey()
	a, err := New(Config{
		APIKeys: []APIKey{{Name: "support-bot", SHA256: sum}},
		OIDC:    &OIDCConfig{Issuer: is.URL, Audience: "toolgate", HTTPClient: is.Client()},
		Grants:  store,
		Logger:  zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	grants, err := NewGrants(GrantsConfig{Store: store, Graphs: testGraphs})
	if err != nil {
		t.Fatal(err)
	}
	res, err := grants.Mint(context.Background(), bot, MintRequest{Graph: "support-bot", RunID: "r1", Nodes: []string{"triage"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{key: "key:support-bot", is.Token(nil): "user:alice", res.Tokens["triage"]: "grant:" + res.GrantID}
	bogus := bogusTokens(is, 10000)

	ctx := context.Background()
	var (
		next     atomic.Int64
		accepted atomic.Int64
		done     = make(chan struct{})
		wg       sync.WaitGroup
		vwg      sync.WaitGroup
		validOK  atomic.Int64
		validBad atomic.Int64
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(bogus)) {
					return
				}
				p, bd, err := a.Authenticate(ctx, bogus[i])
				if broker.CodeOf(err) != broker.CodeUnauthenticated || p.Subject != "" || bd != nil {
					accepted.Add(1)
				}
				if err != nil && strings.Contains(err.Error(), bogus[i]) {
					accepted.Add(1)
				}
			}
		}()
	}
	for tok, subject := range valid {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				p, _, err := a.Authenticate(ctx, tok)
				if err != nil || p.Subject != subject {
					validBad.Add(1)
				} else {
					validOK.Add(1)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	close(done)
	vwg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d bogus tokens were accepted or echoed", n)
	}
	if validBad.Load() != 0 || validOK.Load() < 3 {
		t.Errorf("valid calls during the flood: %d ok, %d failed", validOK.Load(), validBad.Load())
	}
	var all strings.Builder
	for _, e := range logs.All() {
		all.WriteString(logLine(e))
		all.WriteByte('\n')
	}
	if leaked := findSecrets(all.String(), append(bogus, keys(valid)...)); len(leaked) > 0 {
		t.Errorf("%d tokens (or JWT segments) appear in the log, e.g. %.20s…", len(leaked), leaked[0])
	}
	t.Logf("%d bogus refused, %d valid calls succeeded meanwhile, %d log entries, %d JWKS fetches", len(bogus), validOK.Load(), logs.Len(), is.JWKSFetches())
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// findSecrets returns the secrets, or JWT segments of 16 characters or more,
// that occur in text. It slides a 16-byte window over text once instead of
// searching text for every secret.
func findSecrets(text string, secrets []string) []string {
	const w = 16
	byPrefix := map[string][]string{}
	for _, s := range secrets {
		parts := []string{s}
		if strings.Contains(s, ".") {
			parts = append(parts, strings.Split(s, ".")...)
		}
		for _, part := range parts {
			if len(part) >= w {
				byPrefix[part[:w]] = append(byPrefix[part[:w]], part)
			}
		}
	}
	var found []string
	for i := 0; i+w <= len(text); i++ {
		for _, cand := range byPrefix[text[i:i+w]] {
			if strings.HasPrefix(text[i:], cand) {
				found = append(found, cand)
			}
		}
	}
	return found
}

func TestFindSecrets(t *testing.T) {
	tok := "tg_0123456789abcdefghijXYZ"
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
	if got := findSecrets("refused "+tok+" and eyJzdWIiOiJhbGljZSJ9 here", []string{tok, jwt}); len(got) != 2 {
		t.Errorf("found %v, want the token and the JWT payload", got)
	}
	if got := findSecrets("nothing to see", []string{tok, jwt}); len(got) != 0 {
		t.Errorf("found %v in a clean text", got)
	}
}
