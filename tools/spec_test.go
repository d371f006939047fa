package tools

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// mustParse parses one declaration or fails the test.
func mustParse(t *testing.T, decl string) *broker.Tool {
	t.Helper()
	tool, problems := Parse("test.json", []byte(decl), testTargets)
	if len(problems) > 0 {
		t.Fatalf("Parse: %v", problems)
	}
	return tool
}

// decodeArgs decodes arguments the way the broker does (UseNumber).
func decodeArgs(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

const validateDecl = `{
  "name": "crm_create_payment",
  "target": "crm",
  "input_schema": {"type": "object",
    "properties": {
      "email": {"type": "string", "format": "email"},
      "amount": {"type": "number", "minimum": 0},
      "count": {"type": "integer"},
      "status": {"enum": ["open", "closed"]},
      "customer": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": false}
    },
    "required": ["email", "amount"],
    "additionalProperties": false},
  "sql": {"statement": "SELECT $1, $2, $3", "args": ["email", "amount", "count"]}
}`

func TestValidateArgs(t *testing.T) {
	tool := mustParse(t, validateDecl)
	tests := []struct {
		name    string
		args    string // JSON; "" means a nil map
		field   string // "" means valid
		message string
	}{
		{name: "valid", args: `{"email": "ana@example.com", "amount": 12.5, "count": 3}`},
		{name: "integer written as float is an integer", args: `{"email": "ana@example.com", "amount": 1, "count": 3.0}`},
		{name: "integer in exponent form", args: `{"email": "ana@example.com", "amount": 1, "count": 1e3, "customer": {"id": 9.223372036854775e18}}`},
		{name: "big integer literal for a SQL parameter", args: `{"email": "ana@example.com", "amount": 123456789012345678901234567890}`, field: "/amount", message: `argument "amount" is an integer outside the 64-bit range`},
		{name: "integer beyond int64", args: `{"email": "ana@example.com", "amount": 1, "count": 9223372036854775808}`, field: "/count", message: `"count" must be an integer from -9223372036854775808 to 9223372036854775807`},
		{name: "integer beyond int64 in exponent form", args: `{"email": "ana@example.com", "amount": 1, "count": 1e19}`, field: "/count", message: `"count" must be an integer from`},
		{name: "nested integer beyond int64", args: `{"email": "ana@example.com", "amount": 1, "customer": {"id": -9223372036854775809}}`, field: "/customer/id", message: `"customer/id" must be an integer from`},
		{name: "number beyond float64", args: `{"email": "ana@example.com", "amount": 1e400}`, field: "/amount", message: `"amount" is a number outside the 64-bit floating-point range`},
		{name: "missing required", args: `{"amount": 1}`, field: "/email", message: `missing required "email"`},
		{name: "nil arguments", args: "", field: "/amount", message: `2 problems with the arguments: missing required "amount"; missing required "email"`},
		{name: "wrong type", args: `{"email": "ana@example.com", "amount": "12"}`, field: "/amount", message: `"amount" must be a number, got string`},
		{name: "float for integer", args: `{"email": "ana@example.com", "amount": 1, "count": 3.5}`, field: "/count", message: `"count" must be an integer, got number`},
		{name: "extra property", args: `{"email": "ana@example.com", "amount": 1, "x": true}`, field: "/x", message: `unexpected argument "x": the tool does not declare it`},
		{name: "bad email format", args: `{"email": "not-an-address", "amount": 1}`, field: "/email", message: `"email" must be a valid email address`},
		{name: "minimum", args: `{"email": "ana@example.com", "amount": -1}`, field: "/amount", message: `"amount" must be at least 0`},
		{name: "enum", args: `{"email": "ana@example.com", "amount": 1, "status": "gone"}`, field: "/status", message: `"status" must be one of "open", "closed"`},
		{name: "nested", args: `{"email": "ana@example.com", "amount": 1, "customer": {"id": "7"}}`, field: "/customer/id", message: `"customer/id" must be an integer, got string`},
		{name: "nested missing", args: `{"email": "ana@example.com", "amount": 1, "customer": {}}`, field: "/customer/id", message: `missing required "customer/id"`},
		{name: "nested extra", args: `{"email": "ana@example.com", "amount": 1, "customer": {"id": 1, "pw": "x"}}`, field: "/customer/pw", message: `unexpected property "pw" in "customer"`},
		{name: "several", args: `{"email": 5, "amount": "x", "y": 1}`, field: "/amount", message: `3 problems with the arguments: "amount" must be a number, got string; "email" must be a string, got number; unexpected argument "y": the tool does not declare it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args map[string]any
			if tt.args != "" {
				args = decodeArgs(t, tt.args)
			}
			err := tool.Spec.ValidateArgs(args)
			if tt.field == "" && tt.message == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var be *broker.Error
			if !errors.As(err, &be) {
				t.Fatalf("want *broker.Error, got %T %v", err, err)
			}
			if !errors.Is(err, broker.ErrInvalidArguments) {
				t.Errorf("code = %s, want invalid_arguments", be.Code)
			}
			if tt.field != "" && be.Field != tt.field {
				t.Errorf("field = %q, want %q", be.Field, tt.field)
			}
			if !strings.Contains(be.Message, tt.message) {
				t.Errorf("message = %q, want it to contain %q", be.Message, tt.message)
			}
			for _, secret := range []string{"not-an-address", "gone"} {
				if strings.Contains(be.Message, secret) && !strings.Contains(tt.message, secret) {
					t.Errorf("message echoes the argument value %q: %s", secret, be.Message)
				}
			}
			if strings.Contains(be.Message, "toolgate:") || strings.Contains(be.Message, "jsonschema") {
				t.Errorf("message leaks schema internals: %s", be.Message)
			}
		})
	}
}

// TestValidateArgsListsEveryProblem: each problem is listed with its
// field, up to MaxArgProblems, and the rest are counted.
func TestValidateArgsListsEveryProblem(t *testing.T) {
	props, args := map[string]any{}, map[string]any{}
	for i := range MaxArgProblems + 2 {
		name := fmt.Sprintf("a%02d", i)
		props[name] = map[string]any{"type": "integer"}
		args[name] = "not a number"
	}
	decl, _ := json.Marshal(map[string]any{"name": "crm_many", "target": "crm",
		"input_schema": map[string]any{"type": "object", "properties": props},
		"sql":          map[string]any{"statement": "SELECT 1"}})
	tool, probs := Parse("many.json", decl, map[string]string{"crm": config.KindPostgres})
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	var be *broker.Error
	if !errors.As(tool.Spec.ValidateArgs(args), &be) {
		t.Fatal("want a *broker.Error")
	}
	if len(be.Problems) != MaxArgProblems || be.Field != "/a00" {
		t.Fatalf("problems = %d, field %q", len(be.Problems), be.Field)
	}
	for i, p := range be.Problems {
		want := fmt.Sprintf("/a%02d", i)
		if p.Field != want || !strings.Contains(p.Message, want[1:]) || !strings.Contains(be.Message, p.Message) {
			t.Errorf("problem %d = %+v; message %q", i, p, be.Message)
		}
	}
	if !strings.HasPrefix(be.Message, "12 problems with the arguments: ") || !strings.HasSuffix(be.Message, "; and 2 more") {
		t.Errorf("message = %q", be.Message)
	}
	if strings.Contains(be.Message, "not a number") {
		t.Errorf("message echoes a value: %q", be.Message)
	}
}

func TestValidateArgsGoNumbers(t *testing.T) {
	tool := mustParse(t, validateDecl)
	// Arguments built in Go rather than decoded still validate.
	if err := tool.Spec.ValidateArgs(map[string]any{"email": "a@b.co", "amount": 1.5, "count": int64(2)}); err != nil {
		t.Fatalf("Go values: %v", err)
	}
}

const sqlDecl = `{
  "name": "crm_find",
  "target": "crm",
  "input_schema": {"type": "object", "properties": {
    "email": {"type": "string"}, "limit": {"type": "integer"}, "ratio": {"type": "number"},
    "active": {"type": "boolean"}, "filter": {"type": "object"}, "tags": {"type": "array"}, "note": {"type": ["string", "null"]}}},
  "sql": {"statement": "SELECT * FROM customers WHERE email = $1 AND n < $2 AND r > $3 AND a = $4 AND f @> $5 AND t = $6 AND note = $7 LIMIT $2",
          "args": ["email", "limit", "ratio", "active", "filter", "tags", "note"], "max_rows": 25}
}`

func TestOperationSQL(t *testing.T) {
	tool := mustParse(t, sqlDecl)
	stmt := "SELECT * FROM customers WHERE email = $1 AND n < $2 AND r > $3 AND a = $4 AND f @> $5 AND t = $6 AND note = $7 LIMIT $2"
	tests := []struct {
		name string
		args string
		want []any
	}{
		{
			name: "every type",
			args: `{"email": "ana@example.com", "limit": 10, "ratio": 0.25, "active": true, "filter": {"b": 1, "a": [1, 2]}, "tags": ["x", "y"], "note": null}`,
			want: []any{"ana@example.com", int64(10), 0.25, true, `{"a":[1,2],"b":1}`, `["x","y"]`, nil},
		},
		{
			name: "integral floats bind as int64",
			args: `{"email": "e", "limit": 1e3, "ratio": 2.0}`,
			want: []any{"e", int64(1000), int64(2), nil, nil, nil, nil},
		},
		{
			name: "missing optional arguments bind NULL",
			args: `{}`,
			want: []any{nil, nil, nil, nil, nil, nil, nil},
		},
		{
			name: "an injection attempt stays one bound value",
			args: `{"email": "x' OR '1'='1'; DROP TABLE customers; --"}`,
			want: []any{"x' OR '1'='1'; DROP TABLE customers; --", nil, nil, nil, nil, nil, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := tool.Spec.Operation(decodeArgs(t, tt.args))
			if err != nil {
				t.Fatal(err)
			}
			if op.HTTP != nil || op.SQL == nil {
				t.Fatalf("want an SQL operation, got %+v", op)
			}
			if op.SQL.Statement != stmt {
				t.Errorf("statement changed:\n%s", op.SQL.Statement)
			}
			if op.SQL.MaxRows != 25 {
				t.Errorf("MaxRows = %d", op.SQL.MaxRows)
			}
			if !reflect.DeepEqual(op.SQL.Args, tt.want) {
				t.Errorf("args = %#v\nwant %#v", op.SQL.Args, tt.want)
			}
		})
	}
}

func TestOperationSQLRefusesOutOfRangeInteger(t *testing.T) {
	tool := mustParse(t, sqlDecl)
	op, err := tool.Spec.Operation(decodeArgs(t, `{"limit": 99999999999999999999999}`))
	if !errors.Is(err, broker.ErrInvalidArguments) {
		t.Fatalf("want invalid_arguments, got %v", err)
	}
	if be := err.(*broker.Error); be.Field != "/limit" || strings.Contains(be.Message, "9999") {
		t.Errorf("field %q message %q", be.Field, be.Message)
	}
	if !reflect.DeepEqual(op, broker.Operation{}) {
		t.Errorf("a refused call produced an operation: %+v", op)
	}
}

const httpDecl = `{
  "name": "billing_refund",
  "target": "billing",
  "input_schema": {"type": "object",
    "properties": {"order_id": {}, "amount": {"type": "number"}, "reason": {"type": "string"},
                   "tags": {"type": "array"}, "customer": {"type": "object"}, "page": {"type": "number"}},
    "required": ["order_id"]},
  "http": {"method": "POST", "path": "/v1/orders/{order_id}/refunds",
           "query": {"notify": {"const": true}, "tag": "tags", "page": "page", "cid": "/customer/id"},
           "body": {"amount": "amount", "reason": "reason", "customer_id": "/customer/id", "first_tag": "/tags/0",
                    "currency": {"const": "EUR"}, "meta": {"source": {"const": "toolgate"}}}}
}`

func TestOperationHTTPPathEscaping(t *testing.T) {
	tool := mustParse(t, httpDecl)
	tests := []struct {
		value any
		want  string
	}{
		{"ord_42", "/v1/orders/ord_42/refunds"},
		{"a/b", "/v1/orders/a%2Fb/refunds"},
		{"../x", "/v1/orders/..%2Fx/refunds"},
		{"../../admin", "/v1/orders/..%2F..%2Fadmin/refunds"},
		{"%2e%2e", "/v1/orders/%252e%252e/refunds"},
		{"a b", "/v1/orders/a%20b/refunds"},
		{"ünï/ç", "/v1/orders/%C3%BCn%C3%AF%2F%C3%A7/refunds"},
		{"?x=1#y", "/v1/orders/%3Fx=1%23y/refunds"},
		{"...", "/v1/orders/.../refunds"},
		{json.Number("42"), "/v1/orders/42/refunds"},
		{json.Number("1e3"), "/v1/orders/1000/refunds"},
		{true, "/v1/orders/true/refunds"},
	}
	for _, tt := range tests {
		op, err := tool.Spec.Operation(map[string]any{"order_id": tt.value})
		if err != nil {
			t.Errorf("%q: %v", tt.value, err)
			continue
		}
		if op.HTTP.Path != tt.want {
			t.Errorf("%q: path %q, want %q", tt.value, op.HTTP.Path, tt.want)
		}
		if u, err := url.Parse("https://billing.internal" + op.HTTP.Path); err != nil || u.Host != "billing.internal" {
			t.Errorf("%q: path %q changes the host (%v)", tt.value, op.HTTP.Path, err)
		}
	}
}

func TestOperationHTTPRefusesPathValues(t *testing.T) {
	tool := mustParse(t, httpDecl)
	for _, v := range []any{"", ".", "..", nil, map[string]any{"a": "b"}, []any{"x"}} {
		args := map[string]any{"order_id": v}
		op, err := tool.Spec.Operation(args)
		if !errors.Is(err, broker.ErrInvalidArguments) {
			t.Errorf("%#v: want invalid_arguments, got %v", v, err)
			continue
		}
		if be := err.(*broker.Error); be.Field != "/order_id" {
			t.Errorf("%#v: field %q", v, be.Field)
		}
		if !reflect.DeepEqual(op, broker.Operation{}) {
			t.Errorf("%#v: a refused call produced an operation: %+v", v, op)
		}
	}
	op, err := tool.Spec.Operation(map[string]any{})
	if !errors.Is(err, broker.ErrInvalidArguments) || op.HTTP != nil {
		t.Errorf("missing path parameter: %v %+v", err, op)
	}
}

func TestOperationHTTPQueryAndBody(t *testing.T) {
	tool := mustParse(t, httpDecl)
	op, err := tool.Spec.Operation(decodeArgs(t, `{"order_id": "o1", "amount": 12.50, "tags": ["a b", 2, true], "page": 1e2,
		"customer": {"id": 7}, "reason": "x\"}; DROP"}`))
	if err != nil {
		t.Fatal(err)
	}
	h := op.HTTP
	if h.Method != "POST" || h.Path != "/v1/orders/o1/refunds" {
		t.Errorf("method %s path %s", h.Method, h.Path)
	}
	wantQuery := url.Values{"notify": {"true"}, "tag": {"a b", "2", "true"}, "page": {"100"}, "cid": {"7"}}
	if !reflect.DeepEqual(h.Query, wantQuery) {
		t.Errorf("query = %v, want %v", h.Query, wantQuery)
	}
	want := `{"amount":12.50,"currency":"EUR","customer_id":7,"first_tag":"a b","meta":{"source":"toolgate"},"reason":"x\"}; DROP"}`
	if string(h.Body) != want {
		t.Errorf("body = %s\nwant  %s", h.Body, want)
	}

	// Missing optional arguments leave their query parameters and body keys out.
	op, err = tool.Spec.Operation(map[string]any{"order_id": "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(op.HTTP.Query, url.Values{"notify": {"true"}}) {
		t.Errorf("query = %v", op.HTTP.Query)
	}
	if string(op.HTTP.Body) != `{"currency":"EUR","meta":{"source":"toolgate"}}` {
		t.Errorf("body = %s", op.HTTP.Body)
	}
}

func TestOperationHTTPRefusesObjectInQuery(t *testing.T) {
	tool := mustParse(t, httpDecl)
	for _, args := range []string{
		`{"order_id": "o", "page": {"a": 1}}`,
		`{"order_id": "o", "tags": [{"a": 1}]}`,
	} {
		op, err := tool.Spec.Operation(decodeArgs(t, args))
		if !errors.Is(err, broker.ErrInvalidArguments) || !reflect.DeepEqual(op, broker.Operation{}) {
			t.Errorf("%s: want invalid_arguments and no operation, got %v %+v", args, err, op)
		}
	}
}

func TestOperationHTTPWholeBody(t *testing.T) {
	tool := mustParse(t, `{"name": "billing_put", "target": "billing",
		"input_schema": {"type": "object", "properties": {"id": {"type": "integer"}, "note": {}}, "required": ["id"]},
		"http": {"method": "PUT", "path": "/notes/{id}", "body": "note"}}`)
	op, err := tool.Spec.Operation(decodeArgs(t, `{"id": 3, "note": {"text": "hi", "n": 1.0}}`))
	if err != nil {
		t.Fatal(err)
	}
	if op.HTTP.Path != "/notes/3" || string(op.HTTP.Body) != `{"n":1.0,"text":"hi"}` || op.HTTP.Query != nil {
		t.Errorf("got %s %s %v", op.HTTP.Path, op.HTTP.Body, op.HTTP.Query)
	}
	op, err = tool.Spec.Operation(decodeArgs(t, `{"id": 3}`))
	if err != nil || op.HTTP.Body != nil {
		t.Errorf("missing body argument: want no body, got %s (%v)", op.HTTP.Body, err)
	}
}

func TestCatalog(t *testing.T) {
	a := mustParse(t, `{"name": "b_tool", "target": "crm", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT 1"}}`)
	b := mustParse(t, `{"name": "a_tool", "target": "crm", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT 2"}}`)
	cat, err := NewCatalog(a, b)
	if err != nil {
		t.Fatal(err)
	}
	tools := cat.Tools()
	if len(tools) != 2 || tools[0].Name != "a_tool" || tools[1].Name != "b_tool" {
		t.Fatalf("Tools not sorted: %v", tools)
	}
	tools[0] = nil // the caller's copy, not the catalog's
	if got := cat.Tools(); got[0] == nil {
		t.Error("Tools returned the catalog's own slice")
	}
	if got, ok := cat.Lookup("b_tool"); !ok || got != a {
		t.Error("Lookup(b_tool) failed")
	}
	if _, ok := cat.Lookup("nope"); ok {
		t.Error("Lookup(nope) succeeded")
	}

	_, err = NewCatalog(a, b, a, nil, &broker.Tool{Name: "no_spec"})
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	if !strings.Contains(le.Problems[0].Reason, `"b_tool" is already declared`) {
		t.Errorf("duplicate reason: %s", le.Problems[0])
	}
}

func jsonNumber(s string) json.Number { return json.Number(s) }

func TestValidateArgsRefAndDateTime(t *testing.T) {
	data, err := os.ReadFile("testdata/load/good_schema/refs.json")
	if err != nil {
		t.Fatal(err)
	}
	tool := mustParse(t, string(data))
	if err := tool.Spec.ValidateArgs(decodeArgs(t, `{"id": 3, "when": "2026-01-02T03:04:05Z"}`)); err != nil {
		t.Fatalf("valid arguments refused: %v", err)
	}
	for args, want := range map[string]string{
		`{"id": 0}`:                     `"id" must be at least 1`,
		`{"id": 1, "when": "tomorrow"}`: `"when" must be a valid RFC 3339 date-time`,
	} {
		err := tool.Spec.ValidateArgs(decodeArgs(t, args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", args, err, want)
		}
	}
}

// TestCheckOutput: a result is checked against the output schema as the
// connector returned it; a tool without one accepts any result.
func TestCheckOutput(t *testing.T) {
	tool := mustParse(t, `{
  "name": "crm_find_customer", "target": "crm",
  "input_schema": {"type": "object"},
  "output_schema": {"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}, "row_count": {"type": "integer"}}, "required": ["rows"]},
  "sql": {"statement": "SELECT 1"}
}`)
	sp := tool.Spec.(*Spec)
	for _, c := range []struct {
		doc string
		ok  bool
	}{
		{`{"rows":[{"id":1}],"row_count":1,"truncated":false}`, true},
		{`{"rows":[{"id":12345678901234567890}],"row_count":1}`, true},
		{`{"rows":[{"id":"h_3f9a"}],"row_count":1}`, false},
		{`{"status":200,"body":{}}`, false},
		{`not json`, false},
	} {
		if err := sp.CheckOutput(json.RawMessage(c.doc)); (err == nil) != c.ok {
			t.Errorf("CheckOutput(%s) = %v, want ok %v", c.doc, err, c.ok)
		}
	}
	bare := mustParse(t, `{"name": "t", "target": "crm", "input_schema": {"type": "object"}, "sql": {"statement": "SELECT 1"}}`)
	if err := bare.Spec.(*Spec).CheckOutput(json.RawMessage(`[1]`)); err != nil {
		t.Errorf("a tool without output_schema refused a result: %v", err)
	}
}

// TestNULRefusedWhereTheTargetCannotStoreIt: a NUL byte anywhere in the
// arguments (a value, a nested value, a key) of a tool on a postgres or
// sqlite target is invalid_arguments naming the field, before anything
// binds; an HTTP target carries it as JSON.
func TestNULRefusedWhereTheTargetCannotStoreIt(t *testing.T) {
	decl := func(target, op string) string {
		return `{"name": "t_note", "target": "` + target + `",
  "input_schema": {"type": "object", "properties": {"note": {"type": "string"}, "meta": {"type": "object"}}},
  ` + op + `}`
	}
	sql := `"sql": {"statement": "SELECT $1, $2", "args": ["note", "meta"]}`
	http := `"http": {"method": "POST", "path": "/notes", "body": {"note": "note"}}`
	for _, c := range []struct {
		target, op, args, field string
	}{
		{"crm", sql, `{"note": "a\u0000b"}`, "/note"},
		{"crm", sql, `{"note": "ok", "meta": {"tags": ["x", "\u0000"]}}`, "/meta/tags/1"},
		{"crm", sql, `{"meta": {"k\u0000": 1}}`, "/meta"},
		{"demo", sql, `{"note": "a\u0000b"}`, "/note"},
		{"billing", http, `{"note": "a\u0000b"}`, ""},
		{"crm", sql, `{"note": "no NUL here", "meta": {"k": "\\u0000 as text"}}`, ""},
	} {
		tool := mustParse(t, decl(c.target, c.op))
		err := tool.Spec.ValidateArgs(decodeArgs(t, c.args))
		if c.field == "" {
			if err != nil {
				t.Errorf("%s %s: %v, want valid", c.target, c.args, err)
			}
			continue
		}
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodeInvalidArguments || be.Field != c.field || !strings.Contains(be.Message, "NUL byte") {
			t.Errorf("%s %s: err = %v, want invalid_arguments at %s", c.target, c.args, err, c.field)
		}
	}
}
