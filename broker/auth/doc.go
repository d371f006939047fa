// Package auth verifies the bearer credentials callers present and
// implements broker.Authenticator:
//
//   - API keys (tgk_…), configured as SHA-256 hashes: principal key:<name>.
//   - OIDC JWTs, verified with go-oidc against one issuer: signature
//     (RS256 and ES256 by default; never "none" or HS*), issuer, audience,
//     expiry and not-before. Discovery is lazy — New never contacts the
//     issuer — and a failed discovery refuses the call. Keys are cached and
//     refetched only for an unseen key id, at most once per interval.
//     Principal user:<email> (verified email) or user:<sub>, groups from
//     the configured claim, client:<azp>.
//   - JIT grant tokens (tg_…), minted by Grants, one per node, stored only as
//     SHA-256 in a GrantStore (SQLGrantStore over SQLite or Postgres).
//     Principal grant:<id> plus a broker.Binding fixing graph, node, run,
//     thread, scope and expiry. Every call reads the store, so a revocation
//     holds from the very next call.
//
// Grants mints, reads and revokes grants for the principals of a graph;
// what a graph is (its principals, nodes and scope schema) comes from a
// GraphInfo the policy engine implements.
//
// The package must never log, return or store a credential in the clear:
// only hashes and ids leave it, and every failure message is free of the
// token. It must never accept a token it could not verify: an unreachable
// issuer or grant store is a refusal (unauthenticated), not a pass.
package auth
