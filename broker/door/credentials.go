package door

import (
	"net/http"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// Credentials extracts the bearer token and the claimed LangGraph context
// from an HTTP request. It verifies nothing: Authenticate hands them to
// the broker's Identify.
func Credentials(r *http.Request) broker.Credentials {
	cr := broker.Credentials{Claimed: broker.Context{
		Graph:      strings.TrimSpace(r.Header.Get(broker.HeaderGraph)),
		Node:       strings.Trim(strings.TrimSpace(r.Header.Get(broker.HeaderNode)), "/"),
		Run:        strings.TrimSpace(r.Header.Get(broker.HeaderRun)),
		Thread:     strings.TrimSpace(r.Header.Get(broker.HeaderThread)),
		ToolCallID: strings.TrimSpace(r.Header.Get(broker.HeaderToolCallID)),
	}}
	h := r.Header.Values("Authorization")
	switch {
	case len(h) == 0:
	case len(h) > 1:
		cr.Malformed = true
	default:
		scheme, token, ok := strings.Cut(strings.TrimSpace(h[0]), " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t\r\n") {
			cr.Malformed = true
		} else {
			cr.Token = token
		}
	}
	return cr
}
