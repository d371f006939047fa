package metrics

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/toolgate/toolgate/broker"
)

// Recorder counts events on their way to the audit store.
type Recorder struct {
	next     broker.Recorder
	reg      *prometheus.Registry
	events   *prometheus.CounterVec
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures prometheus.Counter
}

var _ broker.Recorder = (*Recorder)(nil)

// NewRecorder wraps next. Its registry also carries the Go runtime and
// process collectors.
func NewRecorder(next broker.Recorder) *Recorder {
	r := &Recorder{
		next: next,
		reg:  prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "toolgate_audit_events_total",
			Help: "Audit events recorded, by kind.",
		}, []string{"kind"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "toolgate_tool_calls_total",
			Help: "Tool calls and passthrough statements, by front door, tool, decision and status.",
		}, []string{"door", "tool", "decision", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "toolgate_tool_call_duration_seconds",
			Help:    "Time from a tool call's arrival to its answer (approval waits included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"door", "tool", "status"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "toolgate_audit_failures_total",
			Help: "Audit records the store refused (each one failed its call closed).",
		}),
	}
	r.reg.MustRegister(r.events, r.calls, r.duration, r.failures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Record counts ev and passes it to the wrapped recorder.
func (r *Recorder) Record(ctx context.Context, ev broker.Event) error {
	if err := r.next.Record(ctx, ev); err != nil {
		r.failures.Inc()
		return err
	}
	r.events.WithLabelValues(string(ev.Kind)).Inc()
	if ev.Kind == broker.EventToolCall || ev.Kind == broker.EventStatement {
		r.calls.WithLabelValues(ev.Door, ev.Tool, ev.Decision, string(ev.Status)).Inc()
	}
	if ev.Kind == broker.EventToolCall {
		r.duration.WithLabelValues(ev.Door, ev.Tool, string(ev.Status)).Observe(ev.DurationMS / 1000)
	}
	return nil
}

// Handler serves the metrics in the Prometheus text format.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}
