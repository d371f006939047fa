// Package metrics exports toolgate's Prometheus metrics at /metrics. It
// observes the pipeline from the audit stream: Recorder wraps the audit
// store's broker.Recorder and counts every event by kind, door, tool,
// decision and status, and times tool calls.
//
// Every label value comes from a fixed set (the doors, decisions, statuses
// and event kinds toolgate emits) or from configuration (the catalog's
// tools and the passthrough targets, swapped on reload with SetLabels);
// anything else, such as a tool name a caller made up, is counted as
// "_unknown", so callers can neither grow the series without bound nor
// write text into them. /metrics can require a bearer token
// (metrics.token).
//
// It never labels a metric with an argument, a result, a principal or a
// run id (unbounded or sensitive), and it never changes what is recorded: a
// record failure is returned as is.
package metrics
