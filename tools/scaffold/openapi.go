package scaffold

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/toolgate/toolgate/internal/config"
)

// maxSchemaDepth bounds how deeply a recursive OpenAPI schema is inlined.
const maxSchemaDepth = 8

// OpenAPIDrafts drafts one HTTP tool per operation of doc (all of them when
// ops is empty, else those whose operationId is listed). An operationId in
// ops that doc lacks is an error.
func OpenAPIDrafts(doc *openapi3.T, ops []string, o Options) ([]Draft, []Note, error) {
	var out []Draft
	var notes []Note
	found := map[string]bool{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		methods := make([]string, 0)
		for m := range item.Operations() {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, method := range methods {
			op := item.GetOperation(method)
			id := operationID(op, method, path)
			if len(ops) > 0 && !slices.Contains(ops, id) {
				continue
			}
			found[id] = true
			d, ns, err := operationDraft(method, path, id, item.Parameters, op, o)
			notes = append(notes, ns...)
			if err != nil {
				return nil, nil, err
			}
			if d != nil {
				out = append(out, *d)
			}
		}
	}
	for _, id := range ops {
		if !found[id] {
			return nil, nil, fmt.Errorf("the OpenAPI document has no operation with operationId %q", id)
		}
	}
	return out, notes, nil
}

// operationID is the operation's operationId, or one made of method and path.
func operationID(op *openapi3.Operation, method, path string) string {
	if op.OperationID != "" {
		return op.OperationID
	}
	return strings.ToLower(method) + "_" + strings.Trim(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(path, "_"), "_")
}

// snake turns an operationId like getInvoiceById into get_invoice_by_id.
func snake(s string) string {
	s = regexp.MustCompile(`([a-z0-9])([A-Z])`).ReplaceAllString(s, "${1}_${2}")
	s = regexp.MustCompile(`[^a-zA-Z0-9_]+`).ReplaceAllString(s, "_")
	return strings.ToLower(strings.Trim(s, "_"))
}

func operationDraft(method, path, id string, shared openapi3.Parameters, op *openapi3.Operation, o Options) (*Draft, []Note, error) {
	name := o.Target + "_" + snake(id)
	if len(name) > 64 {
		name = name[:64]
	}
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		return nil, []Note{{Text: fmt.Sprintf("operation %s: method %s is not supported by http tools; skipped", id, method)}}, nil
	}
	props := map[string]any{}
	var required []string
	var notes []Note
	h := &httpDecl{Method: method, Path: path}
	for _, ref := range append(append(openapi3.Parameters{}, shared...), op.Parameters...) {
		p := ref.Value
		if p == nil {
			continue
		}
		switch p.In {
		case openapi3.ParameterInPath, openapi3.ParameterInQuery:
		default:
			notes = append(notes, Note{Text: fmt.Sprintf("%s: %s parameter %q is not an argument; set headers on the target", name, p.In, p.Name)})
			continue
		}
		s := map[string]any{}
		if p.Schema != nil {
			s = jsonSchema(p.Schema, 0)
		}
		if p.Description != "" {
			s["description"] = p.Description
		}
		props[p.Name] = s
		if p.Required || p.In == openapi3.ParameterInPath {
			required = append(required, p.Name)
		}
		if p.In == openapi3.ParameterInQuery {
			if h.Query == nil {
				h.Query = map[string]string{}
			}
			h.Query[p.Name] = p.Name
		}
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil && method != "GET" {
		if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			arg := "body"
			if _, taken := props[arg]; taken {
				arg = "request_body"
			}
			props[arg] = jsonSchema(mt.Schema, 0)
			h.Body = arg
			if rb.Value.Required {
				required = append(required, arg)
			}
		} else {
			notes = append(notes, Note{Text: fmt.Sprintf("%s: the request body is not application/json; it is left out", name)})
		}
	}
	sort.Strings(required)
	d := decl{
		Schema: o.SchemaRef, Name: name, Title: op.Summary, Description: describeOp(op),
		Target: o.Target, InputSchema: closed(props, required), HTTP: h,
		Annotations: map[string]bool{"readOnlyHint": method == "GET"},
	}
	if method != "GET" {
		d.Annotations["destructiveHint"] = true
		d.Annotations["idempotentHint"] = method == "PUT" || method == "DELETE"
	}
	dr, err := finish(d, config.KindHTTP)
	if err != nil {
		return nil, notes, err
	}
	return &dr, notes, nil
}

func describeOp(op *openapi3.Operation) string {
	d := strings.TrimSpace(op.Description)
	if d == "" {
		d = op.Summary
	}
	if len(d) > 500 {
		d = d[:500]
	}
	return d
}

// jsonSchema turns an OpenAPI schema (3.0 or 3.1) into a plain JSON Schema
// with references inlined, OpenAPI-only keywords dropped and 3.0's
// nullable written as a "null" type.
func jsonSchema(ref *openapi3.SchemaRef, depth int) map[string]any {
	out := map[string]any{}
	if ref == nil || ref.Value == nil || depth > maxSchemaDepth {
		return out
	}
	s := ref.Value
	if s.Type != nil && len(*s.Type) > 0 {
		types := append([]string(nil), (*s.Type)...)
		if s.Nullable && !slices.Contains(types, "null") {
			types = append(types, "null")
		}
		if len(types) == 1 {
			out["type"] = types[0]
		} else {
			out["type"] = types
		}
	}
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	set("title", s.Title, s.Title != "")
	set("description", s.Description, s.Description != "")
	set("format", s.Format, s.Format != "")
	set("enum", s.Enum, len(s.Enum) > 0)
	set("const", s.Const, s.Const != nil)
	set("default", s.Default, s.Default != nil)
	set("pattern", s.Pattern, s.Pattern != "")
	set("minLength", s.MinLength, s.MinLength > 0)
	set("maxLength", s.MaxLength, s.MaxLength != nil)
	set("minItems", s.MinItems, s.MinItems > 0)
	set("maxItems", s.MaxItems, s.MaxItems != nil)
	set("uniqueItems", true, s.UniqueItems)
	set("multipleOf", s.MultipleOf, s.MultipleOf != nil)
	numberBounds(out, s)
	if s.Items != nil {
		out["items"] = jsonSchema(s.Items, depth+1)
	}
	if len(s.Properties) > 0 {
		props := map[string]any{}
		for n, p := range s.Properties {
			props[n] = jsonSchema(p, depth+1)
		}
		out["properties"] = props
	}
	set("required", s.Required, len(s.Required) > 0)
	if ap := s.AdditionalProperties; ap.Has != nil {
		out["additionalProperties"] = *ap.Has
	} else if ap.Schema != nil {
		out["additionalProperties"] = jsonSchema(ap.Schema, depth+1)
	}
	for k, list := range map[string]openapi3.SchemaRefs{"allOf": s.AllOf, "anyOf": s.AnyOf, "oneOf": s.OneOf} {
		if len(list) > 0 {
			subs := make([]any, len(list))
			for i, sub := range list {
				subs[i] = jsonSchema(sub, depth+1)
			}
			out[k] = subs
		}
	}
	return out
}

// numberBounds writes minimum/maximum with 3.0's boolean or 3.1's numeric
// exclusive bounds as JSON Schema 2020-12 has them.
func numberBounds(out map[string]any, s *openapi3.Schema) {
	if s.Min != nil {
		if s.ExclusiveMin.IsTrue() {
			out["exclusiveMinimum"] = *s.Min
		} else {
			out["minimum"] = *s.Min
		}
	}
	if s.Max != nil {
		if s.ExclusiveMax.IsTrue() {
			out["exclusiveMaximum"] = *s.Max
		} else {
			out["maximum"] = *s.Max
		}
	}
	if v := s.ExclusiveMin.Value; v != nil {
		out["exclusiveMinimum"] = *v
	}
	if v := s.ExclusiveMax.Value; v != nil {
		out["exclusiveMaximum"] = *v
	}
}
