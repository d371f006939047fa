package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"github.com/toolgate/toolgate/broker"
)

// Spec is a tool declaration compiled at load: its schemas and its SQL or
// HTTP operation template. It implements broker.ToolSpec and is immutable.
type Spec struct {
	input  *jsonschema.Schema
	output *jsonschema.Schema
	// ints marks where the input schema types an argument as an integer;
	// nulKind names the target's kind when its strings cannot hold a NUL
	// byte (config.TargetKind.RefusesNUL). See valueProblems.
	ints    *intShape
	nulKind string
	sql     *sqlSpec
	http    *httpSpec
	// preview is the declared preview; nil when the tool declares none.
	preview *previewSpec
	// lines maps JSON pointers of the declaration to their lines.
	lines map[string]int
}

// Line returns the line of a JSON pointer (like "/sql/statement") in the
// declaration's file, or of its nearest parent; 0 when it is unknown.
func (s *Spec) Line(pointer string) int {
	if s == nil || s.lines == nil {
		return 0
	}
	return (&problems{lines: s.lines}).line(pointer)
}

var _ broker.ToolSpec = (*Spec)(nil)

// SQL returns the declared statement and the argument names its $n bind,
// or ok false when the tool runs an HTTP request.
func (s *Spec) SQL() (statement string, args []string, ok bool) {
	if s == nil || s.sql == nil {
		return "", nil, false
	}
	return s.sql.statement, append([]string(nil), s.sql.args...), true
}

// MaxArgProblems caps the problems one refusal lists.
const MaxArgProblems = 10

// ValidateArgs checks args (decoded by encoding/json with UseNumber) against
// the input schema. On failure it returns a *broker.Error with
// CodeInvalidArguments that lists every problem (up to MaxArgProblems) in
// its message and in Problems, each with a JSON pointer to the offending
// argument; Field is the first one's. Messages name arguments without
// echoing their values.
func (s *Spec) ValidateArgs(args map[string]any) error {
	if s == nil || s.input == nil {
		return broker.Errorf(broker.CodeInternal, "the tool has no compiled input schema")
	}
	if args == nil {
		args = map[string]any{}
	}
	err := s.input.Validate(args)
	if err == nil {
		return s.checkValues(args)
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return broker.Wrap(broker.CodeInvalidArguments, err, "the arguments could not be validated against the input schema")
	}
	var all []argProblem
	seen := map[argProblem]bool{}
	for _, leaf := range leaves(ve) {
		for _, p := range describe(leaf) {
			if !seen[p] {
				seen[p] = true
				all = append(all, p)
			}
		}
	}
	if len(all) == 0 {
		return &broker.Error{Code: broker.CodeInvalidArguments, Message: "the arguments do not match the tool's input schema", Cause: err}
	}
	// The validator's order follows map iteration: sort for a stable answer.
	sort.SliceStable(all, func(i, j int) bool { return all[i].field < all[j].field })
	return argsError(all, err)
}

// checkValues refuses arguments the schema accepted but the target or
// policy cannot hold (valueProblems), or that do not bind into the tool's
// operation (an integer literal past int64 for a SQL parameter, "..", for
// a path segment): such a call is refused here, before policy decides it,
// never as a policy failure or a target error after it.
func (s *Spec) checkValues(args map[string]any) error {
	if ps := s.valueProblems(args); len(ps) > 0 {
		return argsError(ps, nil)
	}
	var err error
	switch {
	case s.sql != nil:
		_, err = s.sql.bind(args)
	case s.http != nil:
		_, err = s.http.bind(args)
	}
	return err
}

// argsError is the refusal listing problems, at most MaxArgProblems of them.
func argsError(all []argProblem, cause error) *broker.Error {
	shown := all[:min(len(all), MaxArgProblems)]
	ps := make([]broker.Problem, len(shown))
	msgs := make([]string, len(shown))
	for i, p := range shown {
		ps[i] = broker.Problem{Field: p.field, Message: p.message}
		msgs[i] = p.message
	}
	msg := msgs[0]
	if len(all) > 1 {
		msg = fmt.Sprintf("%d problems with the arguments: %s", len(all), strings.Join(msgs, "; "))
		if n := len(all) - len(shown); n > 0 {
			msg += fmt.Sprintf("; and %d more", n)
		}
	}
	return &broker.Error{Code: broker.CodeInvalidArguments, Field: all[0].field, Message: msg, Problems: ps, Cause: cause}
}

var _ broker.OutputChecker = (*Spec)(nil)

// ValidateOutput checks a decoded result document (numbers as json.Number)
// against the output schema, if the tool declares one.
func (s *Spec) ValidateOutput(v any) error {
	if s == nil || s.output == nil {
		return nil
	}
	return s.output.Validate(v)
}

// CheckOutput checks a connector's result document, as the connector
// returned it (before masking), against the output schema; nil when it
// matches or the tool declares none. The error can quote values of the
// result: it is for the log, masked, never for the caller.
func (s *Spec) CheckOutput(doc json.RawMessage) error {
	if s == nil || s.output == nil {
		return nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("the result is not JSON: %w", err)
	}
	return s.ValidateOutput(v)
}

type argProblem struct {
	field   string
	message string
}

// describe turns one validation error into plain sentences. It never quotes
// the offending value: arguments may be secrets.
func describe(e *jsonschema.ValidationError) []argProblem {
	field := jsonPointer(e.InstanceLocation)
	name := argLabel(e.InstanceLocation)
	one := func(format string, args ...any) []argProblem {
		return []argProblem{{field: field, message: fmt.Sprintf(format, args...)}}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		var out []argProblem
		for _, m := range k.Missing {
			loc := append(append([]string{}, e.InstanceLocation...), m)
			out = append(out, argProblem{field: jsonPointer(loc), message: fmt.Sprintf("missing required %s", argLabel(loc))})
		}
		return out
	case *kind.AdditionalProperties:
		var out []argProblem
		for _, p := range k.Properties {
			loc := append(append([]string{}, e.InstanceLocation...), p)
			msg := fmt.Sprintf("unexpected argument %q: the tool does not declare it", p)
			if len(e.InstanceLocation) > 0 {
				msg = fmt.Sprintf("unexpected property %q in %s", p, name)
			}
			out = append(out, argProblem{field: jsonPointer(loc), message: msg})
		}
		return out
	case *kind.Type:
		return one("%s must be %s, got %s", name, article(strings.Join(k.Want, " or ")), k.Got)
	case *kind.Format:
		return one("%s must be a valid %s", name, formatName(k.Want))
	case *kind.Enum:
		return one("%s must be one of %s", name, listValues(k.Want))
	case *kind.Const:
		return one("%s must be %s", name, listValues([]any{k.Want}))
	case *kind.MinLength:
		return one("%s must be at least %s long", name, plural(k.Want, "character"))
	case *kind.MaxLength:
		return one("%s must be at most %s long", name, plural(k.Want, "character"))
	case *kind.Pattern:
		return one("%s must match the pattern %s", name, k.Want)
	case *kind.Minimum:
		return one("%s must be at least %s", name, ratString(k.Want))
	case *kind.Maximum:
		return one("%s must be at most %s", name, ratString(k.Want))
	case *kind.ExclusiveMinimum:
		return one("%s must be greater than %s", name, ratString(k.Want))
	case *kind.ExclusiveMaximum:
		return one("%s must be less than %s", name, ratString(k.Want))
	case *kind.MultipleOf:
		return one("%s must be a multiple of %s", name, ratString(k.Want))
	case *kind.MinItems:
		return one("%s must hold at least %s", name, plural(k.Want, "item"))
	case *kind.MaxItems:
		return one("%s must hold at most %s", name, plural(k.Want, "item"))
	case *kind.UniqueItems:
		return one("%s must not repeat items (items %d and %d are equal)", name, k.Duplicates[0], k.Duplicates[1])
	case *kind.MinProperties:
		return one("%s must have at least %s", name, plural(k.Want, "property"))
	case *kind.MaxProperties:
		return one("%s must have at most %s", name, plural(k.Want, "property"))
	case *kind.FalseSchema:
		return one("%s is not allowed", name)
	case *kind.InvalidJsonValue:
		return one("%s is not a JSON value", name)
	default:
		kw := strings.Join(e.ErrorKind.KeywordPath(), "/")
		return one("%s does not satisfy the input schema's %q rule", name, kw)
	}
}

// argLabel names a location for a message: "email" for a top-level
// argument, "customer/id" for a nested one, "the arguments" for the root.
func argLabel(loc []string) string {
	if len(loc) == 0 {
		return "the arguments"
	}
	return strconv.Quote(strings.Join(loc, "/"))
}

func article(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

func formatName(f string) string {
	switch f {
	case "email":
		return "email address"
	case "date-time":
		return "RFC 3339 date-time"
	case "uri":
		return "absolute URI"
	}
	return f
}

func listValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Operation binds validated arguments into the tool's operation. Values come
// only from args (and constants in the declaration): SQL arguments are bound
// in args order, HTTP path values are escaped one segment each.
func (s *Spec) Operation(args map[string]any) (broker.Operation, error) {
	switch {
	case s == nil:
		return broker.Operation{}, broker.Errorf(broker.CodeInternal, "the tool has no compiled operation")
	case s.sql != nil:
		op, err := s.sql.bind(args)
		if err != nil {
			return broker.Operation{}, err
		}
		return broker.Operation{SQL: op}, nil
	case s.http != nil:
		op, err := s.http.bind(args)
		if err != nil {
			return broker.Operation{}, err
		}
		return broker.Operation{HTTP: op}, nil
	}
	return broker.Operation{}, broker.Errorf(broker.CodeInternal, "the tool has no compiled operation")
}

// bind binds args to the statement's placeholders, in args order.
func (q *sqlSpec) bind(args map[string]any) (*broker.SQLOperation, error) {
	bound := make([]any, len(q.args))
	for i, name := range q.args {
		v, err := sqlValue(name, args[name])
		if err != nil {
			return nil, err
		}
		bound[i] = v
	}
	return &broker.SQLOperation{Statement: q.statement, Args: bound, MaxRows: q.maxRows}, nil
}

// sqlValue converts one argument into a driver value. A missing argument
// binds NULL.
func sqlValue(name string, v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool, int64:
		return v, nil
	case json.Number:
		return numberValue(name, v.String())
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, invalidArg(name, "must be a finite number")
		}
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v), nil
		}
		return v, nil
	case int:
		return int64(v), nil
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, invalidArg(name, "cannot be encoded as JSON")
		}
		return string(b), nil
	default:
		return nil, invalidArg(name, "has an unsupported type")
	}
}

// numberValue binds a JSON number: int64 when it is integral, float64
// otherwise. An integer literal beyond int64 is refused rather than bound
// with lost precision.
func numberValue(name, lit string) (any, error) {
	if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return i, nil
	}
	if !strings.ContainsAny(lit, ".eE") {
		return nil, invalidArg(name, "is an integer outside the 64-bit range")
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, invalidArg(name, "is a number outside the 64-bit floating-point range")
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}

func invalidArg(name, what string) *broker.Error {
	return &broker.Error{Code: broker.CodeInvalidArguments, Field: "/" + pointerToken(name), Message: fmt.Sprintf("argument %q %s", name, what)}
}

func (h *httpSpec) bind(args map[string]any) (*broker.HTTPOperation, error) {
	var path strings.Builder
	for _, part := range h.path {
		if part.param == "" {
			path.WriteString(part.literal)
			continue
		}
		v, ok := args[part.param]
		if !ok || v == nil {
			return nil, invalidArg(part.param, "is required: it fills a path parameter")
		}
		s, ok := formatScalar(v)
		if !ok {
			return nil, invalidArg(part.param, "must be a string, number or boolean: it fills a path parameter")
		}
		if s == "" || s == "." || s == ".." {
			return nil, invalidArg(part.param, `must not be empty, "." or "..": it fills a path segment, and such values would change which path is called`)
		}
		path.WriteString(url.PathEscape(s))
	}
	p := path.String()
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return nil, broker.Errorf(broker.CodeInvalidArguments, "the request path would not stay relative to the target")
	}
	op := &broker.HTTPOperation{Method: h.method, Path: p}
	if len(h.query) > 0 {
		op.Query = url.Values{}
	}
	for _, q := range h.query {
		v, ok := resolve(q.ref, args)
		if !ok || v == nil {
			continue
		}
		if arr, isArr := v.([]any); isArr {
			for _, item := range arr {
				s, ok := formatScalar(item)
				if !ok {
					return nil, invalidArg(q.ref.label(), "must hold only strings, numbers or booleans: it fills the query parameter "+strconv.Quote(q.name))
				}
				op.Query.Add(q.name, s)
			}
			continue
		}
		s, ok := formatScalar(v)
		if !ok {
			return nil, invalidArg(q.ref.label(), "must be a string, number, boolean or array of those: it fills the query parameter "+strconv.Quote(q.name))
		}
		op.Query.Add(q.name, s)
	}
	if h.body != nil {
		if v, ok := h.body.build(args); ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, broker.Errorf(broker.CodeInvalidArguments, "the request body could not be encoded as JSON")
			}
			op.Body = b
		}
	}
	return op, nil
}

// label names the argument a reference reads, for messages.
func (r argRef) label() string {
	if len(r.rest) == 0 {
		return r.name
	}
	return r.name + "/" + strings.Join(r.rest, "/")
}

// resolve reads a reference from the arguments.
func resolve(r argRef, args map[string]any) (any, bool) {
	if r.isConst {
		return r.value, true
	}
	v, ok := args[r.name]
	for _, t := range r.rest {
		if !ok {
			return nil, false
		}
		switch c := v.(type) {
		case map[string]any:
			v, ok = c[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) || (len(t) > 1 && t[0] == '0') {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, ok
}

// build fills a body template. A reference to a missing argument leaves its
// key out (or, for a whole-body reference, sends no body).
func (n *bodyNode) build(args map[string]any) (any, bool) {
	switch {
	case n == nil:
		return nil, false
	case n.ref != nil:
		return resolve(*n.ref, args)
	case n.fields != nil:
		out := make(map[string]any, len(n.fields))
		for k, child := range n.fields {
			if v, ok := child.build(args); ok {
				out[k] = v
			}
		}
		return out, true
	default:
		out := make([]any, 0, len(n.items))
		for _, child := range n.items {
			v, ok := child.build(args)
			if !ok {
				v = nil
			}
			out = append(out, v)
		}
		return out, true
	}
}

// formatScalar writes a scalar as query or path text; numbers are written
// plainly (no exponent).
func formatScalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		lit := v.String()
		if !strings.ContainsAny(lit, "eE") {
			return lit, true
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return lit, true
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}
