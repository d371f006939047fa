package scaffold

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/toolgate/toolgate/tools"
)

// Draft is one tool declaration to write.
type Draft struct {
	// File is the file name, <tool name>.json.
	File string
	Name string
	JSON []byte
}

// decl is a tool declaration in the order a reader expects its keys.
type decl struct {
	Schema       string            `json:"$schema,omitempty"`
	Name         string            `json:"name"`
	Title        string            `json:"title,omitempty"`
	Description  string            `json:"description,omitempty"`
	Target       string            `json:"target"`
	InputSchema  objectSchema      `json:"input_schema"`
	OutputSchema *objectSchema     `json:"output_schema,omitempty"`
	SQL          *sqlDecl          `json:"sql,omitempty"`
	HTTP         *httpDecl         `json:"http,omitempty"`
	Annotations  map[string]bool   `json:"annotations,omitempty"`
	Mask         map[string]string `json:"mask,omitempty"`
}

type objectSchema struct {
	Type                 string         `json:"type"`
	Properties           map[string]any `json:"properties"`
	Required             []string       `json:"required,omitempty"`
	AdditionalProperties *bool          `json:"additionalProperties,omitempty"`
}

type sqlDecl struct {
	Statement string   `json:"statement"`
	Args      []string `json:"args"`
	MaxRows   int      `json:"max_rows,omitempty"`
}

type httpDecl struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  map[string]string `json:"query,omitempty"`
	Body   string            `json:"body,omitempty"`
}

func closed(props map[string]any, required []string) objectSchema {
	f := false
	return objectSchema{Type: "object", Properties: props, Required: required, AdditionalProperties: &f}
}

// finish encodes d and parses it with the tools loader, so no draft that
// toolgate would refuse is ever written.
func finish(d decl, kind string) (Draft, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return Draft{}, err
	}
	file := d.Name + ".json"
	if _, probs := tools.Parse(file, buf.Bytes(), map[string]string{d.Target: kind}); len(probs) > 0 {
		return Draft{}, fmt.Errorf("the draft of %s does not load (%s); please report this", d.Name, probs[0])
	}
	return Draft{File: file, Name: d.Name, JSON: buf.Bytes()}, nil
}

// TableDrafts drafts the tools of one table. kind is the target's kind
// (postgres or sqlite).
func TableDrafts(t Table, kind string, o Options) ([]Draft, []Note, error) {
	masks, notes := tableMasks(t, o)
	var pk []Column
	for _, c := range t.Columns {
		if c.PK {
			pk = append(pk, c)
		}
	}
	var decls []decl
	if len(pk) > 0 {
		decls = append(decls, getDecl(t, pk, o))
	} else {
		notes = append(notes, Note{Text: fmt.Sprintf("table %s has no primary key: no lookup or update tool", t.Name)})
	}
	decls = append(decls, listDecl(t, pk, o))
	if o.Writes {
		if d, ok := insertDecl(t, o); ok {
			decls = append(decls, d)
		}
		if d, ok := updateDecl(t, pk, o); ok {
			decls = append(decls, d)
		}
	}
	var out []Draft
	for _, d := range decls {
		d.Schema = o.SchemaRef
		if len(masks) > 0 {
			d.Mask = masks
		}
		d.OutputSchema = rowsSchema(t, masks)
		dr, err := finish(d, kind)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, dr)
	}
	return out, notes, nil
}

// tableMasks suggests a mask per sensitive column, with a note saying why.
func tableMasks(t Table, o Options) (map[string]string, []Note) {
	masks := map[string]string{}
	var notes []Note
	for _, c := range t.Columns {
		action, why := suggestMask(c, t.Samples[c.Name], o.Detector)
		if action == "" {
			continue
		}
		path := "rows.#." + c.Name
		masks[path] = action
		notes = append(notes, Note{Text: fmt.Sprintf("table %s: mask %s → %s: %s", t.Name, path, action, why)})
	}
	return masks, notes
}

// rowsSchema is the output schema of a table's SQL tools. A masked column
// may come back as a string whatever its type.
func rowsSchema(t Table, masks map[string]string) *objectSchema {
	cols := map[string]any{}
	for _, c := range t.Columns {
		typ, _ := jsonType(c.DBType)
		if typ == "" {
			cols[c.Name] = map[string]any{}
			continue
		}
		types := []string{typ}
		if _, masked := masks["rows.#."+c.Name]; masked && typ != "string" {
			types = append(types, "string")
		}
		cols[c.Name] = map[string]any{"type": append(types, "null")}
	}
	return &objectSchema{Type: "object", Properties: map[string]any{
		"rows":      map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": cols}},
		"row_count": map[string]any{"type": "integer"},
		"truncated": map[string]any{"type": "boolean"},
	}}
}

func columnList(t Table) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Ident
	}
	return strings.Join(names, ", ")
}

func getDecl(t Table, pk []Column, o Options) decl {
	props := map[string]any{}
	var where, args, keys []string
	for i, c := range pk {
		props[c.Name] = property(t.Name, c)
		where = append(where, fmt.Sprintf("%s = $%d", c.Ident, i+1))
		args = append(args, c.Name)
		keys = append(keys, c.Name)
	}
	return decl{
		Name:        toolName(o.Target, "get", t.Name),
		Title:       "Get one row of " + t.Name,
		Description: describe(t, fmt.Sprintf("Look up one row of %s by %s.", t.Name, strings.Join(keys, " and "))),
		Target:      o.Target,
		InputSchema: closed(props, args),
		SQL:         &sqlDecl{Statement: fmt.Sprintf("SELECT %s FROM %s WHERE %s", columnList(t), t.Ident, strings.Join(where, " AND ")), Args: args, MaxRows: 1},
		Annotations: map[string]bool{"readOnlyHint": true},
	}
}

// filterColumn reports whether a list tool filters on c: keys, foreign
// keys and a few columns that usually hold a small set of values.
func filterColumn(c Column) bool {
	switch strings.ToLower(c.Name) {
	case "status", "state", "type", "kind", "category", "country":
		return true
	}
	return c.Ref != "" || c.PK
}

func listDecl(t Table, pk []Column, o Options) decl {
	props := map[string]any{}
	var where, args []string
	for _, c := range t.Columns {
		if !filterColumn(c) {
			continue
		}
		n := len(args) + 1
		props[c.Name] = property(t.Name, c)
		where = append(where, fmt.Sprintf("(%s = $%d OR $%d IS NULL)", c.Ident, n, n))
		args = append(args, c.Name)
	}
	props["limit"] = map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 50, "description": "How many rows to return (default 50)."}
	args = append(args, "limit")
	stmt := "SELECT " + columnList(t) + " FROM " + t.Ident
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	if len(pk) > 0 {
		var order []string
		for _, c := range pk {
			order = append(order, c.Ident)
		}
		stmt += " ORDER BY " + strings.Join(order, ", ")
	}
	stmt += fmt.Sprintf(" LIMIT coalesce($%d, 50)", len(args))
	return decl{
		Name:        toolName(o.Target, "list", t.Name),
		Title:       "List rows of " + t.Name,
		Description: describe(t, fmt.Sprintf("List rows of %s; every filter is optional.", t.Name)),
		Target:      o.Target,
		InputSchema: closed(props, nil),
		SQL:         &sqlDecl{Statement: stmt, Args: args, MaxRows: 100},
		Annotations: map[string]bool{"readOnlyHint": true},
	}
}

func insertDecl(t Table, o Options) (decl, bool) {
	props := map[string]any{}
	var cols, vals, args, required []string
	for _, c := range t.Columns {
		if c.Default {
			continue
		}
		props[c.Name] = property(t.Name, c)
		cols = append(cols, c.Ident)
		args = append(args, c.Name)
		vals = append(vals, fmt.Sprintf("$%d", len(args)))
		if !c.Nullable {
			required = append(required, c.Name)
		}
	}
	if len(cols) == 0 {
		return decl{}, false
	}
	stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING %s", t.Ident, strings.Join(cols, ", "), strings.Join(vals, ", "), columnList(t))
	return writeDecl(t, o, "insert", fmt.Sprintf("Insert one row into %s and return it.", t.Name), closed(props, required), stmt, args, false), true
}

// writeDecl is an insert or update tool: destructive, never read-only.
func writeDecl(t Table, o Options, verb, what string, in objectSchema, stmt string, args []string, idempotent bool) decl {
	title := "Insert a row into " + t.Name
	if verb == "update" {
		title = "Update a row of " + t.Name
	}
	return decl{
		Name: toolName(o.Target, verb, t.Name), Title: title, Description: describe(t, what), Target: o.Target,
		InputSchema: in, SQL: &sqlDecl{Statement: stmt, Args: args},
		Annotations: map[string]bool{"readOnlyHint": false, "destructiveHint": true, "idempotentHint": idempotent},
	}
}

func updateDecl(t Table, pk []Column, o Options) (decl, bool) {
	if len(pk) == 0 {
		return decl{}, false
	}
	props := map[string]any{}
	var args, required, where, sets []string
	for _, c := range pk {
		props[c.Name] = property(t.Name, c)
		args = append(args, c.Name)
		required = append(required, c.Name)
		where = append(where, fmt.Sprintf("%s = $%d", c.Ident, len(args)))
	}
	for _, c := range t.Columns {
		if c.PK {
			continue
		}
		props[c.Name] = property(t.Name, c)
		args = append(args, c.Name)
		sets = append(sets, fmt.Sprintf("%s = coalesce($%d, %s)", c.Ident, len(args), c.Ident))
	}
	if len(sets) == 0 {
		return decl{}, false
	}
	stmt := fmt.Sprintf("UPDATE %s SET %s WHERE %s RETURNING %s", t.Ident, strings.Join(sets, ", "), strings.Join(where, " AND "), columnList(t))
	what := fmt.Sprintf("Update one row of %s by its key; columns left out keep their value.", t.Name)
	return writeDecl(t, o, "update", what, closed(props, required), stmt, args, true), true
}

func describe(t Table, what string) string {
	if t.Comment != "" {
		return what + " " + t.Comment
	}
	return what
}
