// Package principals is offboarding: which principals are disabled, what
// that suspends, and who holds which privileges.
//
// A principal (user:, client:, key: or workload:) is disabled by an admin
// (Service.Disable) or by the identity provider over SCIM (the
// Service.*User methods behind broker/scim). The state lives in the store
// shared by every instance; each instance keeps a snapshot of it, read
// again every Config.Poll (500ms), so every instance sees a change within
// a second. Disabling a principal suspends what it owns or made:
//
//   - its API keys, and the keys it made as an admin (it saw them once),
//     while it stays disabled;
//   - the grants it (or one of those keys) minted, revoked for good;
//   - its pending approval requests, refused with owner_disabled;
//   - open MCP streams and passthrough sessions of all of these, closed at
//     once through the SessionClosers registered with the Service;
//   - a graph whose every declared owner is disabled.
//
// Gate wraps the Authenticator so broker.Identify refuses every suspended
// caller (broker.Admitter) with owner_disabled and records the refusal.
// Review lists every principal with privileges for an access review.
//
// The package must never let a suspended caller through because the state
// could not be read: a snapshot older than Config.MaxStale refuses every
// caller (unavailable) until the store answers again.
package principals
