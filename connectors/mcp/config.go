package mcp

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxResultBytes = 4 << 20
	// MaxMaxResultBytes bounds max_result_bytes: a result is held in memory
	// whole while it is masked and recorded.
	MaxMaxResultBytes = 64 << 20
)

// Expose says which upstream tools join the catalog.
type Expose string

// The values of Config.Expose.
const (
	// ExposePinned exposes only tools whose definition matches their pin
	// in the lock file. It is the default.
	ExposePinned Expose = "pinned"
	// ExposeAll also exposes tools that have no pin yet. A pinned tool
	// whose definition changed is quarantined all the same.
	ExposeAll Expose = "all"
)

// namePattern is the rule for catalog tool names (DESIGN §4).
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Config is one upstream MCP server, a target of kind mcp. Exactly one of
// URL (streamable HTTP) and Command (stdio) is set. Values arrive with
// ${ENV} already substituted; header and env values are secrets.
type Config struct {
	// Name is the target's name; catalog names start with it.
	Name string
	// URL is the upstream's streamable HTTP endpoint, e.g.
	// http://127.0.0.1:3001/mcp.
	URL string
	// Headers are sent with every HTTP request (credentials).
	Headers map[string]string
	// Command is the program and arguments of a stdio server that the
	// connector starts, supervises and restarts.
	Command []string
	// Env is the stdio server's environment, on top of a few neutral
	// variables (PATH, HOME, ...); the child never inherits toolgate's own
	// environment.
	Env map[string]string
	// Dir is the stdio server's working folder, in which a relative
	// program path is found too; empty means toolgate's own.
	Dir string
	// Timeout bounds each call and the connection handshake; 0 means 30s.
	Timeout time.Duration
	// MaxResultBytes bounds each message the upstream sends, and so each
	// result; 0 means 4 MiB. A larger result is refused.
	MaxResultBytes int64
	// Prefix starts every catalog name; empty means Name + "_".
	Prefix string
	// Rename maps an upstream tool name to its full catalog name, in place
	// of Prefix + name.
	Rename map[string]string
	// Expose is ExposePinned (the default when empty) or ExposeAll.
	Expose Expose
	// ToolsLock is the path of the lock file holding the pins, already
	// resolved by the caller (tools.lock beside the config by default).
	// Empty means no lock file: no tool is pinned.
	ToolsLock string
}

// Problem is one thing wrong with a Config: the config key it is about
// ("url", "headers.Authorization", "command[0]", "rename.x"; "" for the
// target as a whole) and why, never quoting a header or env value.
type Problem struct {
	Key    string
	Reason string
}

// Validate reports every problem with the config, one per line. It never
// echoes a header or env value.
func (c Config) Validate() error {
	var errs []error
	for _, p := range c.Problems() {
		errs = append(errs, fmt.Errorf("mcp target %s: %s", c.Name, p.Reason))
	}
	return errors.Join(errs...)
}

// Problems lists every problem with the config, by key.
func (c Config) Problems() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Name == "" || !namePattern.MatchString(c.Name) {
		add("", "the name must match %s", namePattern)
	}
	switch {
	case c.URL == "" && len(c.Command) == 0:
		add("", "set url (streamable HTTP) or command (stdio)")
	case c.URL != "" && len(c.Command) > 0:
		add("", "set url or command, not both")
	case c.URL != "":
		c.checkHTTP(add)
	default:
		c.checkStdio(add)
	}
	if c.Timeout < 0 {
		add("timeout", "timeout must not be negative")
	}
	if c.MaxResultBytes < 0 || c.MaxResultBytes > MaxMaxResultBytes {
		add("max_result_bytes", "max_result_bytes must be between 1 and %d (0 means %d)", MaxMaxResultBytes, DefaultMaxResultBytes)
	}
	if c.Prefix != "" && !namePattern.MatchString(c.Prefix) {
		add("prefix", "prefix %q may hold only letters, digits, \"_\" and \"-\"", c.Prefix)
	}
	c.checkRename(add)
	if c.Expose != "" && c.Expose != ExposePinned && c.Expose != ExposeAll {
		add("expose", "expose must be %q or %q, got %q", ExposePinned, ExposeAll, c.Expose)
	}
	return ps
}

// problemf records one problem of a config at a key.
type problemf func(key, format string, args ...any)

func (c Config) checkHTTP(add problemf) {
	if err := checkURL(c.URL); err != "" {
		add("url", "url %s", err)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		if err := checkHeader(name, c.Headers[name]); err != "" {
			add("headers."+name, "header %s %s", name, err)
		}
	}
	if len(c.Env) > 0 {
		add("env", "env applies to a stdio server (command), not to url")
	}
}

func (c Config) checkStdio(add problemf) {
	if strings.TrimSpace(c.Command[0]) == "" {
		add("command[0]", "command[0] must name the program to run")
	}
	for i, a := range c.Command {
		if strings.ContainsRune(a, 0) {
			add(fmt.Sprintf("command[%d]", i), "command[%d] contains a NUL byte", i)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(c.Env[k], 0) {
			add("env."+k, "env %q is not a valid environment variable", k)
		}
	}
	if len(c.Headers) > 0 {
		add("headers", "headers apply to a streamable HTTP server (url), not to command")
	}
}

func (c Config) checkRename(add problemf) {
	seen := map[string]string{}
	for _, from := range slices.Sorted(maps.Keys(c.Rename)) {
		to := c.Rename[from]
		switch {
		case from == "":
			add("rename", "rename has an empty upstream tool name")
		case !namePattern.MatchString(to):
			add("rename."+from, "rename %q: %q is not a valid tool name (%s)", from, to, namePattern)
		case seen[to] != "":
			add("rename."+from, "rename %q and %q both map to %q", seen[to], from, to)
		}
		seen[to] = from
	}
}

// withDefaults returns c with its zero values filled in.
func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.Prefix == "" {
		c.Prefix = c.Name + "_"
	}
	if c.Expose == "" {
		c.Expose = ExposePinned
	}
	return c
}

// checkURL returns why raw is not a usable upstream URL, or "".
func checkURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must start with http:// or https://"
	case u.Host == "":
		return "has no host"
	case u.User != nil:
		return "must not carry credentials; put them in headers"
	case u.Fragment != "":
		return "must not have a fragment"
	}
	return ""
}

// reservedHeaders are set by the MCP transport itself.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true, "Connection": true,
	"Accept": true, "Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Last-Event-Id": true,
}

// checkHeader returns why a configured header is unusable, or "". It never
// quotes the value.
func checkHeader(name, value string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	}) {
		return "is not a valid HTTP header name"
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "has a value with a line break or NUL"
	}
	if reservedHeaders[http.CanonicalHeaderKey(name)] {
		return "is set by the MCP transport and cannot be configured"
	}
	return ""
}
