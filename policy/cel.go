package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/toolgate/toolgate/broker"
)

// DefaultCostLimit is the CEL cost limit of one condition evaluation when
// Config.CostLimit is zero.
const DefaultCostLimit = 100_000

// kind is the CEL type of a JSON Schema property.
type kind int

const (
	kindDyn kind = iota
	kindInt
	kindDouble
	kindString
	kindBool
	kindList
	kindMap
)

func (k kind) celType() *cel.Type {
	switch k {
	case kindInt:
		return cel.IntType
	case kindDouble:
		return cel.DoubleType
	case kindString:
		return cel.StringType
	case kindBool:
		return cel.BoolType
	case kindList:
		return cel.ListType(cel.DynType)
	case kindMap:
		return cel.MapType(cel.StringType, cel.DynType)
	default:
		return cel.DynType
	}
}

// props are the top-level properties of an object schema and their kinds.
type props map[string]kind

var celIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// celReserved are words CEL reserves; a property with such a name can only
// be reached as args["name"].
var celReserved = map[string]bool{
	"in": true, "as": true, "break": true, "const": true, "continue": true, "else": true,
	"for": true, "function": true, "if": true, "import": true, "let": true, "loop": true,
	"package": true, "namespace": true, "return": true, "var": true, "void": true,
	"while": true, "true": true, "false": true, "null": true,
}

// schemaProps reads the properties of an object schema. A schema without
// properties yields an empty set.
func schemaProps(schema map[string]any) props {
	out := props{}
	ps, _ := schema["properties"].(map[string]any)
	for name, p := range ps {
		ps, _ := p.(map[string]any)
		out[name] = schemaKind(ps["type"])
	}
	return out
}

func schemaKind(t any) kind {
	switch v := t.(type) {
	case string:
		switch v {
		case "integer":
			return kindInt
		case "number":
			return kindDouble
		case "string":
			return kindString
		case "boolean":
			return kindBool
		case "array":
			return kindList
		case "object":
			return kindMap
		}
	case []any:
		// ["integer", "null"]: the one non-null type, if there is exactly one.
		var only any
		for _, x := range v {
			if x == "null" {
				continue
			}
			if only != nil {
				return kindDyn
			}
			only = x
		}
		if only != nil {
			return schemaKind(only)
		}
	}
	return kindDyn
}

func toolProps(t *broker.Tool) (props, error) {
	if len(t.InputSchema) == 0 {
		return props{}, nil
	}
	var schema map[string]any
	if err := json.Unmarshal(t.InputSchema, &schema); err != nil {
		return nil, fmt.Errorf("input schema of tool %s is not a JSON object: %w", t.Name, err)
	}
	return schemaProps(schema), nil
}

// baseEnv is the CEL environment of one graph: every variable but the typed
// arguments of a tool.
func baseEnv(scope props) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("caller.principal", cel.StringType),
		cel.Variable("caller.groups", cel.ListType(cel.StringType)),
		cel.Variable("caller.auth_method", cel.StringType),
		cel.Variable("caller.email", cel.StringType),
		cel.Variable("graph", cel.StringType),
		cel.Variable("node", cel.StringType),
		cel.Variable("run", cel.StringType),
		cel.Variable("thread", cel.StringType),
		cel.Variable("scope", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("tool.name", cel.StringType),
		cel.Variable("tool.target", cel.StringType),
		cel.Variable("tool.annotations", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
	}
	opts = append(opts, propVars("scope", scope)...)
	return cel.NewEnv(opts...)
}

// propVars declares "<prefix>.<name>" with its type for every property
// whose name CEL can select, so args.amount > 100 type-checks against the
// schema.
func propVars(prefix string, ps props) []cel.EnvOption {
	names := make([]string, 0, len(ps))
	for n := range ps {
		if celIdent.MatchString(n) && !celReserved[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	opts := make([]cel.EnvOption, 0, len(names))
	for _, n := range names {
		opts = append(opts, cel.Variable(prefix+"."+n, ps[n].celType()))
	}
	return opts
}

// unknownRefs returns the fields of variable root ("args", "scope") that a
// checked expression reaches by select or by constant index and that are
// not in declared.
func unknownRefs(a *cel.Ast, root string, declared props) []string {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if _, ok := declared[f]; !ok && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.SelectKind:
			s := e.AsSelect()
			if s.Operand().Kind() == ast.IdentKind && s.Operand().AsIdent() == root {
				add(s.FieldName())
			}
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != "_[_]" || len(c.Args()) != 2 {
				return
			}
			op, idx := c.Args()[0], c.Args()[1]
			if op.Kind() == ast.IdentKind && op.AsIdent() == root && idx.Kind() == ast.LiteralKind {
				if s, ok := idx.AsLiteral().(types.String); ok {
					add(string(s))
				}
			}
		}
	}))
	sort.Strings(out)
	return out
}

// activation resolves CEL variables straight from the request, converting
// only the values a condition reads; it builds no maps per call.
type activation struct {
	req   broker.Request
	args  props
	scope props
	ann   map[string]any
}

var _ interpreter.Activation = (*activation)(nil)

// Parent returns nil: an activation has no parent.
func (a *activation) Parent() interpreter.Activation { return nil }

// ResolveName returns the value of a declared variable.
func (a *activation) ResolveName(name string) (any, bool) {
	c := &a.req.Caller
	switch name {
	case "graph":
		return types.String(c.Graph), true
	case "node":
		return types.String(c.Node), true
	case "run":
		return types.String(c.Run), true
	case "thread":
		return types.String(c.Thread), true
	case "now":
		return types.Timestamp{Time: a.req.Now}, true
	case "caller.principal":
		return types.String(c.Principal.Subject), true
	case "caller.email":
		return types.String(c.Principal.Email), true
	case "caller.auth_method":
		return types.String(c.Principal.Method), true
	case "caller.groups":
		g := c.Principal.Groups
		if g == nil {
			g = []string{}
		}
		return g, true
	case "tool.name":
		return types.String(a.req.Tool.Name), true
	case "tool.target":
		return types.String(a.req.Tool.Target), true
	case "tool.annotations":
		return a.ann, true
	case "args":
		return plainMap(a.req.Args), true
	case "scope":
		return plainMap(c.Scope()), true
	}
	if f, ok := strings.CutPrefix(name, "args."); ok {
		return field(a.req.Args, f, a.args[f], "argument")
	}
	if f, ok := strings.CutPrefix(name, "scope."); ok {
		return field(c.Scope(), f, a.scope[f], "scope field")
	}
	return nil, false
}

// field returns m[f] converted to k. A missing field is reported as not
// found, which CEL turns into an evaluation error (has() guards it); a
// value that does not fit k is an error value.
func field(m map[string]any, f string, k kind, what string) (any, bool) {
	v, ok := m[f]
	if !ok {
		return nil, false
	}
	out, err := convert(v, k)
	if err != nil {
		return types.NewErr("%s %s: %v", what, f, err), true
	}
	return out, true
}

// convert turns a decoded JSON value (numbers as json.Number, or as Go
// numbers when they came from elsewhere) into a CEL value of kind k.
func convert(v any, k kind) (ref.Val, error) {
	switch k {
	case kindInt:
		switch n := v.(type) {
		case json.Number:
			// JSON Schema counts 42.0 and 1e3 as integers. The tool's
			// argument check refused those outside int64 before policy.
			if i, ok := broker.IntegerValue(n); ok {
				return types.Int(i), nil
			}
			return nil, fmt.Errorf("is not an integer within the 64-bit range")
		case int:
			return types.Int(n), nil
		case int64:
			return types.Int(n), nil
		case float64:
			if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
				return nil, fmt.Errorf("is not an integer")
			}
			return types.Int(int64(n)), nil
		}
		return nil, fmt.Errorf("is a %T, not an integer", v)
	case kindDouble:
		switch n := v.(type) {
		case json.Number:
			f, err := n.Float64()
			if err != nil {
				return nil, fmt.Errorf("is not a number")
			}
			return types.Double(f), nil
		case int:
			return types.Double(n), nil
		case int64:
			return types.Double(n), nil
		case float64:
			return types.Double(n), nil
		}
		return nil, fmt.Errorf("is a %T, not a number", v)
	case kindString:
		if s, ok := v.(string); ok {
			return types.String(s), nil
		}
		return nil, fmt.Errorf("is a %T, not a string", v)
	case kindBool:
		if b, ok := v.(bool); ok {
			return types.Bool(b), nil
		}
		return nil, fmt.Errorf("is a %T, not a boolean", v)
	}
	return types.DefaultTypeAdapter.NativeToValue(plain(v)), nil
}

// plain converts json.Number values anywhere in v into int64 (when
// integral) or float64, so CEL can compare them.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return plainMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

func plainMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plain(v)
	}
	return out
}

// annotations is the tool.annotations map of a tool.
func annotations(t *broker.Tool) map[string]any {
	out := map[string]any{}
	if t.Annotations.Title != "" {
		out["title"] = t.Annotations.Title
	}
	for name, p := range map[string]*bool{
		"readOnlyHint":    t.Annotations.ReadOnlyHint,
		"destructiveHint": t.Annotations.DestructiveHint,
		"idempotentHint":  t.Annotations.IdempotentHint,
		"openWorldHint":   t.Annotations.OpenWorldHint,
	} {
		if p != nil {
			out[name] = *p
		}
	}
	return out
}

// hasComprehension reports whether a parsed condition contains a
// comprehension (all, exists, map, filter, ...).
func hasComprehension(a *cel.Ast) bool {
	found := false
	ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() == ast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

// MaxInputBytes bounds the size of any string, list or map a condition can
// read: the broker refuses arguments larger than 1 MiB by default, and
// scopes and caller fields are far smaller.
const MaxInputBytes = 1 << 20

// inputBound is a CEL cost estimator that assumes every variable is at most
// MaxInputBytes large.
type inputBound struct{}

// EstimateSize bounds every variable (and anything reached from one).
func (inputBound) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if n.Path() != nil {
		return &cost.SizeEstimate{Min: 0, Max: MaxInputBytes}
	}
	return nil
}

// EstimateCallCost leaves calls to CEL's standard estimates.
func (inputBound) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// provablyCheap reports whether the worst-case cost of a condition, with
// every input at its largest, stays within limit. Such a condition cannot
// exceed the limit, so it runs without CEL's per-evaluation cost tracker
// (which allocates on every call); any other condition gets the tracker and
// is cut off at the limit.
func provablyCheap(env *cel.Env, a *cel.Ast, limit uint64) bool {
	if hasComprehension(a) {
		return false
	}
	est, err := env.EstimateCost(a, inputBound{})
	return err == nil && est.Max <= limit
}
