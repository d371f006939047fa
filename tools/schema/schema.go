package schema

import _ "embed"

// Tool is tool.schema.json, the JSON Schema (draft 2020-12) of one tool
// declaration file.
//
//go:embed tool.schema.json
var Tool []byte
