package broker

import (
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// PrincipalName is the one normal form principal names are compared in,
// wherever a name from a credential meets a name from configuration or from
// another channel (graph principals, approvers, auditors, requesters, Slack
// users): surrounding space trimmed, Unicode NFKC (so "ａｎａ" and "ana",
// or a ligature and its letters, are one name), the kind before the first
// ":" lower-cased, and the rest lower-cased when it is an email address
// ("user:Ana@Example.COM" is "user:ana@example.com"). Other names (an OIDC
// sub, a key or group name) keep their case: identity providers treat them
// as case-sensitive.
func PrincipalName(name string) string {
	name = strings.TrimSpace(name)
	if !isASCIIPrincipal(name) {
		name = norm.NFKC.String(name)
	}
	kind, rest, ok := strings.Cut(name, ":")
	if !ok {
		return name
	}
	kind = strings.ToLower(kind)
	if strings.Contains(rest, "@") {
		rest = strings.ToLower(rest)
	}
	return kind + ":" + rest
}

// isASCIIPrincipal reports whether s is plain ASCII, which NFKC leaves as is.
func isASCIIPrincipal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// PrincipalNames returns names in normal form (PrincipalName), in order and
// without duplicates.
func PrincipalNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = PrincipalName(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// MatchPrincipal reports whether any of names equals any of list once both
// are in normal form.
func MatchPrincipal(names, list []string) bool {
	for _, l := range list {
		l = PrincipalName(l)
		for _, n := range names {
			if PrincipalName(n) == l {
				return true
			}
		}
	}
	return false
}
