package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// The target kinds (targets.<t>.kind).
const (
	KindPostgres = "postgres"
	KindSQLite   = "sqlite"
	KindHTTP     = "http"
	// KindMCP is an upstream MCP server (connectors/mcp): its tools join
	// the catalog as they are listed and pinned, not declared in files.
	KindMCP = "mcp"
)

// The operations a tool declaration names (its "sql" or "http" key).
const (
	RunsSQL  = "sql"
	RunsHTTP = "http"
)

// TargetKind is one kind of target, as every package that cares about kinds
// learns it from here: the tool operation its targets run, the passthrough
// that can serve them, and the section of the target holding the kind's
// own keys. A new kind is one entry in Kinds plus its section type (and its
// connector, which cmd/toolgate opens by the kind's name).
type TargetKind struct {
	Name string
	// Runs is the operation the tools of such a target declare: RunsSQL
	// or RunsHTTP.
	Runs string
	// Passthrough is the passthrough section that can serve such a target
	// ("postgres", "http"); "" when none can.
	Passthrough string
	// RefusesNUL is set when the kind's strings cannot hold a NUL byte, so
	// a tool argument with one is refused before anything runs. PostgreSQL
	// text and jsonb refuse it outright; SQLite stores it but its string
	// functions (substr, length, LIKE …) stop at it, so a statement could act
	// on another value than policy saw.
	RefusesNUL bool
	// section returns t's section of this kind, nil when t has none; with
	// alloc it first gives t an empty one.
	section func(t *Target, alloc bool) TargetSection
}

// Kinds lists every target kind, in the order messages name them.
func Kinds() []TargetKind {
	return []TargetKind{
		{Name: KindPostgres, Runs: RunsSQL, Passthrough: "postgres", RefusesNUL: true, section: func(t *Target, alloc bool) TargetSection {
			if alloc {
				t.Postgres = &PostgresTarget{}
			}
			return nilSection(t.Postgres)
		}},
		{Name: KindSQLite, Runs: RunsSQL, RefusesNUL: true, section: func(t *Target, alloc bool) TargetSection {
			if alloc {
				t.SQLite = &SQLiteTarget{}
			}
			return nilSection(t.SQLite)
		}},
		{Name: KindHTTP, Runs: RunsHTTP, Passthrough: "http", section: func(t *Target, alloc bool) TargetSection {
			if alloc {
				t.HTTP = &HTTPTarget{}
			}
			return nilSection(t.HTTP)
		}},
		{Name: KindMCP, section: func(t *Target, alloc bool) TargetSection {
			if alloc {
				t.MCP = &MCPTarget{}
			}
			return nilSection(t.MCP)
		}},
	}
}

// nilSection turns a nil section pointer into a nil interface.
func nilSection[S TargetSection](s S) TargetSection {
	if reflect.ValueOf(s).IsNil() {
		return nil
	}
	return s
}

// KindOf returns the kind named name.
func KindOf(name string) (TargetKind, bool) {
	for _, k := range Kinds() {
		if k.Name == name {
			return k, true
		}
	}
	return TargetKind{}, false
}

// KindsRunning names the kinds whose tools declare the operation runs, in
// Kinds order, e.g. "postgres or sqlite" for RunsSQL.
func KindsRunning(runs string) string {
	return kindNames(func(k TargetKind) bool { return k.Runs == runs })
}

// KindsServedBy names the kinds the passthrough section serves, e.g.
// "postgres" for "postgres".
func KindsServedBy(passthrough string) string {
	return kindNames(func(k TargetKind) bool { return k.Passthrough == passthrough })
}

// kindNames joins the names of the kinds that match with "or".
func kindNames(match func(TargetKind) bool) string {
	var names []string
	for _, k := range Kinds() {
		if match(k) {
			names = append(names, k.Name)
		}
	}
	return strings.Join(names, " or ")
}

// KindPhrase puts "a" or "an" before kind names, as spoken: "an http", "an mcp",
// "a postgres or sqlite".
func KindPhrase(names string) string {
	if names != "" && strings.IndexByte("aehioum", names[0]) >= 0 {
		return "an " + names
	}
	return "a " + names
}

// Target is a privileged backend: its kind, the keys every kind has (mask,
// detectors) and, in the one section of its kind, the kind's own keys.
// The YAML is flat, as it always was: the kind's keys sit beside kind, and
// UnmarshalYAML decodes them into the section; a key of another kind is a
// config error, never silently dropped.
type Target struct {
	Kind string `yaml:"kind" json:"kind"` // postgres | sqlite | http | mcp
	// Exactly the section of Kind is set.
	Postgres *PostgresTarget `yaml:"-" json:"postgres,omitempty"`
	SQLite   *SQLiteTarget   `yaml:"-" json:"sqlite,omitempty"`
	HTTP     *HTTPTarget     `yaml:"-" json:"http,omitempty"`
	MCP      *MCPTarget      `yaml:"-" json:"mcp,omitempty"`
	// Mask maps "table.column" (passthrough) or gjson paths to actions.
	// On an mcp target the paths are relative to a result's
	// structuredContent.
	Mask map[string]string `yaml:"mask" json:"mask,omitempty"`
	// Detectors switches detectors off (or on) for this target.
	Detectors map[string]bool `yaml:"detectors" json:"detectors,omitempty"`
}

// TargetSection is the part of a target only its kind has.
type TargetSection interface {
	// Credentials lists the secrets the section holds, which masking
	// redacts by value wherever it runs.
	Credentials() []Credential
	// resolve makes the section's file paths relative to dir.
	resolve(dir string)
}

// Credential is a secret a target's section holds.
type Credential struct {
	// Key is where it sits under targets.<t>: "dsn", "base_url",
	// "headers.Authorization".
	Key   string
	Value string
	// In says how the secret sits in Value: CredentialWhole, or the
	// password of a DSN or of a URL's user info.
	In string
}

// How a Credential's secret sits in its value.
const (
	CredentialWhole       = ""
	CredentialDSNPassword = "dsn"
	CredentialURLPassword = "url"
)

// PostgresTarget is a PostgreSQL database (kind postgres).
type PostgresTarget struct {
	DSN              string   `yaml:"dsn" json:"-"` // secret
	ReadOnly         bool     `yaml:"read_only" json:"read_only,omitempty"`
	MaxRows          int      `yaml:"max_rows" json:"max_rows,omitempty"`
	StatementTimeout Duration `yaml:"statement_timeout" json:"statement_timeout,omitempty"`
	MaxConns         int      `yaml:"max_conns" json:"max_conns,omitempty"`
	// PreviewTimeout bounds an approval's effect preview on the target
	// (never longer than StatementTimeout); 0 means 5s.
	PreviewTimeout Duration `yaml:"preview_timeout" json:"preview_timeout,omitempty"`
	// PreviewLockTimeout bounds how long a preview waits for a row lock
	// another transaction holds; 0 means 1s.
	PreviewLockTimeout Duration `yaml:"preview_lock_timeout" json:"preview_lock_timeout,omitempty"`
}

// SQLiteTarget is a SQLite database file (kind sqlite).
type SQLiteTarget struct {
	// Path is relative to the config file's folder.
	Path             string   `yaml:"path" json:"path,omitempty"`
	ReadOnly         bool     `yaml:"read_only" json:"read_only,omitempty"`
	MaxRows          int      `yaml:"max_rows" json:"max_rows,omitempty"`
	StatementTimeout Duration `yaml:"statement_timeout" json:"statement_timeout,omitempty"`
}

// HTTPTarget is an HTTP API (kind http).
type HTTPTarget struct {
	BaseURL          string            `yaml:"base_url" json:"base_url,omitempty"`
	Headers          map[string]string `yaml:"headers" json:"-"` // secret values
	Timeout          Duration          `yaml:"timeout" json:"timeout,omitempty"`
	MaxResponseBytes int64             `yaml:"max_response_bytes" json:"max_response_bytes,omitempty"`
}

// MCPTarget is an upstream MCP server (kind mcp): exactly one of URL
// (streamable HTTP) and Command (a stdio server toolgate starts) is set.
type MCPTarget struct {
	URL string `yaml:"url" json:"url,omitempty"`
	// Headers go with every request to URL; their values are secrets.
	Headers map[string]string `yaml:"headers" json:"-"`
	// Command is the stdio server's program and arguments. The server
	// runs in the config file's folder, so a relative program path (one
	// with a "/") and relative arguments are relative to that folder.
	Command []string `yaml:"command" json:"command,omitempty"`
	// Env is the stdio server's environment on top of a neutral one; its
	// values are secrets.
	Env            map[string]string `yaml:"env" json:"-"`
	Timeout        Duration          `yaml:"timeout" json:"timeout,omitempty"`
	MaxResultBytes int64             `yaml:"max_result_bytes" json:"max_result_bytes,omitempty"`
	// Prefix starts the catalog names of the server's tools (default
	// "<target>_"); Rename gives single tools a full catalog name.
	Prefix string            `yaml:"prefix" json:"prefix,omitempty"`
	Rename map[string]string `yaml:"rename" json:"rename,omitempty"`
	// Expose is pinned (default: only tools pinned in the tools lock) or
	// all (tools with no pin too; a changed pin is quarantined anyway).
	Expose string `yaml:"expose" json:"expose,omitempty"`
	// Tools holds per-tool masking, by the tool's upstream name.
	Tools map[string]UpstreamTool `yaml:"tools" json:"tools,omitempty"`
	// Dir is the folder of the config file, the stdio server's working
	// folder (set by loading).
	Dir string `yaml:"-" json:"-"`
}

// UpstreamTool is the masking of one upstream MCP tool's results: JSON
// paths relative to its structuredContent, and detector switches.
type UpstreamTool struct {
	Mask      map[string]string `yaml:"mask" json:"mask,omitempty"`
	Detectors map[string]bool   `yaml:"detectors" json:"detectors,omitempty"`
}

func (*PostgresTarget) resolve(string)     {}
func (s *SQLiteTarget) resolve(dir string) { s.Path = resolve(dir, s.Path) }
func (*HTTPTarget) resolve(string)         {}

// resolve makes the config file's folder the stdio server's working
// folder, against which a relative program path is found too (os/exec
// evaluates a relative Path in Dir).
func (m *MCPTarget) resolve(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	m.Dir = dir
}

// Credentials is the DSN's password.
func (p *PostgresTarget) Credentials() []Credential {
	return []Credential{{Key: "dsn", Value: p.DSN, In: CredentialDSNPassword}}
}

// Credentials is nothing: a SQLite file needs none.
func (*SQLiteTarget) Credentials() []Credential { return nil }

// Credentials are the header values and the base URL's password.
func (h *HTTPTarget) Credentials() []Credential {
	out := []Credential{{Key: "base_url", Value: h.BaseURL, In: CredentialURLPassword}}
	for _, name := range slices.Sorted(maps.Keys(h.Headers)) {
		out = append(out, Credential{Key: "headers." + name, Value: h.Headers[name]})
	}
	return out
}

// Credentials are the header and env values.
func (m *MCPTarget) Credentials() []Credential {
	var out []Credential
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		out = append(out, Credential{Key: "headers." + name, Value: m.Headers[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(m.Env)) {
		out = append(out, Credential{Key: "env." + name, Value: m.Env[name]})
	}
	return out
}

// Section returns the section of t's kind, nil when it has none.
func (t Target) Section() TargetSection {
	if k, ok := KindOf(t.Kind); ok {
		return k.section(&t, false)
	}
	return nil
}

// UnmarshalYAML decodes a target: kind, mask and detectors, then the keys
// of its kind into its section. A key its kind does not have is refused
// (Parse reports it with its line before decoding; this keeps a direct
// decode from dropping it silently).
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	var common struct {
		Kind      string            `yaml:"kind"`
		Mask      map[string]string `yaml:"mask"`
		Detectors map[string]bool   `yaml:"detectors"`
	}
	if err := n.Decode(&common); err != nil {
		return err
	}
	*t = Target{Kind: common.Kind, Mask: common.Mask, Detectors: common.Detectors}
	k, ok := KindOf(t.Kind)
	if !ok {
		return fmt.Errorf("line %d: unknown target kind %q", n.Line, t.Kind)
	}
	// Decoding to a map resolves merge keys (<<: *anchor), whose keys
	// would otherwise be lost on the way to the section.
	var keys map[string]yaml.Node
	if err := n.Decode(&keys); err != nil {
		return err
	}
	sec := k.section(t, true)
	own := yamlKeys(sec)
	out := yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		if why := k.refusesKey(key); why != "" {
			return fmt.Errorf("line %d: %s: %s", keys[key].Line, key, why)
		}
		if own[key] {
			v := keys[key]
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &v)
		}
	}
	return out.Decode(sec)
}

// refusesKey says why a target of kind k cannot carry key: it is another
// kind's, or no kind's; "" when it can. Both come from Kinds and the
// sections' yaml tags, so a new kind needs nothing here.
func (k TargetKind) refusesKey(key string) string {
	if yamlKeys(&Target{})[key] || yamlKeys(k.section(&Target{}, true))[key] {
		return ""
	}
	owners := kindNames(func(o TargetKind) bool { return yamlKeys(o.section(&Target{}, true))[key] })
	if owners == "" {
		return unknownKey
	}
	return fmt.Sprintf("is a key of %s targets; %s target does not take it", owners, KindPhrase(k.Name))
}

// unknownKey is the problem of a key nothing declares.
const unknownKey = "unknown key"

// yamlKeys is the set of keys the struct v points to declares in its yaml
// tags (not "-").
func yamlKeys(v any) map[string]bool {
	keys := map[string]bool{}
	typ := reflect.TypeOf(v).Elem()
	for i := 0; i < typ.NumField(); i++ {
		if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); name != "-" && name != "" {
			keys[name] = true
		}
	}
	return keys
}

// kindKeyProblems reports each target key its kind does not take but
// another kind does, at its line. Keys no kind has are the schema's to
// report (it lists every kind's keys and no others), as are a missing or
// unknown kind. doc is the config as the schema saw it.
func kindKeyProblems(file string, doc any, lines map[string]int) Problems {
	root, _ := doc.(map[string]any)
	targets, _ := root["targets"].(map[string]any)
	var probs Problems
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		target, _ := targets[name].(map[string]any)
		kindName, _ := target["kind"].(string)
		k, ok := KindOf(kindName)
		if !ok {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(target)) {
			if why := k.refusesKey(key); why != "" && why != unknownKey {
				path := "targets." + name + "." + key
				probs = append(probs, Problem{File: file, Line: lineOf(lines, path), Path: path, Reason: why})
			}
		}
	}
	return probs
}
