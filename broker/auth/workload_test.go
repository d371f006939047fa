package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth/oidctest"
)

// TestWorkloadIdentity: a Kubernetes projected service account token from
// a configured workload issuer is the principal
// workload:<issuer>:system:serviceaccount:<ns>:<sa>; a token for another
// audience, expired, too long-lived, outside the required claims or signed
// with HS256 is refused, and a user token still goes to auth.oidc.
func TestWorkloadIdentity(t *testing.T) {
	clk := &clock{t: time.Now()}
	k8s := oidctest.New(t, oidctest.Options{Now: clk.Now, Audience: "toolgate"})
	idp := oidctest.New(t, oidctest.Options{Now: clk.Now})
	a, err := New(Config{
		OIDC: &OIDCConfig{Issuer: idp.URL, Audience: "toolgate", HTTPClient: idp.Client()},
		Workload: []WorkloadConfig{{Name: "prod", Issuer: k8s.URL, Audience: "toolgate", MaxLifetime: 2 * time.Hour,
			Claims: map[string][]string{"/kubernetes.io/namespace": {"agents"}}, HTTPClient: k8s.Client()}},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sa := k8s.ServiceAccountClaims("agents", "support-bot", "toolgate", time.Hour)
	p, b, err := a.Authenticate(ctx, k8s.Token(sa))
	if err != nil || b != nil {
		t.Fatalf("service account token: %v", err)
	}
	if p.Subject != "workload:prod:system:serviceaccount:agents:support-bot" || p.Method != broker.AuthWorkload || p.TokenID == "" || p.Email != "" || len(p.Groups) != 0 {
		t.Fatalf("principal: %+v", p)
	}
	if u, _, err := a.Authenticate(ctx, idp.Token(map[string]any{"email": "ana@example.com", "email_verified": true})); err != nil || u.Subject != "user:ana@example.com" {
		t.Fatalf("a user token: %+v %v", u, err)
	}

	with := func(over map[string]any) map[string]any {
		c := k8s.ServiceAccountClaims("agents", "support-bot", "toolgate", time.Hour)
		for k, v := range over {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{"another audience", k8s.Token(with(map[string]any{"aud": []string{"https://kubernetes.default.svc"}})), "audience"},
		{"expired", k8s.Token(with(map[string]any{"exp": clk.Now().Add(-time.Minute).Unix()})), "expired"},
		{"no expiry", k8s.Token(with(map[string]any{"exp": nil})), "expired"},
		{"a year long (a legacy token)", k8s.Token(with(map[string]any{"exp": clk.Now().Add(365 * 24 * time.Hour).Unix()})), "lives longer"},
		{"another namespace", k8s.Token(k8s.ServiceAccountClaims("default", "support-bot", "toolgate", time.Hour)), "/kubernetes.io/namespace"},
		{"no kubernetes.io claim", k8s.Token(with(map[string]any{"kubernetes.io": nil})), "/kubernetes.io/namespace"},
		{"HS256 with the public key", k8s.Token(sa, oidctest.HS256WithPublicKey()), "algorithm"},
		{"alg none", k8s.Token(sa, oidctest.AlgNone()), "algorithm"},
		{"signed by another key", k8s.Token(sa, oidctest.ForeignKey()), "signature"},
		{"no sub", k8s.Token(with(map[string]any{"sub": nil})), "sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, err := a.Authenticate(ctx, tc.token)
			if !errors.Is(err, broker.ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want unauthenticated mentioning %q", p, err, tc.want)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatal("the refusal echoes the token")
			}
		})
	}
}

// TestWorkloadConfigRefused: names, issuers and claim pointers are checked
// when the Authenticator is built.
func TestWorkloadConfigRefused(t *testing.T) {
	ok := WorkloadConfig{Name: "prod", Issuer: "https://k8s.example.com", Audience: "toolgate"}
	for name, cfg := range map[string]Config{
		"bad name":             {Workload: []WorkloadConfig{{Name: "Prod:1", Issuer: ok.Issuer, Audience: "toolgate"}}},
		"http issuer":          {Workload: []WorkloadConfig{{Name: "prod", Issuer: "http://k8s.example.com", Audience: "toolgate"}}},
		"no audience":          {Workload: []WorkloadConfig{{Name: "prod", Issuer: ok.Issuer}}},
		"same issuer as users": {OIDC: &OIDCConfig{Issuer: ok.Issuer, Audience: "x"}, Workload: []WorkloadConfig{ok}},
		"twice":                {Workload: []WorkloadConfig{ok, ok}},
		"claim not a pointer":  {Workload: []WorkloadConfig{{Name: "prod", Issuer: ok.Issuer, Audience: "t", Claims: map[string][]string{"namespace": {"a"}}}}},
		"HS256":                {Workload: []WorkloadConfig{{Name: "prod", Issuer: ok.Issuer, Audience: "t", Algorithms: []string{"HS256"}}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
