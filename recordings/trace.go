package recordings

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// Trace returns the events of run, ordered by time, then chain and seq.
func (s *Store) Trace(ctx context.Context, run string) ([]broker.Event, error) {
	if run == "" {
		return nil, &broker.Error{Code: broker.CodeInvalidRequest, Field: "run", Message: "a trace needs a run id"}
	}
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind("SELECT chain, seq, event FROM audit_events WHERE run = ? ORDER BY time_ns, chain, seq"), run)
	if err != nil {
		return nil, fmt.Errorf("recordings: trace %s: %w", run, err)
	}
	defer rows.Close()
	var out []broker.Event
	for rows.Next() {
		var chain, event string
		var seq int64
		if err := rows.Scan(&chain, &seq, &event); err != nil {
			return nil, fmt.Errorf("recordings: trace %s: %w", run, err)
		}
		var ev broker.Event
		if err := json.Unmarshal([]byte(event), &ev); err != nil {
			return nil, fmt.Errorf("recordings: trace %s: record %s/%d: %w", run, chain, seq, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// WriteTimeline prints evs as a readable timeline, one line per event:
// time (UTC), node, event kind, what ran (the tool, or the statement of a
// passthrough event), decision and rule, approval, status with error code,
// rows and duration (for a passthrough statement whose outcome a later
// record carries, the outcome's status, rows and execution time). Events
// are already masked; nothing is added.
func WriteTimeline(w io.Writer, evs []broker.Event) error {
	if len(evs) == 0 {
		_, err := io.WriteString(w, "no events\n")
		return err
	}
	first, last := evs[0].Time.UTC(), evs[len(evs)-1].Time.UTC()
	if _, err := fmt.Fprintf(w, "run %s: %d events, %s to %s (%s)\n\n", dash(evs[0].Run), len(evs),
		first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), last.Sub(first)); err != nil {
		return err
	}
	// A statement's outcome folded into a later record is shown on the
	// statement's own line.
	folded := map[string]broker.RecordedOutcome{}
	for _, ev := range evs {
		if ev.Detail["phase"] != "done" {
			for _, o := range broker.Outcomes(ev) {
				folded[o.StatementID] = o
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNODE\tEVENT\tWHAT\tDECISION\tAPPROVAL\tSTATUS\tROWS\tDURATION")
	for _, ev := range evs {
		if o, ok := folded[ev.ID]; ok {
			ev.Status, ev.ErrorCode, ev.Rows, ev.DurationMS = o.Status, o.ErrorCode, o.Rows, o.ExecMS
		}
		decision := ev.Decision
		if ev.Rule != "" {
			decision += " (" + ev.Rule + ")"
		}
		status := string(ev.Status)
		if ev.ErrorCode != "" {
			status += " (" + ev.ErrorCode + ")"
		}
		rows := ""
		if ev.Rows != 0 || ev.Status == broker.StatusOK && ev.Kind == broker.EventToolCall {
			rows = strconv.Itoa(ev.Rows)
		}
		dur := ""
		switch {
		case ev.DurationMS >= 1000:
			dur = strconv.FormatFloat(ev.DurationMS/1000, 'f', 1, 64) + "s"
		case ev.DurationMS != 0:
			dur = strconv.FormatFloat(ev.DurationMS, 'f', 1, 64) + "ms"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			ev.Time.UTC().Format("15:04:05.000"), dash(ev.Node), ev.Kind, dash(what(ev)),
			dash(decision), dash(ev.ApprovalID), dash(status), dash(rows), dash(dur))
	}
	return tw.Flush()
}

// what is the tool of an event, or its statement for passthrough events.
func what(ev broker.Event) string {
	if st, ok := ev.Detail["statement"].(string); ok && st != "" {
		st = strings.Join(strings.Fields(st), " ")
		if len(st) > 80 {
			st = st[:77] + "..."
		}
		if ev.Target != "" {
			return ev.Target + ": " + st
		}
		return st
	}
	return ev.Tool
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
