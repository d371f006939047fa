package mask

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tidwall/match"

	"github.com/toolgate/toolgate/internal/config"
)

// The masking actions a path rule can name.
const (
	ActionRedact = "redact"
	ActionLast4  = "last4"
	ActionEmail  = "email"
	ActionHash   = "hash"
	ActionNull   = "null"
	ActionDrop   = "drop"
	// ActionDeny withholds a column in the database itself: the per-grant
	// role of a Postgres passthrough session gets no privilege on it (lock
	// 2, see connectors/pgroles). Everywhere else (tool results, a cell
	// that still reaches the proxy) it behaves as drop.
	ActionDeny = "deny"
)

// MinHashKeyBytes is the shortest HashKey accepted when a rule uses hash.
const MinHashKeyBytes = 16

// MaxDepth is how deeply arrays and objects may nest in a masked document.
const MaxDepth = 128

// ErrTooDeep is returned (wrapped) when a document nests deeper than
// MaxDepth. The broker then withholds the result.
var ErrTooDeep = errors.New("the document nests arrays and objects deeper than masking allows")

// Config is the masking configuration (toolgate.yaml "masking", plus each
// target's mask and detectors).
type Config struct {
	// HashKey keys the hash action's HMAC. It is required, at least
	// MinHashKeyBytes long, as soon as any rule uses hash.
	HashKey []byte
	// Rules maps gjson paths in results to actions, for every tool.
	Rules map[string]string
	// Detectors switches detectors on or off everywhere.
	Detectors map[string]bool
	// Targets holds per-target rules and switches, by target name.
	Targets map[string]TargetConfig
	// Secrets are the credentials toolgate injects; every spelling of each
	// value (as is, JSON-escaped, URL-encoded, inside Basic/Bearer) is
	// replaced by "[REDACTED:credential]" wherever masking runs: results,
	// records, text, passthrough cells. Values shorter than MinSecretBytes
	// are not redacted.
	Secrets []Secret
}

// TargetConfig is one target's masking. Rules keys are gjson paths for
// results and "table.column" names for passthrough cells.
type TargetConfig struct {
	Rules     map[string]string
	Detectors map[string]bool
}

// FromConfig takes the masking half of a loaded toolgate.yaml: the
// masking section and each target's mask and detectors.
func FromConfig(c config.Config) Config {
	out := Config{
		Rules:     c.Masking.Rules,
		Detectors: c.Masking.Detectors,
		Targets:   make(map[string]TargetConfig, len(c.Targets)),
		Secrets:   SecretsFromConfig(c),
	}
	if c.Masking.HashKey != "" {
		out.HashKey = []byte(c.Masking.HashKey)
	}
	for name, t := range c.Targets {
		rules := t.Mask
		if t.Kind == config.KindMCP {
			rules = StructuredPaths(t.Mask)
		}
		if len(rules) > 0 || len(t.Detectors) > 0 {
			out.Targets[name] = TargetConfig{Rules: rules, Detectors: t.Detectors}
		}
	}
	return out
}

// StructuredContent is the member of an upstream MCP tool's result
// document that holds its structured result.
const StructuredContent = "structuredContent"

// StructuredPaths maps rules written for an upstream MCP tool's
// structured result, their paths relative to it, to rules over the whole
// result document ({"content": [...], "structuredContent": {...}}): each
// applies under structuredContent and under the text of every content
// block that repeats the structured content (connectors/mcp carries such
// a text as a JSON object). Nil for none.
func StructuredPaths(rules map[string]string) map[string]string {
	if len(rules) == 0 {
		return nil
	}
	out := make(map[string]string, 2*len(rules))
	for p, a := range rules {
		out[StructuredContent+"."+p] = a
		out["content.#.text."+p] = a
	}
	return out
}

// Validate checks every action, path and detector name, and that a hash
// key is present when a rule needs it.
func (c Config) Validate() error {
	var errs []error
	needKey := false
	check := func(where string, rules map[string]string, det map[string]bool) {
		for _, path := range slices.Sorted(maps.Keys(rules)) {
			action := rules[path]
			if err := validateRule(path, action); err != nil {
				errs = append(errs, fmt.Errorf("%s.rules[%q]: %w", where, path, err))
			}
			needKey = needKey || action == ActionHash
		}
		if err := ValidateDetectors(det); err != nil {
			errs = append(errs, fmt.Errorf("%s.detectors: %w", where, err))
		}
	}
	check("masking", c.Rules, c.Detectors)
	for _, name := range slices.Sorted(maps.Keys(c.Targets)) {
		t := c.Targets[name]
		check("targets."+name+".mask", t.Rules, t.Detectors)
	}
	if needKey && len(c.HashKey) < MinHashKeyBytes {
		errs = append(errs, fmt.Errorf("masking.hash_key: a rule uses the hash action, so hash_key must be set to at least %d bytes", MinHashKeyBytes))
	}
	return errors.Join(errs...)
}

// ValidateRules checks a tool's mask rules, for the tools loader to fail at
// load rather than at call.
func ValidateRules(rules map[string]string) error {
	var errs []error
	for _, path := range slices.Sorted(maps.Keys(rules)) {
		if err := validateRule(path, rules[path]); err != nil {
			errs = append(errs, fmt.Errorf("mask[%q]: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// ValidateDetectors checks detector switch names.
func ValidateDetectors(det map[string]bool) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(det)) {
		if _, ok := detectorByName(name); !ok {
			errs = append(errs, fmt.Errorf("unknown detector %q (known: %s)", name, strings.Join(Detectors(), ", ")))
		}
	}
	return errors.Join(errs...)
}

// validateRule checks one rule's action and path.
func validateRule(path, action string) error {
	switch action {
	case ActionRedact, ActionLast4, ActionEmail, ActionHash, ActionNull, ActionDrop, ActionDeny:
	default:
		return fmt.Errorf("unknown action %q (known: redact, last4, email, hash, null, drop, deny)", action)
	}
	_, err := compilePath(path)
	return err
}

// segKind says how a path segment matches.
type segKind uint8

const (
	segKey     segKind = iota // an object key (or, if numeric, an array index)
	segAll                    // "#": every array element
	segPattern                // a key with * or ? wildcards
)

// segment is one compiled path segment.
type segment struct {
	kind segKind
	key  string // the unescaped key, or the pattern as written
	idx  int    // the array index when key is numeric, else -1
}

// matchKey reports whether the segment matches object key k.
func (g *segment) matchKey(k []byte) bool {
	switch g.kind {
	case segKey:
		return string(k) == g.key
	case segPattern:
		ok, _ := match.MatchLimit(string(k), g.key, 10000)
		return ok
	}
	return false
}

// matchIndex reports whether the segment matches array index i.
func (g *segment) matchIndex(i int) bool {
	return g.kind == segAll || g.kind == segKey && g.idx == i
}

// compilePath compiles the plain subset of gjson path syntax: dot-separated
// keys with backslash escapes, numeric array indexes, "#" for every array
// element, and * / ? wildcards in keys. Queries, modifiers, pipes and
// multipaths change the document rather than point into it, so they are
// refused.
func compilePath(path string) ([]segment, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	switch path[0] {
	case '@', '!', '[', '{':
		return nil, fmt.Errorf("path %q uses a gjson modifier or multipath, which cannot point into a result; use a plain path such as rows.#.email", path)
	}
	var segs []segment
	var cur, raw strings.Builder
	wild := false
	flush := func() error {
		if raw.Len() == 0 {
			return fmt.Errorf("path %q has an empty segment", path)
		}
		r := raw.String()
		switch {
		case r == "#":
			segs = append(segs, segment{kind: segAll, idx: -1})
		case strings.HasPrefix(r, "#("):
			return fmt.Errorf("path %q uses a gjson query, which masking does not support; mask every element with # instead", path)
		case wild:
			segs = append(segs, segment{kind: segPattern, key: r, idx: -1})
		default:
			k := cur.String()
			segs = append(segs, segment{kind: segKey, key: k, idx: index(k)})
		}
		cur.Reset()
		raw.Reset()
		wild = false
		return nil
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch c {
		case '\\':
			if i+1 == len(path) {
				return nil, fmt.Errorf("path %q ends with a lone backslash", path)
			}
			i++
			cur.WriteByte(path[i])
			raw.WriteByte('\\')
			raw.WriteByte(path[i])
		case '.':
			if err := flush(); err != nil {
				return nil, err
			}
		case '|':
			return nil, fmt.Errorf("path %q uses a gjson pipe, which masking does not support", path)
		case '*', '?':
			wild = true
			cur.WriteByte(c)
			raw.WriteByte(c)
		default:
			cur.WriteByte(c)
			raw.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return segs, nil
}

// index returns k as an array index, or -1.
func index(k string) int {
	if k == "" || len(k) > 9 {
		return -1
	}
	n := 0
	for i := 0; i < len(k); i++ {
		if !isDigit(k[i]) {
			return -1
		}
		n = n*10 + int(k[i]-'0')
	}
	return n
}
