// Package scim is the SCIM 2.0 front door (RFC 7643/7644) an identity
// provider pushes user provisioning to, so that deactivating a person in
// Okta or Entra ID disables their toolgate principals at once.
//
// It serves /scim/v2/Users (create, read, list with filter=userName eq
// "…", replace, patch, delete) and /scim/v2/ServiceProviderConfig,
// protected by its own bearer token (auth.scim.token), never by a
// toolgate credential. PATCH accepts the shapes both providers send:
// {"op": "replace", "value": {"active": false}} (Okta) and
// {"op": "Replace", "path": "active", "value": "False"} (Entra ID).
//
// The package translates the protocol only: what a user maps to and what
// deactivation suspends is the Directory's business (broker/principals).
// It must never accept a request without the token, and never echo a
// token or a request body in an error.
package scim
