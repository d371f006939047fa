package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// APIKeyPrefix starts every toolgate API key, so secret scanners can find
// leaked ones.
const APIKeyPrefix = "tgk_"

// APIKey is a configured API key: its name and the hex SHA-256 of the key.
type APIKey struct {
	Name   string
	SHA256 string
	// Owner is the principal accountable for the key, "" when none is
	// declared. While the owner is disabled the key is suspended.
	Owner string
	// Expires, when not zero, is when the key stops working.
	Expires time.Time
}

// Config configures the Authenticator.
type Config struct {
	APIKeys []APIKey
	// OIDC, when set, accepts JWTs from one OIDC issuer.
	OIDC *OIDCConfig
	// Grants, when set, accepts tg_ grant tokens minted by Grants.
	Grants GrantStore
	// Keys, when set, accepts the API keys made at run time (Keys.Create);
	// every use reads the store, so a revocation holds from the next
	// request on every instance.
	Keys KeyLookup
	// Usage, when set, notes each key's use (at most once a minute per
	// key, written off the request path).
	Usage *Usage
	// Workload lists the workload identity issuers (auth.workload) whose
	// tokens are accepted as workload:<name>:<sub>.
	Workload []WorkloadConfig
	// Now is the clock for token expiry; time.Now when nil.
	Now    func() time.Time
	Logger *zap.Logger
}

// Validate checks the keys and the OIDC config.
func (c Config) Validate() error {
	if c.OIDC != nil {
		if err := c.OIDC.Validate(); err != nil {
			return err
		}
	}
	if err := validateWorkload(c.Workload, c.OIDC); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, k := range c.APIKeys {
		if k.Name == "" {
			return fmt.Errorf("api key without a name")
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("api key %s: sha256 must be 64 hex characters", k.Name)
		}
		if seen[k.SHA256] {
			return fmt.Errorf("api key %s: the same key hash is configured twice", k.Name)
		}
		seen[k.SHA256] = true
	}
	return nil
}

// Authenticator verifies bearer tokens: API keys, OIDC JWTs and grant
// tokens. It holds no cache: a revoked grant fails on the very next call.
type Authenticator struct {
	keys     map[[sha256.Size]byte]APIKey
	oidc     *oidcVerifier
	workload map[string]*workloadVerifier // by issuer URL
	grants   GrantStore
	stored   KeyLookup
	usage    *Usage
	now      func() time.Time
	log      *zap.Logger
}

var _ broker.Authenticator = (*Authenticator)(nil)

// New returns an Authenticator for a valid config. It does not contact the
// OIDC issuer: discovery happens on the first JWT, so toolgate starts while
// the issuer is down.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{keys: map[[sha256.Size]byte]APIKey{}, grants: cfg.Grants, stored: cfg.Keys, usage: cfg.Usage, now: cfg.Now, log: cfg.Logger}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.OIDC != nil {
		a.oidc = newOIDCVerifier(*cfg.OIDC, a.now, a.log)
	}
	a.workload = map[string]*workloadVerifier{}
	for _, w := range cfg.Workload {
		a.workload[w.Issuer] = newWorkloadVerifier(w, a.now, a.log)
	}
	for _, k := range cfg.APIKeys {
		var sum [sha256.Size]byte
		b, _ := hex.DecodeString(strings.ToLower(k.SHA256))
		copy(sum[:], b)
		a.keys[sum] = k
	}
	return a, nil
}

// Authenticate verifies a token and returns its principal, and for a grant
// token the binding it fixes. Every failure is unauthenticated with a
// message that does not contain the token; it fails closed when the issuer
// or the grant store cannot answer.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (broker.Principal, *broker.Binding, error) {
	switch {
	case strings.HasPrefix(token, APIKeyPrefix):
		p, err := a.authenticateKey(ctx, token)
		return p, nil, err
	case strings.HasPrefix(token, GrantTokenPrefix):
		return a.authenticateGrant(ctx, token)
	case looksLikeJWT(token):
		p, err := a.authenticateJWT(ctx, token)
		return p, nil, err
	}
	return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the bearer token is not a recognised credential")
}

// HashKey returns the hex SHA-256 of a key, as configured in api_keys.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewToken returns prefix followed by 40 random base62 characters (about
// 238 bits of entropy).
func NewToken(prefix string) (string, error) { return randomString(prefix, 40) }

// newID returns prefix followed by 20 random base62 characters, for ids
// that are not secrets.
func newID(prefix string) (string, error) { return randomString(prefix, 20) }

func randomString(prefix string, n int) (string, error) {
	var b strings.Builder
	b.WriteString(prefix)
	max := big.NewInt(int64(len(base62)))
	for i := 0; i < n; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		b.WriteByte(base62[n.Int64()])
	}
	return b.String(), nil
}

// NewAPIKey returns a new API key and its hex SHA-256.
func NewAPIKey() (key, sha string, err error) {
	key, err = NewToken(APIKeyPrefix)
	if err != nil {
		return "", "", err
	}
	return key, HashKey(key), nil
}
