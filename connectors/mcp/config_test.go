package mcp

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	http := Config{Name: "gh", URL: "https://mcp.example.com/mcp", Headers: map[string]string{"Authorization": "Bearer s3cret-token"}}
	stdio := Config{Name: "files", Command: []string{"npx", "-y", "server"}, Env: map[string]string{"TOKEN": "s3cret-token"}}
	for _, c := range []Config{http, stdio, {Name: "a-b_c", URL: "http://127.0.0.1:1/mcp?key=v", Prefix: "x-", Rename: map[string]string{"a.b": "a_b"}, Expose: ExposeAll, Timeout: time.Second}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	with := func(base Config, edit func(*Config)) Config {
		base.Headers, base.Env = maps.Clone(base.Headers), maps.Clone(base.Env)
		edit(&base)
		return base
	}
	for _, c := range []struct {
		name string
		cfg  Config
		says string
	}{
		{"no name", with(http, func(c *Config) { c.Name = "" }), "name must match"},
		{"dotted name", with(http, func(c *Config) { c.Name = "a.b" }), "name must match"},
		{"neither", Config{Name: "x"}, "set url (streamable HTTP) or command (stdio)"},
		{"both", with(http, func(c *Config) { c.Command = []string{"x"} }), "not both"},
		{"ftp url", with(http, func(c *Config) { c.URL = "ftp://h/mcp" }), "must start with http"},
		{"url credentials", with(http, func(c *Config) { c.URL = "https://u:p@h/mcp" }), "must not carry credentials"},
		{"no host", with(http, func(c *Config) { c.URL = "http:///mcp" }), "has no host"},
		{"bad header name", with(http, func(c *Config) { c.Headers["Bad Header"] = "x" }), "not a valid HTTP header name"},
		{"header injection", with(http, func(c *Config) { c.Headers["X-A"] = "v\r\nHost: evil" }), "line break"},
		{"reserved header", with(http, func(c *Config) { c.Headers["mcp-session-id"] = "x" }), "set by the MCP transport"},
		{"env with url", with(http, func(c *Config) { c.Env = map[string]string{"A": "b"} }), "env applies to a stdio server"},
		{"empty command", with(stdio, func(c *Config) { c.Command = []string{" "} }), "command[0]"},
		{"NUL argument", with(stdio, func(c *Config) { c.Command = []string{"x", "a\x00b"} }), "command[1] contains a NUL"},
		{"bad env name", with(stdio, func(c *Config) { c.Env["A=B"] = "x" }), "not a valid environment variable"},
		{"headers with command", with(stdio, func(c *Config) { c.Headers = map[string]string{"A": "b"} }), "headers apply to a streamable HTTP server"},
		{"negative timeout", with(http, func(c *Config) { c.Timeout = -time.Second }), "timeout must not be negative"},
		{"huge cap", with(http, func(c *Config) { c.MaxResultBytes = 1 << 40 }), "max_result_bytes must be between"},
		{"bad prefix", with(http, func(c *Config) { c.Prefix = "a." }), "prefix"},
		{"bad rename", with(http, func(c *Config) { c.Rename = map[string]string{"x": "has space"} }), "not a valid tool name"},
		{"rename clash", with(http, func(c *Config) { c.Rename = map[string]string{"x": "same", "y": "same"} }), `both map to "same"`},
		{"bad expose", with(http, func(c *Config) { c.Expose = "some" }), "expose must be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want an error saying %q", err, c.says)
			}
			if strings.Contains(err.Error(), "s3cret-token") {
				t.Fatalf("the error echoes a secret: %v", err)
			}
		})
	}
	if _, err := New(http, Options{}); err == nil || !strings.Contains(err.Error(), "Options.Compile") {
		t.Errorf("New without a compiler: %v", err)
	}
}

func TestNeutralEnv(t *testing.T) {
	got := NeutralEnv([]string{"PATH=/bin", "HOME=/root", "AWS_SECRET_ACCESS_KEY=x", "TOOLGATE_MASK_KEY=y", "LANG=C", "PATHX=z", "broken"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root LANG=C" {
		t.Errorf("NeutralEnv kept %v", got)
	}
	env := childEnv(got, map[string]string{"PATH": "/opt/bin", "TOKEN": "t"})
	if strings.Join(env, " ") != "HOME=/root LANG=C PATH=/opt/bin TOKEN=t" {
		t.Errorf("childEnv = %v", env)
	}
}
