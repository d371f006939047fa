package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// WorkloadConfig is one workload identity issuer (auth.workload.<name>): a
// Kubernetes cluster's service account issuer, a CI system's OIDC issuer.
// Its tokens are verified with go-oidc like auth.oidc's (discovery,
// RS*/ES* only, bounded key cache) and name the principal
// workload:<Name>:<sub>, e.g.
// workload:prod:system:serviceaccount:agents:support-bot.
type WorkloadConfig struct {
	// Name is the issuer's name in principals: lower-case letters, digits,
	// '_' and '-'.
	Name string
	// Issuer is the issuer URL ("iss"); discovery reads
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Audience must appear in the token's "aud" (e.g. the audience of the
	// projected service account token volume, "toolgate").
	Audience string
	// Algorithms are the accepted signing algorithms; DefaultAlgorithms
	// when empty.
	Algorithms []string
	// MaxLifetime refuses a token that lives longer (exp - iat, or exp -
	// now without iat), so long-lived static tokens are not accepted;
	// DefaultWorkloadMaxLifetime when zero.
	MaxLifetime time.Duration
	// Claims are required claim values: a JSON pointer into the claims
	// ("/kubernetes.io/namespace", "/repository_owner") and the values it
	// may have. A token missing one, or with another value, is refused.
	Claims map[string][]string
	// HTTPClient reaches the issuer (e.g. trusting the cluster's CA); a
	// client with a 10s timeout when nil.
	HTTPClient *http.Client
}

// DefaultWorkloadMaxLifetime is the longest a workload token may live when
// WorkloadConfig.MaxLifetime is zero: Kubernetes projects tokens for 1h by
// default, CI systems for minutes.
const DefaultWorkloadMaxLifetime = 2 * time.Hour

// WorkloadNamePattern is what a workload issuer name may look like.
var WorkloadNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validateWorkload checks the workload issuers, which must not share a name
// or an issuer with each other or with auth.oidc.
func validateWorkload(ws []WorkloadConfig, user *OIDCConfig) error {
	names, issuers := map[string]bool{}, map[string]bool{}
	if user != nil {
		issuers[user.Issuer] = true
	}
	for _, w := range ws {
		if !WorkloadNamePattern.MatchString(w.Name) {
			return fmt.Errorf("workload issuer name %q must be lower-case letters, digits, '_' or '-'", w.Name)
		}
		if err := (OIDCConfig{Issuer: w.Issuer, Audience: w.Audience, Algorithms: w.Algorithms}).Validate(); err != nil {
			return fmt.Errorf("workload issuer %s: %w", w.Name, err)
		}
		if names[w.Name] || issuers[w.Issuer] {
			return fmt.Errorf("workload issuer %s: its name or issuer %s is used twice (also by auth.oidc?)", w.Name, w.Issuer)
		}
		names[w.Name], issuers[w.Issuer] = true, true
		if w.MaxLifetime < 0 {
			return fmt.Errorf("workload issuer %s: max lifetime must not be negative", w.Name)
		}
		for ptr := range w.Claims {
			if !strings.HasPrefix(ptr, "/") {
				return fmt.Errorf("workload issuer %s: claim %q must be a JSON pointer such as /kubernetes.io/namespace", w.Name, ptr)
			}
		}
	}
	return nil
}

// workloadVerifier verifies the tokens of one workload issuer.
type workloadVerifier struct {
	cfg WorkloadConfig
	v   *oidcVerifier
}

func newWorkloadVerifier(cfg WorkloadConfig, now func() time.Time, log *zap.Logger) *workloadVerifier {
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultWorkloadMaxLifetime
	}
	oc := OIDCConfig{Issuer: cfg.Issuer, Audience: cfg.Audience, Algorithms: cfg.Algorithms, HTTPClient: cfg.HTTPClient}
	return &workloadVerifier{cfg: cfg, v: newOIDCVerifier(oc, now, log.With(zap.String("workload_issuer", cfg.Name)))}
}

// authenticateJWT routes a JWT by its (not yet trusted) "iss" claim: a
// workload issuer's token to its verifier, anything else to auth.oidc,
// whose verifier then checks the issuer.
func (a *Authenticator) authenticateJWT(ctx context.Context, token string) (broker.Principal, error) {
	if w, ok := a.workload[jwtIssuer(token)]; ok {
		return w.authenticate(ctx, token)
	}
	if a.oidc == nil {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "OIDC tokens are not accepted by this server (no auth.oidc configured, and the token's issuer is not in auth.workload)")
	}
	return a.oidc.authenticate(ctx, token)
}

// authenticate verifies a workload token and returns its principal.
func (w *workloadVerifier) authenticate(ctx context.Context, token string) (broker.Principal, error) {
	idt, raw, err := w.v.verify(ctx, token)
	if err != nil {
		return broker.Principal{}, err
	}
	if idt.Subject == "" {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the workload token has no \"sub\" claim")
	}
	start := idt.IssuedAt
	if start.IsZero() || start.After(w.v.now()) {
		start = w.v.now()
	}
	if idt.Expiry.Sub(start) > w.cfg.MaxLifetime {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the workload token lives longer than %s (auth.workload.%s.max_lifetime); issue a shorter-lived token", w.cfg.MaxLifetime, w.cfg.Name)
	}
	if ptr, ok := w.claimsMismatch(raw); ok {
		return broker.Principal{}, broker.Errorf(broker.CodeUnauthenticated, "the workload token's claim %s is missing or not one auth.workload.%s.claims accepts", ptr, w.cfg.Name)
	}
	p := broker.Principal{Subject: broker.PrincipalName("workload:" + w.cfg.Name + ":" + idt.Subject), Method: broker.AuthWorkload}
	var c struct {
		JTI string `json:"jti"`
	}
	_ = idt.Claims(&c)
	p.TokenID = c.JTI
	if p.TokenID == "" {
		sum := sha256.Sum256([]byte(token))
		p.TokenID = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return p, nil
}

// claimsMismatch returns the first required claim (in pointer order) that
// the token lacks or has another value for.
func (w *workloadVerifier) claimsMismatch(raw map[string]json.RawMessage) (string, bool) {
	ptrs := make([]string, 0, len(w.cfg.Claims))
	for p := range w.cfg.Claims {
		ptrs = append(ptrs, p)
	}
	slices.Sort(ptrs)
	for _, ptr := range ptrs {
		v, ok := claimAt(raw, ptr)
		if !ok || !slices.Contains(w.cfg.Claims[ptr], v) {
			return ptr, true
		}
	}
	return "", false
}

// claimAt resolves a JSON pointer in the claims to a string, number or
// boolean, as text.
func claimAt(raw map[string]json.RawMessage, ptr string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	var cur any
	obj := map[string]any{}
	for k, v := range raw {
		var x any
		if json.Unmarshal(v, &x) == nil {
			obj[k] = x
		}
	}
	cur = obj
	for _, p := range parts {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[p]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case float64, bool:
		return fmt.Sprint(v), true
	}
	return "", false
}

// jwtIssuer reads the "iss" claim of a compact JWT without trusting it, ""
// when it has none.
func jwtIssuer(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}
