package tools

import (
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// schemaKeywords are the JSON Schema keywords (draft 2020-12, with the
// draft-07 and 2019-09 spellings) a declaration's schemas may use. JSON Schema
// itself ignores unknown keywords, which would turn a typo such as
// "additionalProperty": false into a silently weaker check; toolgate refuses
// them instead. Keys starting with "x-" are extensions and allowed.
var schemaKeywords = map[string]bool{
	"$schema": true, "$id": true, "$ref": true, "$anchor": true, "$dynamicRef": true, "$dynamicAnchor": true,
	"$recursiveRef": true, "$recursiveAnchor": true, "$vocabulary": true, "$comment": true, "$defs": true, "definitions": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
	"dependentSchemas": true, "dependencies": true, "prefixItems": true, "items": true, "additionalItems": true, "contains": true,
	"properties": true, "patternProperties": true, "additionalProperties": true, "propertyNames": true,
	"unevaluatedItems": true, "unevaluatedProperties": true,
	"type": true, "enum": true, "const": true, "multipleOf": true, "maximum": true, "exclusiveMaximum": true,
	"minimum": true, "exclusiveMinimum": true, "maxLength": true, "minLength": true, "pattern": true,
	"maxItems": true, "minItems": true, "uniqueItems": true, "maxContains": true, "minContains": true,
	"maxProperties": true, "minProperties": true, "required": true, "dependentRequired": true,
	"format": true, "contentEncoding": true, "contentMediaType": true, "contentSchema": true,
	"title": true, "description": true, "default": true, "deprecated": true, "readOnly": true, "writeOnly": true, "examples": true,
}

// Keywords whose value is a schema, a map of schemas, or a list of schemas.
var (
	schemaValued = []string{"not", "if", "then", "else", "items", "additionalItems", "contains", "additionalProperties",
		"propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
	schemaMapValued  = []string{"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
	schemaListValued = []string{"allOf", "anyOf", "oneOf", "prefixItems", "items"}
)

// checkKeywords reports unknown keywords anywhere in a decoded schema. It
// only looks at positions that hold schemas; values the compiler will
// reject for their type are left to it.
func checkKeywords(ps *problems, v any, path string, depth int) {
	obj, ok := v.(map[string]any)
	if !ok || depth > maxNestingDepth {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if schemaKeywords[k] || strings.HasPrefix(k, "x-") {
			continue
		}
		msg := "unknown JSON Schema keyword " + strconv.Quote(k)
		if s := closestKeyword(k); s != "" {
			msg += " (did you mean " + strconv.Quote(s) + "?)"
		}
		ps.addf(pointer(path, k), "%s: unknown keywords would be ignored, weakening the check; prefix extensions with \"x-\"", msg)
	}
	for _, k := range schemaValued {
		if sub, ok := obj[k]; ok {
			checkKeywords(ps, sub, pointer(path, k), depth+1)
		}
	}
	for _, k := range schemaMapValued {
		if m, ok := obj[k].(map[string]any); ok {
			for _, name := range slices.Sorted(maps.Keys(m)) {
				checkKeywords(ps, m[name], pointer(pointer(path, k), name), depth+1)
			}
		}
	}
	for _, k := range schemaListValued {
		if list, ok := obj[k].([]any); ok {
			for i, sub := range list {
				checkKeywords(ps, sub, pointer(pointer(path, k), strconv.Itoa(i)), depth+1)
			}
		}
	}
}

// closestKeyword returns the known keyword closest to k (ignoring case),
// when it is close enough to be a likely typo.
func closestKeyword(k string) string {
	limit := max(1, len(k)/5)
	if len(k) >= 8 {
		limit++
	}
	var keys []string
	for kw := range schemaKeywords {
		keys = append(keys, kw)
	}
	sort.Strings(keys)
	best, bestD := "", limit+1
	for _, kw := range keys {
		if d := editDistance(strings.ToLower(k), strings.ToLower(kw)); d < bestD {
			best, bestD = kw, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and adjacent transpositions cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
