package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keySet is an oidc.KeySet that caches the issuer's JWKS and refetches it
// only for a key id it has not seen, at most once per minRefresh, or when
// the cached keys expire. go-oidc's RemoteKeySet refetches on every
// signature failure, so a stream of forged tokens would become a stream of
// requests to the issuer; this one does not. Keys expire after maxAge, or
// sooner when the JWKS response's Cache-Control max-age or Expires says so
// (but never before minRefresh), so a key the issuer removed stops
// verifying tokens. Expired keys are never used: when the issuer cannot be
// reached to refresh them, tokens are refused (fail closed).
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	now        func() time.Time
	minRefresh time.Duration
	maxAge     time.Duration

	fetchMu   sync.Mutex // held during a fetch, so fetches never overlap
	mu        sync.Mutex // guards keys, fetchedAt and expiresAt; never held during I/O
	keys      []jose.JSONWebKey
	fetchedAt time.Time
	expiresAt time.Time
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
	keys, fetchedAt, fresh := k.cached()
	if fresh {
		if payload, known := verifyWith(jws, keys, kid); payload != nil {
			return payload, nil
		} else if known && kid != "" {
			// A known key id with a bad signature is a forgery, not a rotation.
			return nil, errors.New("failed to verify signature: signature does not match the key")
		}
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

// cached returns the keys, when they were fetched and whether they are
// still fresh (not expired).
func (k *keySet) cached() ([]jose.JSONWebKey, time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetchedAt, k.now().Before(k.expiresAt)
}

// errKeysExpired refuses tokens while the cached keys are expired and the
// issuer was asked too recently to be asked again.
var errKeysExpired = errors.New("the cached keys expired and the issuer could not be asked again yet")

// refresh fetches the JWKS unless another caller did since seen, or the
// last attempt is younger than minRefresh (then the cached keys serve if
// they are fresh). Verifications with fresh keys are never blocked by a
// fetch.
func (k *keySet) refresh(ctx context.Context, seen time.Time) ([]jose.JSONWebKey, error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	keys, fetchedAt, fresh := k.cached()
	if !fetchedAt.Equal(seen) && fresh {
		return keys, nil
	}
	if !k.attemptAt.IsZero() && k.now().Sub(k.attemptAt) < k.minRefresh {
		if !fresh {
			return nil, errKeysExpired
		}
		return keys, nil
	}
	k.attemptAt = k.now()
	keys, lifetime, err := k.fetch(ctx)
	if err != nil {
		return nil, err
	}
	now := k.now()
	k.mu.Lock()
	k.keys, k.fetchedAt, k.expiresAt = keys, now, now.Add(lifetime)
	k.mu.Unlock()
	return keys, nil
}

// lifetime is how long keys fetched with response header h may be
// trusted: maxAge, shortened by Cache-Control max-age (or no-store,
// no-cache) or else Expires, never below minRefresh.
func (k *keySet) lifetime(h http.Header, now time.Time) time.Duration {
	d := k.maxAge
	if hd, ok := cacheLifetime(h, now); ok && hd < d {
		d = hd
	}
	return max(d, k.minRefresh)
}

// cacheLifetime reads the freshness lifetime a response's headers give
// (RFC 9111 §4.2.1: Cache-Control max-age before Expires).
func cacheLifetime(h http.Header, now time.Time) (time.Duration, bool) {
	for _, v := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64); err == nil && n >= 0 {
					return time.Duration(min(n, int64(365*24*3600))) * time.Second, true
				}
				return 0, true // a malformed max-age is stale (RFC 9111 §4.2.1)
			}
		}
	}
	if v := h.Get("Expires"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0, true // an invalid Expires means already expired
		}
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("jwks %s: %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, 0, err
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, 0, fmt.Errorf("jwks %s: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(r); err != nil || !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue // Keys of unknown types are skipped, as go-oidc does.
		}
		keys = append(keys, key)
	}
	return keys, k.lifetime(resp.Header, k.now()), nil
}
