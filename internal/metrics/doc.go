// Package metrics exports toolgate's Prometheus metrics at /metrics. It
// observes the pipeline from the audit stream: Recorder wraps the audit
// store's broker.Recorder and counts every event by kind, door, tool,
// decision and status, and times tool calls. It never labels a metric with
// an argument, a result, a principal or a run id (unbounded or sensitive),
// and it never changes what is recorded: a record failure is returned as is.
package metrics
