package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// validateAuth checks what the schema cannot about keys, owners and
// workload identities, adding each problem with add.
func (c *Config) validateAuth(add func(path, format string, args ...any)) {
	for i, k := range c.Auth.APIKeys {
		if _, err := k.ExpiresAt(); err != nil {
			add(fmt.Sprintf("auth.api_keys[%d].expires", i), "%v", err)
		}
	}
	issuers := map[string]string{}
	if c.Auth.OIDC != nil {
		issuers[c.Auth.OIDC.Issuer] = "auth.oidc"
	}
	for _, name := range slices.Sorted(maps.Keys(c.Auth.Workload)) {
		w := c.Auth.Workload[name]
		if other, dup := issuers[w.Issuer]; dup {
			add("auth.workload."+name+".issuer", "issuer %s is also %s's; one issuer is either for users or for workloads", w.Issuer, other)
		}
		issuers[w.Issuer] = "auth.workload." + name
	}
	check := func(path string, list []string) {
		for i, p := range list {
			if why := c.workloadProblem(p); why != "" {
				add(fmt.Sprintf("%s[%d]", path, i), "%s", why)
			}
		}
	}
	check("auth.admins", c.Auth.Admins)
	check("auth.auditors", c.Auth.Auditors)
	for i, k := range c.Auth.APIKeys {
		if why := c.workloadProblem(k.Owner); why != "" {
			add(fmt.Sprintf("auth.api_keys[%d].owner", i), "%s", why)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(c.Graphs)) {
		check("graphs."+g+".principals", c.Graphs[g].Principals)
		check("graphs."+g+".owners", c.Graphs[g].Owners)
	}
}

// workloadProblem says what is wrong with a workload:<issuer>:<sub>
// principal, "" when it is fine or not a workload principal.
func (c *Config) workloadProblem(p string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(p), "workload:")
	if !ok {
		return ""
	}
	issuer, sub, ok := strings.Cut(rest, ":")
	if !ok || sub == "" {
		return fmt.Sprintf("%q must be workload:<issuer>:<sub>, e.g. workload:prod:system:serviceaccount:agents:support-bot", p)
	}
	if _, known := c.Auth.Workload[issuer]; !known {
		return fmt.Sprintf("%q names workload issuer %q, which auth.workload does not declare", p, issuer)
	}
	return ""
}
