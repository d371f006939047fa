// Package scaffold writes first drafts of tool declarations: from the
// tables of a live database (Postgres through pgx, SQLite through
// database/sql) and from an OpenAPI 3.0/3.1 document (kin-openapi).
//
// From a table it drafts a lookup by primary key, a filtered list with a
// limit and, on request, an insert and an update marked destructiveHint,
// with input schemas from the column types and masks suggested for columns
// that look sensitive by name or by what the detectors find in a small
// sample of their values. From an OpenAPI operation it drafts one HTTP tool
// with the operation's path, query and body parameters.
//
// The package must never put a sampled value into a tool, a note or an
// error: samples only feed the Detector. It must never splice a name into
// SQL without quoting it as an identifier, and every draft it returns has
// been parsed by the tools loader.
package scaffold
