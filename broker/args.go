package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"strconv"
)

// decodeArgs decodes a JSON object of arguments, numbers as json.Number.
func decodeArgs(raw json.RawMessage, maxBytes, maxDepth int) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	if len(raw) > maxBytes {
		return nil, Errorf(CodePayloadTooLarge, "arguments are %d bytes; the limit is %d", len(raw), maxBytes)
	}
	if raw[0] != '{' {
		return nil, Errorf(CodeInvalidArguments, "arguments must be a JSON object")
	}
	if d := jsonDepth(raw); d > maxDepth {
		return nil, Errorf(CodeInvalidArguments, "arguments nest deeper than %d levels", maxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args map[string]any
	if err := dec.Decode(&args); err != nil {
		return nil, Errorf(CodeInvalidArguments, "arguments are not valid JSON: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalidArguments, "arguments have trailing data after the JSON object")
	}
	return args, nil
}

// IntegerValue returns the value of a JSON number that is an integer
// within int64: a plain literal ("42"), or one whose value is integral
// ("42.0", "1e3"). A fraction, a value outside int64 or a malformed
// literal is false. The exact check (math/big) runs only for literals
// that are not plain integers and whose float64 value is in range, and
// math/big refuses exponents past a million, so a hostile literal costs
// little.
func IntegerValue(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f >= 1<<63 || f < -(1<<63) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// jsonDepth returns the maximum nesting of brackets outside strings.
func jsonDepth(raw []byte) int {
	depth, max, inStr, esc := 0, 0, false, false
	for _, ch := range raw {
		switch {
		case esc:
			esc = false
		case inStr && ch == '\\':
			esc = true
		case ch == '"':
			inStr = !inStr
		case inStr:
		case ch == '{' || ch == '[':
			depth++
			if depth > max {
				max = depth
			}
		case ch == '}' || ch == ']':
			depth--
		}
	}
	return max
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s cannot hold %s", te.Field, te.Value)
	}
	return "malformed JSON"
}

// sameJSON reports whether two decoded JSON values are equal, comparing
// numbers by value.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b)
	}
	var na, nb any
	_ = json.Unmarshal(ja, &na)
	_ = json.Unmarshal(jb, &nb)
	return reflect.DeepEqual(na, nb)
}

// withoutArgs returns a copy of t whose input schema lacks the named
// properties (and their required entries).
func withoutArgs(t *Tool, names map[string]any) *Tool {
	var schema map[string]any
	if err := json.Unmarshal(t.InputSchema, &schema); err != nil {
		return t
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for n := range names {
			delete(props, n)
		}
	}
	if req, ok := schema["required"].([]any); ok {
		kept := req[:0]
		for _, r := range req {
			if _, bound := names[fmt.Sprint(r)]; !bound {
				kept = append(kept, r)
			}
		}
		schema["required"] = kept
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return t
	}
	cp := *t
	cp.InputSchema = raw
	return &cp
}
