// Package httpapi is toolgate's plain HTTP JSON front door
// (GET /v1/tools, POST /v1/tools/{name}:call) and the HTTP plumbing every
// toolgate endpoint shares: one way to authenticate a request (Authenticate),
// one error envelope and 401 challenge (WriteError), panic recovery with an
// incident id (Recover), and the /healthz and /readyz probes.
//
// The package translates HTTP into broker.Credentials and broker.Call and the
// broker's answer back into JSON. It holds no policy: it must never decide
// whether a call is allowed, never run a tool itself, never read a body
// without a size cap, and never send a client a stack trace, a Go error's
// cause, a token or an unmasked value.
package httpapi
