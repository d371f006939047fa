package metrics

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/toolgate/toolgate/broker"
)

// Unknown is the label value every name outside the known set is folded
// into: a tool the catalog does not hold, a door, decision, status or
// event kind toolgate does not emit.
const Unknown = "_unknown"

// The label values toolgate itself emits; anything else is Unknown.
var (
	knownDoors     = set("mcp", "http", "stdio", "pgwire", "httpproxy")
	knownDecisions = set("", string(broker.EffectAllow), string(broker.EffectApprove), string(broker.EffectDeny))
	knownStatuses  = set("", string(broker.StatusOK), string(broker.StatusDenied), string(broker.StatusError), string(broker.StatusPending))
	knownKinds     = set(string(broker.EventToolCall), string(broker.EventGrantMinted), string(broker.EventGrantRevoked),
		string(broker.EventApprovalRequested), string(broker.EventApprovalVoted), string(broker.EventApprovalDecided),
		string(broker.EventApprovalConsumed), string(broker.EventApprovalExpired), string(broker.EventApprovalStale),
		string(broker.EventSessionOpened), string(broker.EventStatement), string(broker.EventSessionClosed), string(broker.EventPolicyReloaded),
		string(broker.EventPrincipalDisabled), string(broker.EventPrincipalEnabled), string(broker.EventKeyCreated),
		string(broker.EventKeyRevoked), string(broker.EventAccessRefused), string(broker.EventSessionsClosed))
)

func set(values ...string) map[string]bool {
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}

// Labels are the configured names a tool label may take: the catalog's
// tools and the passthrough pseudo-tools of the configured targets
// ("pg:<target>", "http:<target>").
type Labels struct {
	Tools   []string
	Targets []string
}

// Recorder counts events on their way to the audit store.
type Recorder struct {
	next     broker.Recorder
	reg      *prometheus.Registry
	events   *prometheus.CounterVec
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures prometheus.Counter
	tools    atomic.Pointer[map[string]bool]
}

var _ broker.Recorder = (*Recorder)(nil)

// NewRecorder wraps next. Its registry also carries the Go runtime and
// process collectors. Until SetLabels, every tool label is Unknown.
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
	r.SetLabels(Labels{})
	return r
}

// SetLabels replaces the names a tool label may take, e.g. after a reload.
// Series already counted under an old name stay until the process ends.
func (r *Recorder) SetLabels(l Labels) {
	m := make(map[string]bool, len(l.Tools)+2*len(l.Targets))
	for _, t := range l.Tools {
		m[t] = true
	}
	for _, t := range l.Targets {
		m[broker.PassthroughTool(broker.KindSQL, t)] = true
		m[broker.PassthroughTool(broker.KindHTTP, t)] = true
	}
	r.tools.Store(&m)
}

// label returns v when known holds it, else Unknown.
func label(known map[string]bool, v string) string {
	if known[v] {
		return v
	}
	return Unknown
}

// Record counts ev and passes it to the wrapped recorder. Every label
// value comes from a fixed or configured set; anything a caller chose (an
// unknown tool name, a made-up door) is counted as Unknown.
func (r *Recorder) Record(ctx context.Context, ev broker.Event) error {
	if err := r.next.Record(ctx, ev); err != nil {
		r.failures.Inc()
		return err
	}
	r.events.WithLabelValues(label(knownKinds, string(ev.Kind))).Inc()
	if ev.Kind != broker.EventToolCall && ev.Kind != broker.EventStatement {
		return nil
	}
	door, tool, status := label(knownDoors, ev.Door), label(*r.tools.Load(), ev.Tool), label(knownStatuses, string(ev.Status))
	r.calls.WithLabelValues(door, tool, label(knownDecisions, ev.Decision), status).Inc()
	if ev.Kind == broker.EventToolCall {
		r.duration.WithLabelValues(door, tool, status).Observe(ev.DurationMS / 1000)
	}
	return nil
}

// Handler serves the metrics in the Prometheus text format. With a token
// (metrics.token), a request must carry "Authorization: Bearer <token>"
// or it gets 401 and no metrics; without one, /metrics is open like the
// health probes.
func (r *Recorder) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		scheme, got, ok := strings.Cut(req.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthenticated","message":"/metrics needs the bearer token configured as metrics.token"}}` + "\n"))
			return
		}
		h.ServeHTTP(w, req)
	})
}
