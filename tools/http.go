package tools

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// httpSpec is a checked HTTP operation.
type httpSpec struct {
	method string
	path   []pathPart
	query  []queryParam
	// body is nil when the request has no body.
	body *bodyNode
}

// pathPart is literal path text or a {param} filled from an argument.
type pathPart struct {
	literal string
	param   string
}

type queryParam struct {
	name string
	ref  argRef
}

// argRef says where a value comes from: an argument by name, a JSON pointer
// into the arguments, or a constant written in the declaration.
type argRef struct {
	name string
	// rest are the pointer tokens after the argument name.
	rest    []string
	isConst bool
	value   any
}

// bodyNode is one node of a body template: a reference (leaf), an object
// or an array.
type bodyNode struct {
	ref    *argRef
	fields map[string]*bodyNode
	items  []*bodyNode
}

const refForms = `an argument name, a JSON pointer into the arguments such as "/customer/id", or {"const": value}`

// parseHTTP checks the HTTP operation at base (a JSON pointer: "/http", or
// "/preview/http" for a declared preview request).
func parseHTTP(ps *problems, raw json.RawMessage, base string, args argNames) *httpSpec {
	fields, ok := object(ps, raw, base, httpKeys)
	if !ok {
		return nil
	}
	sp := &httpSpec{}
	if m, ok := stringField(ps, fields, base, "method", true); ok {
		switch {
		case slices.Contains(httpMethods, m):
			sp.method = m
		case slices.Contains(httpMethods, strings.ToUpper(m)):
			ps.addf(base+"/method", "must be upper case: write %q", strings.ToUpper(m))
		default:
			ps.addf(base+"/method", "unsupported method %q: methods are %s", m, strings.Join(httpMethods, ", "))
		}
	}
	if p, ok := stringField(ps, fields, base, "path", true); ok {
		sp.path = parsePath(ps, base+"/path", p, args)
	}
	if rawQuery, ok := fields["query"]; ok {
		sp.query = parseQuery(ps, base+"/query", rawQuery, args)
	}
	if rawBody, ok := fields["body"]; ok {
		if sp.method == "GET" {
			ps.addf(base+"/body", "a GET request carries no body: send arguments with query instead, or use POST")
		}
		switch jsonKind(rawBody) {
		case "a string", "an object":
			sp.body = parseBody(ps, rawBody, base+"/body", args)
		default:
			ps.addf(base+"/body", "must be a JSON object whose leaf values are argument references, or one argument reference (a string) sent as the whole body; got %s", jsonKind(rawBody))
		}
	}
	return sp
}

// isPathChar reports whether c may appear literally in a URL path
// (RFC 3986 pchar plus "/", without "%", which is checked separately).
func isPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parsePath checks a path template and splits it into parts.
func parsePath(ps *problems, at, p string, args argNames) []pathPart {
	const hostRule = "the host always comes from the target, so a path is relative to the target's base URL"
	switch {
	case !strings.HasPrefix(p, "/"):
		ps.addf(at, "must start with \"/\": %s", hostRule)
		return nil
	case strings.HasPrefix(p, "//"):
		ps.addf(at, "must not start with \"//\", which names a host: %s", hostRule)
		return nil
	case strings.Contains(p, "://"):
		ps.addf(at, "must not contain \"://\": %s", hostRule)
		return nil
	case strings.ContainsAny(p, "?#"):
		ps.addf(at, "must not contain \"?\" or \"#\": declare query parameters under query")
		return nil
	}
	var parts []pathPart
	ok := true
	for rest := p; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			parts = append(parts, pathPart{literal: rest})
			break
		}
		if rest[open] == '}' {
			ps.addf(at, "has a \"}\" without a matching \"{\"")
			return nil
		}
		if open > 0 {
			parts = append(parts, pathPart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			ps.addf(at, "has a \"{\" without a matching \"}\"")
			return nil
		}
		name := rest[open+1 : open+end]
		if name == "" || strings.ContainsAny(name, "{/") {
			ps.addf(at, "has the malformed parameter %q: write {name} with name an input property", rest[open:open+end+1])
			return nil
		}
		parts = append(parts, pathPart{param: name})
		rest = rest[open+end+1:]
	}
	for _, part := range parts {
		if part.param != "" {
			args.checkArg(ps, at, part.param, "path parameter")
			if args.known && args.props[part.param] && !args.required[part.param] {
				ps.addf(at, "path parameter {%s} must be listed in input_schema \"required\": a request path cannot leave it out", part.param)
				ok = false
			}
			continue
		}
		lit := part.literal
		for i := 0; i < len(lit); i++ {
			c := lit[i]
			if c == '%' {
				if i+2 >= len(lit) || !isHex(lit[i+1]) || !isHex(lit[i+2]) {
					ps.addf(at, "has a \"%%\" that does not start a %%XX escape")
					return nil
				}
				continue
			}
			if !isPathChar(c) {
				ps.addf(at, "contains %q, which must be percent-encoded in a URL path", rune(c))
				return nil
			}
		}
	}
	// Dot segments made only of literal text would climb out of the target's
	// base path.
	var text strings.Builder
	for _, part := range parts {
		if part.param != "" {
			text.WriteString("\x00")
		} else {
			text.WriteString(part.literal)
		}
	}
	for _, seg := range strings.Split(text.String(), "/") {
		if seg == "." || seg == ".." {
			ps.addf(at, "contains the dot segment %q: paths must not climb out of the target's base URL", seg)
			return nil
		}
	}
	if !ok {
		return nil
	}
	return parts
}

func parseQuery(ps *problems, base string, raw json.RawMessage, args argNames) []queryParam {
	var fields map[string]json.RawMessage
	if err := strict(raw, &fields); err != nil || fields == nil {
		ps.addf(base, "must be an object mapping query parameter names to %s; got %s", refForms, jsonKind(raw))
		return nil
	}
	var out []queryParam
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		at := pointer(base, name)
		if name == "" {
			ps.addf(at, "the query parameter name must not be empty")
			continue
		}
		ref, ok := parseRef(ps, fields[name], at, args)
		if !ok {
			continue
		}
		if ref.isConst && !queryConst(ref.value) {
			ps.addf(at, "a query constant must be a string, number, boolean or an array of those")
			continue
		}
		out = append(out, queryParam{name: name, ref: ref})
	}
	return out
}

func queryConst(v any) bool {
	if arr, ok := v.([]any); ok {
		for _, item := range arr {
			if _, ok := formatScalar(item); !ok {
				return false
			}
		}
		return true
	}
	_, ok := formatScalar(v)
	return ok
}

// parseRef parses an argument reference or a {"const": value}.
func parseRef(ps *problems, raw json.RawMessage, at string, args argNames) (argRef, bool) {
	var s string
	if strict(raw, &s) == nil {
		if s == "" {
			ps.addf(at, "must be %s; got an empty string", refForms)
			return argRef{}, false
		}
		if !strings.HasPrefix(s, "/") {
			args.checkArg(ps, at, s, "argument")
			return argRef{name: s}, true
		}
		tokens := strings.Split(s[1:], "/")
		for i, t := range tokens {
			u, ok := unescapeToken(t)
			if !ok {
				ps.addf(at, "the JSON pointer %q has a \"~\" not followed by 0 or 1", s)
				return argRef{}, false
			}
			tokens[i] = u
		}
		if tokens[0] == "" {
			ps.addf(at, "the JSON pointer %q must start with an argument name", s)
			return argRef{}, false
		}
		args.checkArg(ps, at, tokens[0], "the JSON pointer's first segment")
		return argRef{name: tokens[0], rest: tokens[1:]}, true
	}
	var c map[string]json.RawMessage
	if strict(raw, &c) == nil && len(c) == 1 {
		if v, ok := c["const"]; ok {
			val, err := decodeAny(v)
			if err == nil {
				return argRef{isConst: true, value: val}, true
			}
		}
	}
	ps.addf(at, "must be %s; got %s", refForms, jsonKind(raw))
	return argRef{}, false
}

func unescapeToken(t string) (string, bool) {
	if !strings.Contains(t, "~") {
		return t, true
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '~' {
			b.WriteByte(t[i])
			continue
		}
		if i+1 >= len(t) || (t[i+1] != '0' && t[i+1] != '1') {
			return "", false
		}
		if t[i+1] == '0' {
			b.WriteByte('~')
		} else {
			b.WriteByte('/')
		}
		i++
	}
	return b.String(), true
}

func decodeAny(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// parseBody parses a body template node.
func parseBody(ps *problems, raw json.RawMessage, at string, args argNames) *bodyNode {
	switch jsonKind(raw) {
	case "a string":
		ref, ok := parseRef(ps, raw, at, args)
		if !ok {
			return nil
		}
		return &bodyNode{ref: &ref}
	case "an object":
		var fields map[string]json.RawMessage
		if strict(raw, &fields) != nil {
			ps.addf(at, "must be a JSON object")
			return nil
		}
		if _, isConst := fields["const"]; isConst && len(fields) == 1 {
			ref, ok := parseRef(ps, raw, at, args)
			if !ok {
				return nil
			}
			return &bodyNode{ref: &ref}
		}
		node := &bodyNode{fields: make(map[string]*bodyNode, len(fields))}
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			node.fields[k] = parseBody(ps, fields[k], pointer(at, k), args)
		}
		return node
	case "an array":
		var items []json.RawMessage
		if strict(raw, &items) != nil {
			ps.addf(at, "must be a JSON array")
			return nil
		}
		node := &bodyNode{items: make([]*bodyNode, len(items))}
		for i, item := range items {
			node.items[i] = parseBody(ps, item, pointer(at, strconv.Itoa(i)), args)
		}
		return node
	default:
		ps.addf(at, "is the literal %s: body values are argument references, so write a literal as {\"const\": %s}", jsonKind(raw), strings.TrimSpace(string(raw)))
		return nil
	}
}
