package door

import (
	"net/http"

	"github.com/toolgate/toolgate/broker"
)

// HeaderBytes is the size of a request's head as a client sent it over
// HTTP/1.1: the request line, the Host line and every header field line
// (name, ": ", value, CRLF).
func HeaderBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(r.Host)
	for name, vs := range r.Header {
		for _, v := range vs {
			n += len(name) + len(v) + 4
		}
	}
	return n
}

// CapHeaders refuses, before next runs, a request whose head is over max
// bytes (HeaderBytes): 431 headers_too_large, nothing else done. Set
// http.Server.MaxHeaderBytes to the same max, so the server stops reading
// a much larger head itself (it answers 431 too, as plain text, a few KiB
// past max); CapHeaders makes the cap exact and answers in the JSON error
// format.
func CapHeaders(max int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := HeaderBytes(r); n > max {
			WriteError(w, broker.Errorf(broker.CodeHeadersTooLarge, "the request's header fields are %d bytes; the limit is %d (limits.max_header_bytes)", n, max), "")
			return
		}
		next.ServeHTTP(w, r)
	})
}
