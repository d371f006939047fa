// Package console is the web console, a front door served under /console/:
// approvers see and decide the requests waiting for them, and auditors
// browse runs as per-node timelines, check the audit chain that holds them
// and download their records.
//
// The console holds no rule of its own. Who a browser is comes from the
// broker (Identifier, Broker.Identify) on every request, from the
// credential its session keeps on the server; what a viewer may see or
// decide comes from the approvals service (Approvals: Inbox, Approvals,
// Approval, Decide) and from the recordings Reader (AuditTrail), the same
// code paths the HTTP API, the CLI and Slack use. It reaches them only
// through the small interfaces defined here; cmd/toolgate wires them. A
// failure it must not show as is goes to the broker (Reporter), which logs
// it once under an incident id; the page shows only that id.
//
// # Sign-in and sessions
//
// A browser signs in by pasting an API key, or with the OIDC authorization
// code flow and PKCE (S256) at auth.oidc's issuer when console.oidc names
// the console's client. Sessions live in this process's memory, keyed by
// the SHA-256 of a 256-bit random id that the cookie carries (HttpOnly,
// SameSite=Lax, Secure and __Host- prefixed when public_url is https);
// they end at sign-out, after the idle timeout or the session lifetime,
// and at once when the broker no longer accepts their credential (a
// revoked key, an expired token that could not be refreshed). Several
// instances each keep their own sessions: route a browser to one instance.
//
// # Requests
//
// Every state change is a POST carrying the session's synchronizer CSRF
// token, compared in constant time (the sign-in form uses a double-submit
// cookie instead), and a foreign Origin is refused. Every response carries
// a Content-Security-Policy that allows no inline script or style and no
// framing, plus nosniff and a same-origin referrer policy (so the browser sends the Origin that state changes are checked against). A `next` parameter is followed only
// when it is a plain path under /console/, so sign-in is never an open
// redirect. Pages are server-rendered with html/template from embedded
// files; the one script (assets/static/console.js) only counts down expiry
// times and keeps the inbox current, and every page works without it.
//
// A request's effect preview reads as in Slack and the CLI: the headline
// and the masked sample's grid come from broker (PreviewHeadline,
// SampleGridOf), and the templates lay the grid out as a table, every
// value escaped as text (nothing from a request is ever marked safe HTML).
//
// The console must never show an unmasked value (everything it shows comes
// masked from approvals and recordings), log or render a credential, decide
// anything itself, or act on a request without a live session and a valid
// CSRF token.
package console
