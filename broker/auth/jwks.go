package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keySet is an oidc.KeySet that caches the issuer's JWKS and refetches it
// only for a key id it has not seen, at most once per minRefresh. go-oidc's
// RemoteKeySet refetches on every signature failure, so a stream of forged
// tokens would become a stream of requests to the issuer; this one does
// not.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	now        func() time.Time
	minRefresh time.Duration

	fetchMu   sync.Mutex // held during a fetch, so fetches never overlap
	mu        sync.Mutex // guards keys and fetchedAt; never held during I/O
	keys      []jose.JSONWebKey
	fetchedAt time.Time
	// attemptAt is the last fetch attempt, successful or not; it is only
	// touched under fetchMu.
	attemptAt time.Time
}

var _ oidc.KeySet = (*keySet)(nil)

// maxJWKSBytes bounds the JWKS document read from the issuer.
const maxJWKSBytes = 1 << 20

// VerifySignature implements oidc.KeySet. go-oidc has already checked the
// algorithm against the allow-list; it is checked again here.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, k.algs)
	if err != nil {
		return nil, fmt.Errorf("oidc: malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("failed to verify signature: want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, fetchedAt := k.cached()
	if payload, known := verifyWith(jws, keys, kid); payload != nil {
		return payload, nil
	} else if known && kid != "" {
		// A known key id with a bad signature is a forgery, not a rotation.
		return nil, errors.New("failed to verify signature: signature does not match the key")
	}
	keys, err = k.refresh(ctx, fetchedAt)
	if err != nil {
		return nil, fmt.Errorf("failed to verify signature: fetching keys: %w", err)
	}
	if payload, _ := verifyWith(jws, keys, kid); payload != nil {
		return payload, nil
	}
	return nil, errors.New("failed to verify signature: no published key verifies it")
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = true
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, known
}

func (k *keySet) cached() ([]jose.JSONWebKey, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetchedAt
}

// refresh fetches the JWKS unless another caller did since seen, or the
// last fetch is younger than minRefresh.
// Verifications with known keys are never blocked by a fetch.
func (k *keySet) refresh(ctx context.Context, seen time.Time) ([]jose.JSONWebKey, error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	keys, fetchedAt := k.cached()
	if !fetchedAt.Equal(seen) {
		return keys, nil
	}
	if !k.attemptAt.IsZero() && k.now().Sub(k.attemptAt) < k.minRefresh {
		return keys, nil
	}
	k.attemptAt = k.now()
	keys, err := k.fetch(ctx)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keys, k.fetchedAt = keys, k.now()
	k.mu.Unlock()
	return keys, nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, err
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("jwks %s: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(r); err != nil || !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue // Keys of unknown types are skipped, as go-oidc does.
		}
		keys = append(keys, key)
	}
	return keys, nil
}
