// Package httptarget is the connector that sends a tool's HTTP operation to an
// HTTP API target, adding the target's credentials (configured headers)
// that the agent never sees.
//
// The request URL is the target's base URL plus the operation's escaped path
// and query; the scheme and host always come from the target, and a path
// that would change them or climb out of the base path with dot segments is
// refused. Redirects are not followed: a 3xx is returned as the result. The
// response is capped (4 MiB by default) and returned as {"status": code,
// "body": <JSON, or the text as a JSON string>}; a 5xx is a target_error
// naming the status, without echoing the body.
//
// Preview sends a tool's declared preview request (a GET only) the same
// way and returns its body as an effect preview's sample; HTTP tools have
// no matched run.
//
// The connector must never return or log a configured header value, and
// never send the target's credentials to any host but the target's.
package httptarget
