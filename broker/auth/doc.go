// Package auth verifies the bearer credentials callers present: API keys
// (tgk_…, stored only as SHA-256), and, as they are added, OIDC tokens and
// JIT grant tokens. It implements broker.Authenticator.
//
// It must never log, return or store a credential in the clear: only hashes
// and ids leave this package, and every failure message is free of the
// token.
package auth
