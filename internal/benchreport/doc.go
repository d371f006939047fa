// Command benchreport is the program behind `make bench`: it runs the DESIGN §11
// measurements one after another (never two at once, so they do not
// compete for the machine's cores), streams their output, and prints one
// table of what was measured against each target.
//
// Each measurement is a `go test` run whose result lines are in the
// `go test -bench` format, so custom metrics reported with b.ReportMetric
// (or printed in that format by an env-gated test, as cmd/toolgate's
// TestMCPOverhead does) are read back by name.
//
// The Postgres passthrough comparison is a hook: when some package
// declares BenchmarkPgbench, it is run and its x-direct and x-pgbouncer
// metrics are judged; when the Makefile has a bench-passthrough target,
// its output is read the same way. Until then the row says "not built".
//
// Benchreport must never judge numbers from different runs against each
// other: every ratio it reports was measured within one process.
package main
