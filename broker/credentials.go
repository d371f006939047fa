package broker

import (
	"net/http"
	"strings"
)

// CredentialsFromRequest extracts the bearer token and the claimed
// LangGraph context from an HTTP request. It verifies nothing.
func CredentialsFromRequest(r *http.Request) Credentials {
	cr := Credentials{Claimed: Context{
		Graph:      strings.TrimSpace(r.Header.Get(HeaderGraph)),
		Node:       strings.Trim(strings.TrimSpace(r.Header.Get(HeaderNode)), "/"),
		Run:        strings.TrimSpace(r.Header.Get(HeaderRun)),
		Thread:     strings.TrimSpace(r.Header.Get(HeaderThread)),
		ToolCallID: strings.TrimSpace(r.Header.Get(HeaderToolCallID)),
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
