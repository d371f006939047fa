package door

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// Origins is the set of browser origins a door serves: the public URL's
// origin and any configured beside it (allowed_origins). A request
// without an Origin header is not from a page (agents, curl, the LangGraph
// helpers) and passes; a page on any other origin is refused with 403.
// This is the MCP transport's defence against DNS rebinding ("servers MUST
// validate the Origin header"): a page that rebinds its own name to
// toolgate's address still sends its own origin. The Host header is never
// consulted, since a rebinding page controls it. Origins is immutable.
type Origins struct {
	allowed map[string]bool
}

// NewOrigins returns the origins of publicURL and each of extra. Each must
// be an http or https origin (scheme://host[:port], no path); "null" and
// "*" are refused, as they would admit any page.
func NewOrigins(publicURL string, extra ...string) (Origins, error) {
	o := Origins{allowed: map[string]bool{}}
	for _, s := range append([]string{publicURL}, extra...) {
		if s == "" {
			continue
		}
		c, err := CanonicalOrigin(strings.TrimSuffix(s, "/"))
		if err != nil {
			return Origins{}, err
		}
		o.allowed[c] = true
	}
	return o, nil
}

// CanonicalOrigin returns the origin s names in the form browsers send,
// lower case and without a default port: "https://agents.example.com",
// "http://127.0.0.1:8080". Anything that is not an http or https origin
// is an error that says why.
func CanonicalOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not an origin: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q is not an origin: it must start with http:// or https://", s)
	case u.Hostname() == "" || u.Opaque != "":
		return "", fmt.Errorf("%q is not an origin: it names no host", s)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return "", fmt.Errorf("%q is not an origin: an origin is scheme://host[:port], with no path, query or user", s)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// Allowed reports whether a request's Origin header value may be served:
// absent, or one of the origins.
func (o Origins) Allowed(origin string) bool {
	if origin == "" {
		return true
	}
	c, err := CanonicalOrigin(origin)
	return err == nil && o.allowed[c]
}

// Check returns a handler that refuses, before anything else runs, a
// request whose Origin is not allowed: 403 forbidden naming the origin
// and how to allow it. A request with several Origin headers is refused.
func (o Origins) Check(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vs := r.Header.Values("Origin")
		if len(vs) > 1 || (len(vs) == 1 && !o.Allowed(vs[0])) {
			WriteError(w, broker.Errorf(broker.CodeForbidden,
				"requests from the web page origin %s are refused: only pages on toolgate's public_url or an origin listed in allowed_origins may call it (requests without an Origin header, such as agents', are served)", quoteOrigin(vs)), "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quoteOrigin names the refused origin(s) for the message, quoted and
// cut short: the value is the caller's.
func quoteOrigin(vs []string) string {
	s := strings.Join(vs, ", ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return fmt.Sprintf("%q", s)
}
