package tools

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// intShape marks where an input schema types a value as an integer,
// following properties and items ($ref and the combinators are not
// followed). There a value must fit int64: policy conditions hold
// integer arguments as CEL ints and SQL binds them as int64, so a larger
// one is an argument error, not a policy failure or a target error.
type intShape struct {
	integer bool
	props   map[string]*intShape
	items   *intShape
}

// intShapeOf reads the integer-typed places of a schema document; nil
// when there are none.
func intShapeOf(schema any, depth int) *intShape {
	m, ok := schema.(map[string]any)
	if !ok || depth > maxNestingDepth {
		return nil
	}
	sh := &intShape{integer: integerTyped(m["type"]), items: intShapeOf(m["items"], depth+1)}
	props, _ := m["properties"].(map[string]any)
	for name, p := range props {
		if c := intShapeOf(p, depth+1); c != nil {
			if sh.props == nil {
				sh.props = map[string]*intShape{}
			}
			sh.props[name] = c
		}
	}
	if !sh.integer && sh.props == nil && sh.items == nil {
		return nil
	}
	return sh
}

// integerTyped reports whether a schema's "type" admits integers but not
// other numbers.
func integerTyped(t any) bool {
	switch v := t.(type) {
	case string:
		return v == "integer"
	case []any:
		return slices.Contains(v, any("integer")) && !slices.Contains(v, any("number"))
	}
	return false
}

func (sh *intShape) prop(name string) *intShape {
	if sh == nil {
		return nil
	}
	return sh.props[name]
}

func (sh *intShape) item() *intShape {
	if sh == nil {
		return nil
	}
	return sh.items
}

// valueProblems finds, in arguments the input schema accepted, the values
// the tool's target or policy could not hold: a number that is not finite
// as a float64, an integer-typed value outside int64, and, when nulKind
// names the target's kind, a string or key with a NUL byte.
func (s *Spec) valueProblems(args map[string]any) []argProblem {
	w := valueWalk{nulKind: s.nulKind}
	for name, v := range args {
		w.walk([]string{name}, v, s.ints.prop(name))
	}
	sort.SliceStable(w.out, func(i, j int) bool { return w.out[i].field < w.out[j].field })
	return w.out
}

// valueWalk collects valueProblems.
type valueWalk struct {
	nulKind string
	out     []argProblem
}

func (w *valueWalk) add(loc []string, format string, args ...any) {
	w.out = append(w.out, argProblem{field: jsonPointer(loc), message: argLabel(loc) + " " + fmt.Sprintf(format, args...)})
}

func (w *valueWalk) walk(loc []string, v any, sh *intShape) {
	switch v := v.(type) {
	case json.Number:
		w.number(loc, v, sh != nil && sh.integer)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			w.add(loc, "must be a finite number")
		}
	case string:
		if w.nulKind != "" && strings.IndexByte(v, 0) >= 0 {
			w.add(loc, "contains a NUL byte (\\u0000), which toolgate refuses for %s target", config.KindPhrase(w.nulKind))
		}
	case map[string]any:
		for k, e := range v {
			at := append(slices.Clip(loc), k)
			if w.nulKind != "" && strings.IndexByte(k, 0) >= 0 {
				w.add(loc, "has a key with a NUL byte (\\u0000), which toolgate refuses for %s target", config.KindPhrase(w.nulKind))
			}
			w.walk(at, e, sh.prop(k))
		}
	case []any:
		for i, e := range v {
			w.walk(append(slices.Clip(loc), strconv.Itoa(i)), e, sh.item())
		}
	}
}

// number checks one JSON number: finite as a float64, and within int64
// where the schema types it as an integer.
func (w *valueWalk) number(loc []string, n json.Number, integer bool) {
	if integer {
		if _, ok := broker.IntegerValue(n); !ok {
			w.add(loc, "must be an integer from %d to %d", math.MinInt64, math.MaxInt64)
		}
		return
	}
	if f, err := strconv.ParseFloat(string(n), 64); err != nil && math.IsInf(f, 0) {
		w.add(loc, "is a number outside the 64-bit floating-point range")
	}
}
