// Package schema ships the JSON Schema of a tool declaration file
// (tool.schema.json), for editors: a tool file that names it in "$schema"
// gets completion and validation while it is written. `toolgate dev` writes
// it beside the dev instance's config.
//
// The schema describes the file's shape (keys, types, mask actions,
// detectors, HTTP methods); the loader in package tools checks more (SQL
// placeholders against args, argument names against the input schema, path
// templates, targets). Tests in package tools keep the two in step: every
// declaration the loader accepts passes the schema, and the schema's keys
// and enums are the loader's. The package must hold data only, never
// behaviour that the loader depends on.
package schema
