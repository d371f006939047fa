package config

import (
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Defaults for keys left out.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultStorePath    = "./data/toolgate.db"
	DefaultToolsDir     = "./tools"
	DefaultToolsLock    = "./tools.lock"
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxHeaderBytes caps request headers (limits.max_header_bytes).
	DefaultMaxHeaderBytes = 64 << 10
)

// applyDefaults fills keys left out and resolves relative paths against the
// config file's folder.
func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Driver == "sqlite" && c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.ToolsDir == "" {
		c.ToolsDir = DefaultToolsDir
	}
	if c.ToolsLock == "" {
		c.ToolsLock = DefaultToolsLock
	}
	if c.Approvals.Timeout == 0 {
		c.Approvals.Timeout = Duration(30 * 60e9)
	}
	if c.Approvals.Wait == 0 {
		c.Approvals.Wait = Duration(20e9)
	}
	if c.Recordings.Results == "" {
		c.Recordings.Results = "masked"
	}
	if c.Console.SessionTTL == 0 {
		c.Console.SessionTTL = Duration(8 * time.Hour)
	}
	if c.Console.IdleTimeout == 0 {
		c.Console.IdleTimeout = Duration(30 * time.Minute)
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.File != "" {
		dir := filepath.Dir(c.File)
		c.ToolsDir = resolve(dir, c.ToolsDir)
		c.ToolsLock = resolve(dir, c.ToolsLock)
		if c.Store.Driver == "sqlite" {
			c.Store.Path = resolve(dir, c.Store.Path)
		}
		for name, w := range c.Auth.Workload {
			w.CAFile = resolve(dir, w.CAFile)
			c.Auth.Workload[name] = w
		}
		for _, t := range c.Targets {
			if sec := t.Section(); sec != nil {
				sec.resolve(dir)
			}
		}
	}
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || p == ":memory:" {
		return p
	}
	return filepath.Join(dir, p)
}

// Validate checks what the JSON Schema cannot: references between sections.
// It returns Problems.
func (c *Config) Validate() error {
	var ps Problems
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{File: c.File, Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.Path == "" {
			add("store.path", "the sqlite store needs a path")
		}
	case "postgres":
		if c.Store.DSN == "" {
			add("store.dsn", "the postgres store needs a dsn")
		}
	default:
		add("store.driver", "must be sqlite or postgres, not %q", c.Store.Driver)
	}
	c.validateAuth(add)
	seen := map[string]bool{}
	for i, k := range c.Auth.APIKeys {
		if seen[k.Name] {
			add(fmt.Sprintf("auth.api_keys[%d].name", i), "duplicate API key name %q", k.Name)
		}
		seen[k.Name] = true
	}
	c.validatePreviews(add)
	c.validateConsole(add)
	for i, p := range c.Passthrough.Postgres {
		c.passthroughTarget(add, fmt.Sprintf("passthrough.postgres[%d].target", i), "postgres", "Postgres", p.Target)
		if p.MaxCellBytes > 0 && p.MaxRowBytes > 0 && p.MaxCellBytes > p.MaxRowBytes {
			add(fmt.Sprintf("passthrough.postgres[%d].max_cell_bytes", i), "%d is more than max_row_bytes (%d): a value cannot be larger than its row", p.MaxCellBytes, p.MaxRowBytes)
		}
	}
	for i, p := range c.Passthrough.HTTP {
		c.passthroughTarget(add, fmt.Sprintf("passthrough.http[%d].target", i), "http", "HTTP", p.Target)
		for j, ct := range p.PassContentTypes {
			if maskedMedia(ct) {
				add(fmt.Sprintf("passthrough.http[%d].pass_content_types[%d]", i, j), "%s is text, JSON or XML, which toolgate masks; only binary types can be declared to pass unmasked", ct)
			}
		}
	}
	c.Telemetry.OTLP.validate(add)
	for _, g := range slices.Sorted(maps.Keys(c.Graphs)) {
		for _, n := range slices.Sorted(maps.Keys(c.Graphs[g].Nodes)) {
			for _, t := range slices.Sorted(maps.Keys(c.Graphs[g].Nodes[n].Passthrough)) {
				p := fmt.Sprintf("graphs.%s.nodes.%s.passthrough.%s", g, n, t)
				target, ok := c.Targets[t]
				if !ok {
					add(p, "no target named %q", t)
					continue
				}
				if r := c.Graphs[g].Nodes[n].Passthrough[t].Role; r != nil {
					if target.Postgres == nil {
						add(p+".role", "a role applies to postgres targets only; %q is %s", t, target.Kind)
					} else if why := badRoleName(r.User); why != "" {
						add(p+".role.user", "%s", why)
					}
				}
			}
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// validate reports an OTLP endpoint that is not a plain http(s) URL (a
// user:password in it would be a secret in the config: use headers) and
// headers that could not be sent.
func (o OTLP) validate(add func(path, format string, args ...any)) {
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			add("telemetry.otlp.endpoint", "must be an http:// or https:// URL with a host")
		case u.User != nil:
			add("telemetry.otlp.endpoint", "must not carry credentials; send them in telemetry.otlp.headers")
		case u.RawQuery != "" || u.Fragment != "":
			add("telemetry.otlp.endpoint", "must not carry a query or fragment")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Headers)) {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(o.Headers[k], "\r\n") {
			add("telemetry.otlp.headers."+k, "a header name may not be empty or hold spaces or colons, and no value may hold a line break")
		}
	}
}

// validatePreviews checks each postgres target's preview bounds: at least
// 1ms each (PostgreSQL's timeouts count milliseconds; 0 means the
// default), and the lock wait within the preview's time.
func (c *Config) validatePreviews(add func(path, format string, args ...any)) {
	for _, name := range slices.Sorted(maps.Keys(c.Targets)) {
		pg := c.Targets[name].Postgres
		if pg == nil {
			continue
		}
		p := "targets." + name
		for _, k := range []struct {
			key string
			d   Duration
		}{{"preview_timeout", pg.PreviewTimeout}, {"preview_lock_timeout", pg.PreviewLockTimeout}} {
			if k.d > 0 && k.d.D() < time.Millisecond {
				add(p+"."+k.key, "must be at least 1ms (0 or left out means the default)")
			}
		}
		if pg.PreviewTimeout > 0 && pg.PreviewLockTimeout > pg.PreviewTimeout {
			add(p+".preview_lock_timeout", "must not be longer than preview_timeout (%s): the preview ends first", pg.PreviewTimeout.D())
		}
	}
}

// validateConsole checks the console's OIDC client against auth.oidc.
func (c *Config) validateConsole(add func(path, format string, args ...any)) {
	o := c.Console.OIDC
	if o == nil {
		return
	}
	if c.Auth.OIDC == nil {
		add("console.oidc", "console sign-in with OIDC needs auth.oidc (the issuer whose tokens toolgate accepts)")
	}
	if o.Scopes != nil && !slices.Contains(o.Scopes, "openid") {
		add("console.oidc.scopes", "the scopes must include openid")
	}
}

// passthroughTarget reports a passthrough entry (at path, in section) whose
// target does not exist or is of a kind the section cannot serve.
func (c *Config) passthroughTarget(add func(path, format string, args ...any), path, section, label, target string) {
	t, ok := c.Targets[target]
	if !ok {
		add(path, "no target named %q", target)
		return
	}
	if k, _ := KindOf(t.Kind); k.Passthrough != section {
		add(path, "target %q is %s, the %s passthrough needs %s target", target, t.Kind, label, KindPhrase(KindsServedBy(section)))
	}
}

// ReservedRolePrefix starts the names of the database roles toolgate
// provisions for passthrough sessions (connectors/pgroles); an operator's
// role may not use it.
const ReservedRolePrefix = "toolgate_pt_"

// badRoleName says what is wrong with a declared database login name, ""
// when nothing is.
func badRoleName(name string) string {
	switch {
	case len(name) > 63:
		return fmt.Sprintf("role name %q is longer than PostgreSQL's 63 bytes", name)
	case strings.ContainsRune(name, 0):
		return "role name contains a NUL byte"
	case strings.HasPrefix(strings.ToLower(name), ReservedRolePrefix):
		return fmt.Sprintf("role name %q starts with %s, which toolgate reserves for the roles it provisions", name, ReservedRolePrefix)
	case strings.HasPrefix(strings.ToLower(name), "pg_"):
		return fmt.Sprintf("role name %q starts with pg_, which PostgreSQL reserves for its predefined roles", name)
	}
	return ""
}

// maskedMedia reports media types the HTTP passthrough masks as text or
// JSON, which a route cannot declare to pass unmasked.
func maskedMedia(t string) bool {
	typ, sub, _ := strings.Cut(t, "/")
	return typ == "text" || sub == "json" || sub == "xml" || sub == "yaml" || sub == "javascript" ||
		strings.HasSuffix(sub, "+json") || strings.HasSuffix(sub, "+xml") || strings.HasSuffix(sub, "+yaml")
}

// TargetKinds maps each target name to its kind.
func (c *Config) TargetKinds() map[string]string {
	m := make(map[string]string, len(c.Targets))
	for name, t := range c.Targets {
		m[name] = t.Kind
	}
	return m
}
