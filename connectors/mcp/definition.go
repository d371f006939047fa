package mcp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// Limits on what an upstream may list. A definition is canonicalised and
// compiled, so its size and nesting are bounded before either happens.
const (
	maxDefinitionBytes = 256 << 10
	maxNesting         = 64
	maxToolNameBytes   = 256
	maxTools           = 2000
	maxListPages       = 100
)

// Definition is one tool as the upstream lists it: what a pin covers.
type Definition struct {
	// Tool is the tool's name on the upstream server.
	Tool        string
	Title       string
	Description string
	// InputSchema is the compacted JSON Schema of the arguments.
	InputSchema json.RawMessage
	// OutputSchema is the compacted JSON Schema of structuredContent, nil
	// when the tool declares none.
	OutputSchema json.RawMessage
	// Annotations are the tool's MCP annotations as listed, nil when none.
	Annotations json.RawMessage
}

// Part names one pinned part of a definition, in a diff or a refusal.
type Part string

// The parts of a definition that a pin covers (the name is the pin's key).
const (
	PartTitle        Part = "title"
	PartDescription  Part = "description"
	PartInputSchema  Part = "input_schema"
	PartOutputSchema Part = "output_schema"
	PartAnnotations  Part = "annotations"
)

// parts lists the parts in the order changes are reported.
var parts = []Part{PartDescription, PartInputSchema, PartOutputSchema, PartAnnotations, PartTitle}

// parseDefinition decodes one entry of a tools/list result. The error names
// what is wrong without quoting upstream text beyond the tool's name.
func parseDefinition(raw json.RawMessage) (Definition, error) {
	var t struct {
		Name         string          `json:"name"`
		Title        string          `json:"title"`
		Description  string          `json:"description"`
		InputSchema  json.RawMessage `json:"inputSchema"`
		OutputSchema json.RawMessage `json:"outputSchema"`
		Annotations  json.RawMessage `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return Definition{}, errors.New("the definition is not a valid tool object")
	}
	d := Definition{Tool: t.Name, Title: t.Title, Description: t.Description}
	switch {
	case t.Name == "":
		return d, errors.New("the tool has no name")
	case len(t.Name) > maxToolNameBytes || !utf8.ValidString(t.Name):
		return d, fmt.Errorf("the tool name is not valid UTF-8 of at most %d bytes", maxToolNameBytes)
	case len(raw) > maxDefinitionBytes:
		return d, fmt.Errorf("the definition is %d bytes; toolgate accepts at most %d", len(raw), maxDefinitionBytes)
	case nesting(raw) > maxNesting:
		return d, fmt.Errorf("the definition is nested more than %d levels deep", maxNesting)
	}
	var err error
	if d.InputSchema, err = compactOrNil(t.InputSchema); err != nil || d.InputSchema == nil {
		return d, errors.New("the tool has no valid inputSchema")
	}
	if d.OutputSchema, err = compactOrNil(t.OutputSchema); err != nil {
		return d, errors.New("the tool's outputSchema is not valid JSON")
	}
	if d.Annotations, err = compactOrNil(t.Annotations); err != nil {
		return d, errors.New("the tool's annotations are not valid JSON")
	}
	return d, nil
}

// compactOrNil compacts raw, mapping absent and null to nil.
func compactOrNil(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// nesting returns how deeply raw's arrays and objects nest. Brackets inside
// strings do not count.
func nesting(raw []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// pin computes the digests of d: one per part and one of the whole
// definition, each the SHA-256 of its RFC 8785 (JCS) canonical JSON.
func (d Definition) pin() (ToolPin, error) {
	canon := make(map[Part][]byte, len(parts))
	p := ToolPin{Parts: make(map[Part]string, len(parts))}
	for _, part := range parts {
		c, err := canonical(d.part(part))
		if err != nil {
			return ToolPin{}, fmt.Errorf("%s of tool %q cannot be canonicalised: %w", part, d.Tool, err)
		}
		canon[part] = c
		p.Parts[part] = digest(c)
	}
	name, err := canonical(jsonString(d.Tool))
	if err != nil {
		return ToolPin{}, fmt.Errorf("the name of tool %q cannot be canonicalised: %w", d.Tool, err)
	}
	// Keys in JCS order; every value is already canonical.
	var whole bytes.Buffer
	whole.WriteString(`{"annotations":`)
	whole.Write(canon[PartAnnotations])
	whole.WriteString(`,"description":`)
	whole.Write(canon[PartDescription])
	whole.WriteString(`,"inputSchema":`)
	whole.Write(canon[PartInputSchema])
	whole.WriteString(`,"name":`)
	whole.Write(name)
	whole.WriteString(`,"outputSchema":`)
	whole.Write(canon[PartOutputSchema])
	whole.WriteString(`,"title":`)
	whole.Write(canon[PartTitle])
	whole.WriteByte('}')
	p.Digest = digest(whole.Bytes())
	return p, nil
}

// part returns one part of d as JSON; an absent schema or annotation set
// is null.
func (d Definition) part(p Part) json.RawMessage {
	var raw json.RawMessage
	switch p {
	case PartTitle:
		return jsonString(d.Title)
	case PartDescription:
		return jsonString(d.Description)
	case PartInputSchema:
		raw = d.InputSchema
	case PartOutputSchema:
		raw = d.OutputSchema
	case PartAnnotations:
		raw = d.Annotations
	}
	if raw == nil {
		return json.RawMessage("null")
	}
	return raw
}

// canonical returns the JCS form of raw, refusing what JCS cannot represent
// (duplicate keys, numbers outside IEEE 754 doubles) and deep nesting.
func canonical(raw json.RawMessage) ([]byte, error) {
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	if nesting(raw) > maxNesting {
		return nil, fmt.Errorf("nested more than %d levels deep", maxNesting)
	}
	return jcs.Transform(raw)
}

func digest(canon []byte) string {
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
