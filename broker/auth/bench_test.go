package auth

import (
	"context"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker/auth/oidctest"
)

// BenchmarkAuthenticate measures one Authenticate per credential kind; the
// grant token is looked up in a real SQLite file on every call (no cache).
func BenchmarkAuthenticate(b *testing.B) {
	is := oidctest.New(b, oidctest.Options{})
	store := mustStore(b)
	key, sum, _ := NewAPIKey()
	a, err := New(Config{APIKeys: []APIKey{{Name: "k", SHA256: sum}}, Grants: store,
		OIDC: &OIDCConfig{Issuer: is.URL, Audience: "toolgate", HTTPClient: is.Client()}})
	if err != nil {
		b.Fatal(err)
	}
	grants, err := NewGrants(GrantsConfig{Store: store, Graphs: testGraphs})
	if err != nil {
		b.Fatal(err)
	}
	res, err := grants.Mint(context.Background(), bot, MintRequest{Graph: "support-bot", RunID: "r", Nodes: []string{"triage"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for name, tok := range map[string]string{
		"api_key":         key,
		"grant_sqlite":    res.Tokens["triage"],
		"grant_unknown":   "tg_" + "0123456789012345678901234567890123456789",
		"oidc_rs256":      is.Token(nil),
		"oidc_es256":      is.Token(nil, oidctest.ES256()),
		"oidc_forged_sig": is.Token(nil, oidctest.ForeignKey()),
	} {
		b.Run(name, func(b *testing.B) {
			_, _, err := a.Authenticate(context.Background(), tok)
			wantErr := name == "grant_unknown" || name == "oidc_forged_sig"
			if (err != nil) != wantErr {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _, _ = a.Authenticate(context.Background(), tok)
				}
			})
		})
	}
}
