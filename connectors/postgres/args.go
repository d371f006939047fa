package postgres

import "encoding/json"

// normalizeArgs turns decoded JSON arguments into values pgx sends as
// untyped text parameters, so the server infers each parameter's type from
// the statement: json.Number stays exact text, objects and arrays become
// their JSON text (for json/jsonb parameters).
func normalizeArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case json.Number:
			out[i] = string(v)
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err != nil {
				out[i] = a
				continue
			}
			out[i] = string(b)
		default:
			out[i] = a
		}
	}
	return out
}
