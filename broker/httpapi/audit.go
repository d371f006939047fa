package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// The audit export formats.
const (
	AuditJSONL = "jsonl"
	AuditCSV   = "csv"
)

// AuditQuery selects audit records. Empty fields match everything; Since
// is inclusive and Until exclusive; Limit zero means no limit.
type AuditQuery struct {
	Graph, Node, Run, Thread, Tool, Kind string
	Since, Until                         time.Time
	Limit                                int
	// Format is AuditJSONL or AuditCSV.
	Format string
}

// AuditStore is the audit trail as auditors read it over HTTP
// (implemented in cmd/toolgate over recordings.Reader, which holds the
// access rule: the handlers only translate).
type AuditStore interface {
	// Auditor returns nil when p may read audit records, else a forbidden
	// *broker.Error saying why.
	Auditor(p broker.Principal) error
	// ExportEvents streams the records q selects to w in q.Format and
	// returns how many it wrote. It must not write before it knows the
	// query is valid and viewer may read it.
	ExportEvents(ctx context.Context, viewer broker.Principal, q AuditQuery, w io.Writer) (int, error)
	// RunTrace returns the events of run, oldest first.
	RunTrace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error)
}

// ParseAuditQuery reads an audit query from URL parameters: graph, node,
// run, thread, tool, kind, since, until, format (jsonl, the default, or
// csv) and limit. since and until take an RFC 3339 time, a date
// (2006-01-02, UTC midnight) or a Go duration meaning that long before now
// ("24h"). Unknown parameters are refused, so a misspelt filter never
// widens an export. The error is an invalid_request *broker.Error naming
// the parameter.
func ParseAuditQuery(v url.Values, now time.Time) (AuditQuery, error) {
	q := AuditQuery{Format: AuditJSONL}
	for name, vals := range v {
		if len(vals) != 1 {
			return q, badParam(name, "give %s once", name)
		}
		val := vals[0]
		var err error
		switch name {
		case "graph":
			q.Graph = val
		case "node":
			q.Node = val
		case "run":
			q.Run = val
		case "thread":
			q.Thread = val
		case "tool":
			q.Tool = val
		case "kind":
			q.Kind = val
		case "since":
			q.Since, err = parseAuditTime(name, val, now)
		case "until":
			q.Until, err = parseAuditTime(name, val, now)
		case "format":
			if val != AuditJSONL && val != AuditCSV {
				return q, badParam(name, "unknown format %q; use jsonl or csv", val)
			}
			q.Format = val
		case "limit":
			q.Limit, err = strconv.Atoi(val)
			if err != nil || q.Limit < 0 {
				return q, badParam(name, "limit must be a whole number, 0 for no limit (got %q)", val)
			}
		default:
			return q, badParam(name, "unknown parameter %q; filter by graph, node, run, thread, tool, kind, since, until, format or limit", name)
		}
		if err != nil {
			return q, err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, badParam("until", "until (%s) must be after since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	return q, nil
}

func parseAuditTime(name, val string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, val); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, val); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(val); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, badParam(name, "%s %q is not a time; use RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01) or a duration ago (24h)", name, val)
}

func badParam(field, format string, args ...any) error {
	return &broker.Error{Code: broker.CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// auditAPI serves /v1/audit/events and /v1/runs/{run}/trace.
type auditAPI struct {
	p     broker.Pipeline
	store AuditStore
	opts  Options
	now   func() time.Time
}

// NewAudit returns the handler for GET /v1/audit/events (a streamed
// export, see ParseAuditQuery) and GET /v1/runs/{run}/trace (the run's
// events as JSON). Every request is authenticated through p; a caller that
// store says is no auditor gets 403 forbidden before anything is read.
func NewAudit(p broker.Pipeline, store AuditStore, opts Options) http.Handler {
	a := &auditAPI{p: p, store: store, opts: opts, now: time.Now}
	meta := opts.ResourceMetadataURL
	mux := http.NewServeMux()
	mux.Handle("/v1/audit/events", allow(door.Authenticate(p, meta, a.auditor(a.events)), http.MethodGet))
	mux.Handle("/v1/runs/{run}/trace", allow(door.Authenticate(p, meta, a.auditor(a.trace)), http.MethodGet))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path), meta)
	})
	return door.Recover(p, mux)
}

// auditor lets next run only for callers the store accepts as auditors.
func (a *auditAPI) auditor(next func(http.ResponseWriter, *http.Request, broker.Caller)) func(http.ResponseWriter, *http.Request, broker.Caller) {
	return func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
		if err := a.store.Auditor(c.Principal); err != nil {
			a.writeError(w, err)
			return
		}
		next(w, r, c)
	}
}

func (a *auditAPI) events(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	q, err := ParseAuditQuery(r.URL.Query(), a.now())
	if err != nil {
		a.writeError(w, err)
		return
	}
	ctype := "application/x-ndjson"
	if q.Format == AuditCSV {
		ctype = "text/csv; charset=utf-8"
	}
	lw := &lazyWriter{w: w, ctype: ctype}
	n, err := a.store.ExportEvents(r.Context(), c.Principal, q, lw)
	if err != nil {
		if !lw.started {
			a.writeError(w, err)
			return
		}
		// Records already went out: abort the connection so the client
		// sees a failed transfer, never a short export that looks whole.
		a.p.Report(fmt.Errorf("audit export failed mid-stream after %d records: %w", n, err))
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		// Nothing matched (jsonl writes nothing): an empty 200.
		lw.start()
	}
}

// lazyWriter sends the 200 and its headers on the first byte, so an error
// found before anything was written can still be a clean JSON error.
type lazyWriter struct {
	w       http.ResponseWriter
	ctype   string
	started bool
}

func (l *lazyWriter) start() {
	l.started = true
	h := l.w.Header()
	h.Set("Content-Type", l.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}

// traceJSON is the body of GET /v1/runs/{run}/trace.
type traceJSON struct {
	Run    string         `json:"run"`
	Events []broker.Event `json:"events"`
}

func (a *auditAPI) trace(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	run := r.PathValue("run")
	if strings.TrimSpace(run) == "" {
		a.writeError(w, badParam("run", "the path must name a run: /v1/runs/{run}/trace"))
		return
	}
	evs, err := a.store.RunTrace(r.Context(), c.Principal, run)
	if err != nil {
		a.writeError(w, err)
		return
	}
	if len(evs) == 0 {
		a.writeError(w, broker.Errorf(broker.CodeNotFound, "no events are recorded for run %q", run))
		return
	}
	door.WriteJSON(w, http.StatusOK, traceJSON{Run: run, Events: evs})
}

func (a *auditAPI) writeError(w http.ResponseWriter, err error) {
	door.WriteError(w, a.p.Report(err), a.opts.ResourceMetadataURL)
}
