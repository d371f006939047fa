package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v4"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// SchemaJSON is the JSON Schema of toolgate.yaml, shipped in the repo.
//
//go:embed schema.json
var SchemaJSON []byte

// Problem is one thing wrong with a configuration.
type Problem struct {
	File   string
	Line   int
	Path   string
	Reason string
}

// String formats the problem as "file:line: path: reason" (without the
// line when it is unknown, and without the path for the whole file).
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Path == "" {
		return loc + ": " + p.Reason
	}
	return loc + ": " + p.Path + ": " + p.Reason
}

// Problems is every problem found in a configuration.
type Problems []Problem

// Error lists the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Env looks up an environment variable.
type Env func(name string) (string, bool)

// Load reads, substitutes, validates and decodes a config file. Any problem
// is reported in a Problems error listing all of them.
func Load(file string, env Env) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Problems{{File: file, Reason: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}}
	}
	return Parse(file, data, env)
}

// Parse is Load for bytes already read.
func Parse(file string, data []byte, env Env) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlProblems(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, Problems{{File: file, Reason: "the file is empty"}}
	}
	root := doc.Content[0]
	var probs Problems
	lines := map[string]int{}
	substitute(root, "", env, file, lines, &probs)

	var generic any
	if err := root.Decode(&generic); err != nil {
		return nil, append(probs, yamlProblems(file, err)...)
	}
	generic, err := jsonCompatible(generic)
	if err != nil {
		return nil, append(probs, Problem{File: file, Reason: err.Error()})
	}
	probs = append(probs, validateSchema(file, generic, lines)...)
	probs = append(probs, kindKeyProblems(file, generic, lines)...)
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, probs
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(mustYAML(root)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, Problems{{File: file, Reason: "cannot decode: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	cfg.File = file
	cfg.lines = lines
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		var ps Problems
		if errors.As(err, &ps) {
			for i := range ps {
				ps[i].File = file
				ps[i].Line = lineOf(lines, ps[i].Path)
			}
			return nil, ps
		}
		return nil, err
	}
	return &cfg, nil
}

// yamlProblems turns a YAML parse or decode error into problems at the
// line to fix: where an unclosed quote, bracket or brace starts, else where
// the parser stopped.
func yamlProblems(file string, err error) Problems {
	var list []*yaml.LoadError
	var les *yaml.LoadErrors
	var le *yaml.LoadError
	switch {
	case errors.As(err, &les):
		list = les.Errors
	case errors.As(err, &le):
		list = []*yaml.LoadError{le}
	default:
		return Problems{{File: file, Reason: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var ps Problems
	for _, e := range list {
		line, reason := e.Mark.Line, e.Message
		unclosed := strings.Contains(e.ContextMsg, "quoted scalar") || strings.Contains(e.ContextMsg, "flow")
		switch {
		case unclosed && e.ContextMark.Line > 0 && e.ContextMark.Line != line:
			reason = fmt.Sprintf("%s (%s that starts here, column %d; the parser stopped at line %d)", reason, e.ContextMsg, e.ContextMark.Column, line)
			line = e.ContextMark.Line
		case e.Mark.Column > 0:
			reason = fmt.Sprintf("%s (column %d)", reason, e.Mark.Column)
		}
		ps = append(ps, Problem{File: file, Line: line, Reason: "not valid YAML: " + reason})
	}
	return ps
}

// lineOf returns the line of path or of its nearest parent that exists.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func mustYAML(n *yaml.Node) []byte {
	out, err := yaml.Marshal(n)
	if err != nil {
		// A node tree that came out of yaml.Unmarshal always marshals.
		return nil
	}
	return out
}

// substitute replaces ${NAME} in scalar values with environment values and
// records each path's line. "$${" is a literal "${".
func substitute(n *yaml.Node, path string, env Env, file string, lines map[string]int, probs *Problems) {
	if _, keyed := lines[path]; !keyed {
		lines[path] = n.Line // a mapping value keeps its key's line
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			substitute(v, p, env, file, lines, probs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			substitute(c, fmt.Sprintf("%s[%d]", path, i), env, file, lines, probs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		out, missing := expand(n.Value, env)
		for _, name := range missing {
			*probs = append(*probs, Problem{File: file, Line: n.Line, Path: path, Reason: fmt.Sprintf("environment variable %s is not set", name)})
		}
		n.Value = out
		if n.Tag != "!!str" {
			n.Tag = "!!str"
			n.Style = yaml.DoubleQuotedStyle
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			substitute(n.Alias, path, env, file, lines, probs)
		}
	}
}

// expand replaces ${NAME} with env values and returns the names not set.
func expand(s string, env Env) (string, []string) {
	var b strings.Builder
	var missing []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			break
		}
		name := s[i+2 : i+j]
		b.WriteString(s[:i])
		if v, ok := env(name); ok {
			b.WriteString(v)
		} else {
			missing = append(missing, name)
		}
		s = s[i+j+1:]
	}
	return b.String(), missing
}

// jsonCompatible turns a YAML-decoded value into one the JSON Schema
// validator takes (string keys, json.Number numbers).
func jsonCompatible(v any) (any, error) {
	raw, err := json.Marshal(normalize(v))
	if err != nil {
		return nil, fmt.Errorf("cannot represent as JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	case time.Time:
		return t.Format(time.RFC3339Nano)
	}
	return v
}

// compileSchema compiles the shipped schema. Config loads are rare, so it is
// compiled per load rather than kept in a package variable.
func compileSchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("toolgate.yaml.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("toolgate.yaml.json")
}

func validateSchema(file string, v any, lines map[string]int) Problems {
	sch, err := compileSchema()
	if err != nil {
		return Problems{{File: file, Reason: "internal: config schema does not compile: " + err.Error()}}
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		return nil
	}
	var probs Problems
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		path := dotted(e.InstanceLocation)
		reason := e.ErrorKind.LocalizedString(message.NewPrinter(language.English))
		if pk, ok := e.ErrorKind.(*kind.Pattern); ok {
			if hint, ok := patternHints[pk.Want]; ok {
				reason = fmt.Sprintf("%q is not %s", pk.Got, hint)
			}
		}
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
			for _, name := range ap.Properties {
				p := path
				if p != "" {
					p += "."
				}
				p += name
				if key := p + ": unknown"; !seen[key] {
					seen[key] = true
					probs = append(probs, Problem{File: file, Line: lines[p], Path: p, Reason: unknownKey})
				}
			}
			return
		}
		if key := path + ": " + reason; !seen[key] {
			seen[key] = true
			probs = append(probs, Problem{File: file, Line: lines[path], Path: path, Reason: reason})
		}
	}
	walk(ve)
	return probs
}

// patternHints says in words what the schema's patterns want.
var patternHints = map[string]string{
	`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+$`:                   "a duration (use e.g. 5s, 30m, 2h, 90d)",
	`^(user|group|client|key|workload):.+$`:                         "a principal (user:<email>, group:<name>, client:<azp>, key:<name> or workload:<issuer>:<sub>)",
	`^(user|client|key|workload):.+$`:                               "an owner (user:<email>, client:<azp>, key:<name> or workload:<issuer>:<sub>; not a group)",
	`^[0-9a-f]{64}$`:                                                "a lowercase hex SHA-256 (sha256sum of the key)",
	`^https?://`:                                                    "an http(s) URL",
	`^https?://(\[[0-9a-fA-F:.]+\]|[^/?#@\s:\[\]]+)(:[0-9]{1,5})?$`: "an origin: scheme://host[:port] with no path, e.g. https://agents.example.com",
	`^T[A-Z0-9]+$`:                                                  "a Slack workspace id (T…; the web app's address app.slack.com/client/T…/ shows it)",
	`^E[A-Z0-9]+$`:                                                  "a Slack Enterprise Grid organization id (E…)",
	`^A[A-Z0-9]+$`:                                                  "a Slack app id (A…, on the app's Basic Information page)",
	`^/`:                                                            "a path or JSON pointer starting with /",
	`^[a-z0-9][a-z0-9_-]{0,62}$`:                                    "a workload issuer name (lower-case letters, digits, _ and -)",
	`^scope(\.[a-zA-Z0-9_]+)+$`:                                     "a scope reference like scope.customer_id",
	`^[a-zA-Z0-9_-]{1,64}$`:                                         "a valid name (letters, digits, _ and -, at most 64)",
}

func dotted(loc []string) string {
	var b strings.Builder
	for _, s := range loc {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Path < ps[j].Path
	})
}

// UnmarshalYAML parses "5s", "30m", "2h" and "90d" (days).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration is time.ParseDuration plus a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") && !strings.HasSuffix(s, "ms") {
		days, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err == nil {
			return time.Duration(days * 24 * float64(time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 5s, 30m, 2h, 90d)", s)
	}
	return d, nil
}

// MarshalYAML writes the duration back.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
