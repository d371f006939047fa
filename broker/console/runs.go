package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// graphRuns are the recent runs of one graph.
type graphRuns struct {
	Graph string
	Runs  []runRow
}

// runRow is a run in the runs list.
type runRow struct {
	Run
	Span string
}

// runsData is the body of the runs page.
type runsData struct {
	Graph, Since string
	Graphs       []graphRuns
	Error        string
}

// runs lists recent runs, grouped by graph, most recently active first.
func (c *Console) runs(w http.ResponseWriter, r *http.Request, v viewer) {
	q := r.URL.Query()
	d := runsData{Graph: strings.TrimSpace(q.Get("graph")), Since: strings.TrimSpace(q.Get("since"))}
	if d.Since == "" {
		d.Since = "7d"
	}
	since, err := parseSince(d.Since, c.now())
	if err != nil {
		d.Error = err.Error()
		c.renderFor(w, r, v, http.StatusBadRequest, "runs", page{Title: "Runs", Nav: "runs", Body: d})
		return
	}
	list, err := c.cfg.Audit.Runs(r.Context(), v.principal(), RunFilter{Graph: d.Graph, Since: since, Limit: 500})
	if err != nil {
		c.refusal(w, r, v, err)
		return
	}
	index := map[string]int{}
	for _, run := range list {
		i, ok := index[run.Graph]
		if !ok {
			i = len(d.Graphs)
			index[run.Graph] = i
			d.Graphs = append(d.Graphs, graphRuns{Graph: run.Graph})
		}
		d.Graphs[i].Runs = append(d.Graphs[i].Runs, runRow{Run: run, Span: duration(run.Last.Sub(run.First))})
	}
	c.renderFor(w, r, v, http.StatusOK, "runs", page{Title: "Runs", Nav: "runs", Body: d})
}

// eventRow is one audit record in a run's timeline.
type eventRow struct {
	broker.Event
	Offset     string
	What       string
	Duration   string
	DetailText string
}

// nodeRow sums up one node of a run.
type nodeRow struct {
	Node                          string
	Events, Calls, Errors, Denied int
	Time                          string
	ms                            float64
}

// runData is the body of a run's timeline page.
type runData struct {
	Run, Node, Path string
	Graphs          []string
	First, Last     time.Time
	Span            string
	Nodes           []*nodeRow
	Events          []eventRow
	Check           ChainCheck
	CheckErr        string
}

// run shows a run's timeline: every record, in order, with the node that
// made it, its masked arguments and result, decision, duration and error;
// a summary per node; and the verification of the chains holding it.
func (c *Console) run(w http.ResponseWriter, r *http.Request, v viewer) {
	run := r.PathValue("run")
	evs, err := c.cfg.Audit.Trace(r.Context(), v.principal(), run)
	if err == nil && len(evs) == 0 {
		err = broker.Errorf(broker.CodeNotFound, "no events are recorded for run %q", run)
	}
	if err != nil {
		c.refusal(w, r, v, err)
		return
	}
	d := timeline(run, r.URL.Query().Get("node"), evs)
	d.Path = pathRuns + "/" + url.PathEscape(run)
	if d.Check, err = c.cfg.Audit.VerifyRun(r.Context(), v.principal(), run); err != nil {
		d.CheckErr = "the chains could not be verified: " + c.cfg.Reporter.Report(err).Message
	}
	c.renderFor(w, r, v, http.StatusOK, "run", page{Title: "Run " + run, Nav: "runs", Body: d})
}

// timeline builds a run's page from its events; node, when set, keeps only
// that node's events in the timeline (the summary keeps every node).
func timeline(run, node string, evs []broker.Event) runData {
	d := runData{Run: run, Node: node, First: evs[0].Time, Last: evs[len(evs)-1].Time}
	d.Span = duration(d.Last.Sub(d.First))
	nodes := map[string]*nodeRow{}
	for _, ev := range evs {
		if ev.Graph != "" && !slices.Contains(d.Graphs, ev.Graph) {
			d.Graphs = append(d.Graphs, ev.Graph)
		}
		n := nodes[ev.Node]
		if n == nil {
			n = &nodeRow{Node: ev.Node}
			nodes[ev.Node] = n
			d.Nodes = append(d.Nodes, n)
		}
		n.Events++
		if ev.Kind == broker.EventToolCall || ev.Kind == broker.EventStatement {
			n.Calls++
			n.ms += ev.DurationMS
		}
		switch ev.Status {
		case broker.StatusError:
			n.Errors++
		case broker.StatusDenied:
			n.Denied++
		}
		if node != "" && ev.Node != node {
			continue
		}
		d.Events = append(d.Events, eventRow{Event: ev, Offset: "+" + duration(ev.Time.Sub(d.First)), What: what(ev),
			Duration: millis(ev.DurationMS), DetailText: detailJSON(ev.Detail)})
	}
	for _, n := range d.Nodes {
		n.Time = millis(n.ms)
	}
	return d
}

// what is the tool of an event, or the statement of a passthrough event.
func what(ev broker.Event) string {
	if st, ok := ev.Detail["statement"].(string); ok && st != "" {
		st = strings.Join(strings.Fields(st), " ")
		if ev.Target != "" {
			return ev.Target + ": " + st
		}
		return st
	}
	return ev.Tool
}

func detailJSON(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Sprint(m)
	}
	return string(b)
}

// duration formats a span for people: 850ms, 12.3s, 4m05s.
func duration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

func millis(ms float64) string {
	if ms == 0 {
		return ""
	}
	return duration(time.Duration(ms * float64(time.Millisecond)))
}

// unsafeFileChars are replaced in a download's file name.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// export downloads a run's records as jsonl (chain-verifiable) or csv,
// through the same export the CLI and the HTTP API use.
func (c *Console) export(w http.ResponseWriter, r *http.Request, v viewer) {
	run, format := r.PathValue("run"), r.URL.Query().Get("format")
	if format != "jsonl" && format != "csv" {
		c.errorPageFor(w, r, v, http.StatusBadRequest, "Unknown format", "Download a run as jsonl or csv.")
		return
	}
	ctype := "application/x-ndjson"
	if format == "csv" {
		ctype = "text/csv; charset=utf-8"
	}
	name := "toolgate-run-" + strings.Trim(unsafeFileChars.ReplaceAllString(run, "_"), "_") + "." + format
	lw := &lazyWriter{w: w, start: func() {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.WriteHeader(http.StatusOK)
	}}
	n, err := c.cfg.Audit.Export(r.Context(), v.principal(), run, format, lw)
	switch {
	case err != nil && !lw.started:
		c.refusal(w, r, v, err)
	case err != nil:
		// Records already went out: abort, so the download fails instead
		// of looking complete.
		c.cfg.Reporter.Report(fmt.Errorf("console: run export failed mid-stream after %d records: %w", n, err))
		panic(http.ErrAbortHandler)
	case !lw.started:
		lw.begin()
	}
}

// lazyWriter sends the headers on the first byte, so an error found before
// anything was written can still be a page.
type lazyWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (l *lazyWriter) begin() {
	l.started = true
	l.start()
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.begin()
	}
	return l.w.Write(p)
}
