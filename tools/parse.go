package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// namePattern is the tool name rule: what the function-calling APIs of
// the models behind agents accept.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Keys a declaration may hold, per object.
var (
	topKeys        = []string{"$schema", "name", "title", "description", "target", "input_schema", "output_schema", "sql", "http", "preview", "preview_reason", "annotations", "mask", "detectors"}
	sqlKeys        = []string{"statement", "args", "max_rows"}
	httpKeys       = []string{"method", "path", "query", "body"}
	annotationKeys = []string{"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
	maskActions    = []string{"redact", "last4", "email", "hash", "null", "drop", "deny"}
	detectorNames  = []string{"card", "email", "ssn", "iban", "jwt", "secret", "private_key"}
	httpMethods    = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
)

// Limits on one declaration file.
const (
	maxDeclSize     = 1 << 20
	maxNestingDepth = 64
)

// Parse checks one tool declaration (the content of file) against the
// configured targets (name → kind) and returns the tool with its compiled
// Spec, or every problem found. It never returns both.
func Parse(file string, data []byte, targets map[string]string) (*broker.Tool, []Problem) {
	ps := &problems{file: file, lines: map[string]int{}}
	tool := parse(ps, data, targets)
	if len(ps.list) > 0 {
		return nil, ps.list
	}
	return tool, nil
}

func parse(ps *problems, data []byte, targets map[string]string) *broker.Tool {
	if len(data) > maxDeclSize {
		ps.addf("", "the declaration is %d bytes; the limit is %d", len(data), maxDeclSize)
		return nil
	}
	if !checkSyntax(ps, data) {
		return nil
	}
	top, ok := object(ps, data, "", topKeys)
	if !ok {
		return nil
	}
	tool := &broker.Tool{Source: ps.file}
	sp := &Spec{}
	// "$schema" points editors at tools/schema/tool.schema.json; toolgate
	// only checks that it is a string.
	_, _ = stringField(ps, top, "", "$schema", false)

	tool.Name, _ = stringField(ps, top, "", "name", true)
	if _, present := top["name"]; present {
		checkName(ps, tool.Name)
	}
	tool.Title, _ = stringField(ps, top, "", "title", false)
	tool.Description, _ = stringField(ps, top, "", "description", false)
	var kind config.TargetKind
	if target, ok := stringField(ps, top, "", "target", true); ok {
		tool.Target = target
		kind = checkTarget(ps, target, targets)
		if kind.RefusesNUL {
			sp.nulKind = kind.Name
		}
	}

	var in *compiledSchema
	if raw, ok := top["input_schema"]; ok {
		in = compileSchema(ps, raw, "/input_schema", "tool arguments are a JSON object")
		if in != nil {
			tool.InputSchema = compactJSON(raw)
			sp.input, sp.ints = in.schema, in.ints
		}
	} else {
		ps.addf("/input_schema", "is required: declare the tool's arguments as a JSON Schema with \"type\": \"object\"")
	}
	if raw, ok := top["output_schema"]; ok {
		if out := compileSchema(ps, raw, "/output_schema", "MCP structured results are JSON objects"); out != nil {
			tool.OutputSchema = compactJSON(raw)
			sp.output = out.schema
		}
	}
	if raw, ok := top["annotations"]; ok {
		tool.Annotations = parseAnnotations(ps, raw)
	}
	if raw, ok := top["mask"]; ok {
		tool.Mask = parseMask(ps, raw)
	}
	if raw, ok := top["detectors"]; ok {
		tool.Detectors = parseDetectors(ps, raw)
	}

	// in is nil when the input schema is missing or broken; the operation
	// checks still run (so every problem is reported) against an empty
	// property set, but argument-name problems are then left unreported
	// because they would only repeat the schema problem.
	args := argNames{known: in != nil}
	if in != nil {
		args.props, args.required = in.props, in.required
	}
	rawSQL, hasSQL := top["sql"]
	rawHTTP, hasHTTP := top["http"]
	switch {
	case hasSQL && hasHTTP:
		ps.addf("", "declares both sql and http: a tool runs exactly one operation, so keep one of them")
	case !hasSQL && !hasHTTP:
		ps.addf("", "declares neither sql nor http: a tool needs exactly one of them to say what it runs")
	case hasSQL:
		checkRuns(ps, "/sql", tool.Target, kind, config.RunsSQL)
		sp.sql = parseSQL(ps, rawSQL, "/sql", sqlKeys, args)
	case hasHTTP:
		checkRuns(ps, "/http", tool.Target, kind, config.RunsHTTP)
		sp.http = parseHTTP(ps, rawHTTP, "/http", args)
	}
	op := ""
	switch {
	case hasSQL && !hasHTTP:
		op = config.RunsSQL
	case hasHTTP && !hasSQL:
		op = config.RunsHTTP
	}
	sp.preview = parsePreview(ps, top, op, kind.Name, args)
	sp.lines = ps.lines
	tool.Spec = sp
	return tool
}

// checkSyntax reports whether data is one well-formed JSON value with no
// duplicate object keys (a duplicate would let a reviewer read one value
// while toolgate used another) and no excessive nesting.
func checkSyntax(ps *problems, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		path   string
		object bool
		keys   map[string]bool
		index  int
		key    string // the pending key inside an object
		expect bool   // inside an object: the next token is a key
	}
	var stack []*frame
	ok := true
	// child returns the path of the value about to be read.
	child := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.object {
			return pointer(f.path, f.key)
		}
		return pointer(f.path, fmt.Sprint(f.index))
	}
	// done marks a value as read in the enclosing container.
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.object {
			f.expect = true
		} else {
			f.index++
		}
	}
	values := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 || values == 0 {
				ps.addf("", "not valid JSON: the document ends in the middle of a value")
				return false
			}
			break
		}
		if err != nil {
			msg, line := syntaxMessage(data, err)
			ps.list = append(ps.list, Problem{File: ps.file, Line: line, Reason: "not valid JSON: " + msg})
			return false
		}
		if len(stack) == 0 {
			if values > 0 {
				line, col := lineCol(data, dec.InputOffset())
				ps.addf("", "not valid JSON: more text follows the declaration's closing brace (line %d, column %d); a file holds exactly one declaration", line, col)
				return false
			}
			values++
		}
		if len(stack) > 0 {
			f := stack[len(stack)-1]
			if !f.object {
				ps.lines[child()], _ = lineCol(data, dec.InputOffset())
			}
			if f.object && f.expect {
				if d, isDelim := tok.(json.Delim); isDelim && d == '}' {
					stack = stack[:len(stack)-1]
					done()
					continue
				}
				key, _ := tok.(string)
				if _, seen := ps.lines[pointer(f.path, key)]; !seen {
					ps.lines[pointer(f.path, key)], _ = lineCol(data, dec.InputOffset())
				}
				if f.keys[key] {
					ps.addf(pointer(f.path, key), "duplicate key %q: each key may appear once, so what a reviewer reads is what runs", key)
					ok = false
				}
				f.keys[key] = true
				f.key, f.expect = key, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxNestingDepth {
				ps.addf(child(), "nested more than %d levels deep", maxNestingDepth)
				return false
			}
			obj := tok == json.Delim('{')
			stack = append(stack, &frame{path: child(), object: obj, keys: map[string]bool{}, expect: obj})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			done()
		default:
			done()
		}
	}
	return ok
}

// syntaxMessage turns a decoding error into "reason at line L, column C"
// and the line.
func syntaxMessage(data []byte, err error) (string, int) {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return fmt.Sprintf("%s at line %d, column %d", se.Error(), line, col), line
	}
	line, _ := lineCol(data, int64(len(data)))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the document ends in the middle of a value", line
	}
	return err.Error(), line
}

func lineCol(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// object decodes raw as a JSON object, reports every key outside allowed
// and returns the known fields.
func object(ps *problems, raw json.RawMessage, path string, allowed []string) (map[string]json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	if err := strict(raw, &fields); err != nil || fields == nil {
		ps.addf(path, "must be a JSON object, got %s", jsonKind(raw))
		return nil, false
	}
	var unknown []string
	for k := range fields {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := fmt.Sprintf("unknown key %q", k)
		if s := suggest(k, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		ps.addf(pointer(path, k), "%s; allowed keys here are %s", msg, strings.Join(allowed, ", "))
		delete(fields, k)
	}
	return fields, true
}

// suggest returns the allowed key that k is probably a misspelling of.
func suggest(k string, allowed []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	for _, a := range allowed {
		if norm(a) == norm(k) {
			return a
		}
	}
	return ""
}

// strict decodes raw into v with unknown fields refused and numbers kept
// as json.Number.
func strict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// jsonKind names the JSON type of raw for messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// stringField decodes fields[key] as a string. A missing required key, a
// non-string value or a blank required value is a problem.
func stringField(ps *problems, fields map[string]json.RawMessage, parent, key string, required bool) (string, bool) {
	raw, ok := fields[key]
	path := pointer(parent, key)
	if !ok {
		if required {
			ps.addf(path, "is required")
		}
		return "", false
	}
	var s string
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || strict(raw, &s) != nil {
		ps.addf(path, "must be a string, got %s", jsonKind(raw))
		return "", false
	}
	if required && strings.TrimSpace(s) == "" {
		ps.addf(path, "must not be empty")
		return "", false
	}
	return s, true
}

func checkName(ps *problems, name string) {
	if name == "" || namePattern.MatchString(name) {
		return
	}
	const rule = `tool names must match ^[a-zA-Z0-9_-]{1,64}$`
	bad := strings.IndexFunc(name, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	switch {
	case strings.Contains(name, "."):
		fix := strings.ReplaceAll(name, ".", "_")
		msg := fmt.Sprintf("tool name %q contains a dot: MCP allows dots, but the function-calling APIs of OpenAI and Anthropic reject them, so an agent could not call this tool (%s)", name, rule)
		if namePattern.MatchString(fix) {
			msg += fmt.Sprintf("; use %q", fix)
		}
		ps.addf("/name", "%s", msg)
	case bad >= 0:
		r := []rune(name[bad:])[0]
		ps.addf("/name", "tool name %q contains %q: only letters, digits, \"_\" and \"-\" are allowed, because function-calling APIs reject anything else (%s)", name, r, rule)
	default:
		ps.addf("/name", "tool name is %d characters long; function-calling APIs reject names over 64 (%s)", len(name), rule)
	}
}

// checkRuns reports an operation the target's kind does not run.
func checkRuns(ps *problems, at, target string, kind config.TargetKind, runs string) {
	if kind.Name != "" && kind.Runs != runs {
		ps.addf(at, "target %q is %s target; %s needs %s target", target, config.KindPhrase(kind.Name), runs, config.KindPhrase(config.KindsRunning(runs)))
	}
}

// checkTarget reports an unknown target and returns the target's kind.
func checkTarget(ps *problems, target string, targets map[string]string) config.TargetKind {
	kind, ok := targets[target]
	if !ok {
		names := make([]string, 0, len(targets))
		for n := range targets {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			ps.addf("/target", "unknown target %q: no targets are configured in toolgate.yaml", target)
		} else {
			ps.addf("/target", "unknown target %q: configured targets are %s", target, strings.Join(names, ", "))
		}
		return config.TargetKind{}
	}
	k, ok := config.KindOf(kind)
	if !ok || k.Runs == "" {
		ps.addf("/target", "target %q has kind %q, which tools cannot use (kinds are %s)", target, kind, toolKinds())
	}
	return k
}

// toolKinds names the kinds whose targets tools can run against.
func toolKinds() string {
	var names []string
	for _, k := range config.Kinds() {
		if k.Runs != "" {
			names = append(names, k.Name)
		}
	}
	return strings.Join(names, ", ")
}

func parseAnnotations(ps *problems, raw json.RawMessage) broker.Annotations {
	var a broker.Annotations
	fields, ok := object(ps, raw, "/annotations", annotationKeys)
	if !ok {
		return a
	}
	a.Title, _ = stringField(ps, fields, "/annotations", "title", false)
	hints := map[string]**bool{
		"readOnlyHint":    &a.ReadOnlyHint,
		"destructiveHint": &a.DestructiveHint,
		"idempotentHint":  &a.IdempotentHint,
		"openWorldHint":   &a.OpenWorldHint,
	}
	for _, key := range annotationKeys[1:] {
		v, ok := fields[key]
		if !ok {
			continue
		}
		var b bool
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) || strict(v, &b) != nil {
			ps.addf(pointer("/annotations", key), "must be true or false, got %s", jsonKind(v))
			continue
		}
		*hints[key] = &b
	}
	return a
}

func parseMask(ps *problems, raw json.RawMessage) map[string]string {
	var fields map[string]json.RawMessage
	if err := strict(raw, &fields); err != nil || fields == nil {
		ps.addf("/mask", "must be an object mapping result paths (gjson syntax) to actions, got %s", jsonKind(raw))
		return nil
	}
	mask := make(map[string]string, len(fields))
	for _, path := range slices.Sorted(maps.Keys(fields)) {
		at := pointer("/mask", path)
		var action string
		if strict(fields[path], &action) != nil {
			ps.addf(at, "the action must be a string, one of %s", strings.Join(maskActions, ", "))
			continue
		}
		if strings.TrimSpace(path) == "" {
			ps.addf(at, "the result path must not be empty")
			continue
		}
		if !slices.Contains(maskActions, action) {
			ps.addf(at, "unknown mask action %q: actions are %s", action, strings.Join(maskActions, ", "))
			continue
		}
		mask[path] = action
	}
	return mask
}

func parseDetectors(ps *problems, raw json.RawMessage) map[string]bool {
	var fields map[string]json.RawMessage
	if err := strict(raw, &fields); err != nil || fields == nil {
		ps.addf("/detectors", "must be an object mapping detector names to true or false, got %s", jsonKind(raw))
		return nil
	}
	det := make(map[string]bool, len(fields))
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		at := pointer("/detectors", name)
		if !slices.Contains(detectorNames, name) {
			ps.addf(at, "unknown detector %q: detectors are %s", name, strings.Join(detectorNames, ", "))
			continue
		}
		var on bool
		if bytes.Equal(bytes.TrimSpace(fields[name]), []byte("null")) || strict(fields[name], &on) != nil {
			ps.addf(at, "must be true or false, got %s", jsonKind(fields[name]))
			continue
		}
		det[name] = on
	}
	return det
}

// compactJSON returns raw without insignificant whitespace.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// argNames is what operation checks know about the input schema.
type argNames struct {
	// known is false when the input schema is missing or broken.
	known    bool
	props    map[string]bool
	required map[string]bool
}

// checkArg reports a problem when name is not an input property.
func (a argNames) checkArg(ps *problems, path, name, what string) {
	if !a.known || a.props[name] {
		return
	}
	ps.addf(path, "%s %q is not a property of input_schema%s", what, name, a.listProps())
}

func (a argNames) listProps() string {
	if len(a.props) == 0 {
		return " (it declares no properties)"
	}
	return " (properties are " + strings.Join(slices.Sorted(maps.Keys(a.props)), ", ") + ")"
}
