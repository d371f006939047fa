// Package httpproxy is toolgate's HTTP passthrough (DESIGN §9): a reverse
// proxy mounted under a path prefix that forwards an authenticated
// caller's requests to an http target. Every request passes the broker's
// pipeline (identity, the node's passthrough method and path policy,
// approvals, a durable audit record) before the target sees it; the
// target's credentials are injected from configuration, and responses are
// masked: headers with the detectors, bodies as JSON or text once their
// content encoding is decoded. With a tracer, each request is a server
// span continuing the caller's trace context, and the target receives the
// span's traceparent; the span names the mount, never the path.
//
// It must never forward the caller's Authorization header, cookies or
// hop-by-hop headers, never forward a path that could escape the prefix
// (dot segments, encoded slashes), never forward a request that could make
// the target see another method or path than policy decided on (method and
// URL override headers, a _method parameter or form field, an encoded
// request body), never pass a body it cannot mask unless the route
// declares its content type, and never decide policy itself.
package httpproxy
