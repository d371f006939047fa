package quickstart

import "embed"

// Files is the quickstart folder: toolgate.yaml, tools/*.json and seed.sql.
//
//go:embed toolgate.yaml seed.sql tools/*.json
var Files embed.FS
