package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

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
}

// Config configures the Authenticator.
type Config struct {
	APIKeys []APIKey
	Logger  *zap.Logger
}

// Validate checks the keys.
func (c Config) Validate() error {
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

// Authenticator verifies bearer tokens.
type Authenticator struct {
	keys map[[sha256.Size]byte]string
	log  *zap.Logger
}

var _ broker.Authenticator = (*Authenticator)(nil)

// New returns an Authenticator for a valid config.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{keys: map[[sha256.Size]byte]string{}, log: cfg.Logger}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	for _, k := range cfg.APIKeys {
		var sum [sha256.Size]byte
		b, _ := hex.DecodeString(strings.ToLower(k.SHA256))
		copy(sum[:], b)
		a.keys[sum] = k.Name
	}
	return a, nil
}

// Authenticate verifies a token and returns its principal.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (broker.Principal, *broker.Binding, error) {
	if strings.HasPrefix(token, APIKeyPrefix) {
		if name, ok := a.keys[sha256.Sum256([]byte(token))]; ok {
			return broker.Principal{Subject: "key:" + name, Method: broker.AuthAPIKey, TokenID: "key:" + name}, nil, nil
		}
		return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the API key is not valid")
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
func NewToken(prefix string) (string, error) {
	var b strings.Builder
	b.WriteString(prefix)
	max := big.NewInt(int64(len(base62)))
	for i := 0; i < 40; i++ {
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
