// Package httpapi is toolgate's plain HTTP JSON front door
// (GET /v1/tools, POST /v1/tools/{name}:call), the grants, approvals and
// audit APIs, and the /healthz and /readyz probes. What every HTTP door
// shares (bearer credentials, authentication, the error envelope and
// status codes, panic recovery) is in broker/door.
//
// The package translates HTTP into broker.Credentials and broker.Call and the
// broker's answer back into JSON. It holds no policy: it must never decide
// whether a call is allowed, never run a tool itself, never read a body
// without a size cap, never log an incident itself (a service's failure
// goes through the broker's Report, which logs it once), and never send a
// client a stack trace, a Go error's cause, a token or an unmasked value.
package httpapi
