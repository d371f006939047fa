package recordings

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// Filter selects records. Empty fields match everything; Since is
// inclusive and Until exclusive.
type Filter struct {
	Graph     string
	Node      string
	Run       string
	Thread    string
	Tool      string
	Kind      string
	Principal string
	Status    string
	Since     time.Time
	Until     time.Time
	// Limit caps the records returned; zero means no limit.
	Limit int
}

// Validate reports a filter that can never be right.
func (f Filter) Validate() error {
	if f.Limit < 0 {
		return &broker.Error{Code: broker.CodeInvalidRequest, Field: "limit", Message: "limit must be zero (no limit) or positive"}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return &broker.Error{Code: broker.CodeInvalidRequest, Field: "until", Message: "until must be after since"}
	}
	return nil
}

// where returns the SQL condition and arguments of f (with ? placeholders).
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	for _, c := range []struct{ col, val string }{
		{"graph", f.Graph}, {"node", f.Node}, {"run", f.Run}, {"thread", f.Thread},
		{"tool", f.Tool}, {"kind", f.Kind}, {"principal", f.Principal}, {"status", f.Status},
	} {
		if c.val != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "time_ns >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "time_ns < ?")
		args = append(args, f.Until.UnixNano())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// The export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// CSVColumns are the columns of a CSV export, in order. They are part of
// the external contract: add at the end, never rename or reorder.
var CSVColumns = []string{
	"id", "time", "chain", "seq", "kind", "principal", "auth_method", "graph", "node", "run", "thread",
	"tool_call_id", "tool", "target", "door", "args_hash", "decision", "rule", "policy_version",
	"approval_id", "status", "error_code", "error", "rows", "bytes", "duration_ms", "exec_ms", "trace_id", "hash",
}

// Export writes the records f selects to w, oldest first (by time, then
// chain and seq), and returns how many it wrote. It streams: memory does
// not grow with the number of records.
//
// Format jsonl writes one object per line,
// {"chain","seq","prev_hash","hash","event"}, where event is the stored
// canonical event, byte for byte, so the chain can be recomputed from an
// export. Format csv writes a header of CSVColumns and one row per record;
// a cell starting with =, +, -, @, tab or carriage return is prefixed with
// ' so a spreadsheet does not run it as a formula. A filter that matches
// nothing writes nothing (csv: the header) and is not an error.
func (s *Store) Export(ctx context.Context, f Filter, format string, w io.Writer) (int, error) {
	if format != FormatJSONL && format != FormatCSV {
		return 0, &broker.Error{Code: broker.CodeInvalidRequest, Field: "format",
			Message: fmt.Sprintf("unknown export format %q; use jsonl or csv", format)}
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	rows, err := s.selectEvents(ctx, f, "chain, seq, event, prev_hash, hash")
	if err != nil {
		return 0, fmt.Errorf("recordings: export: %w", err)
	}
	defer rows.Close()

	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	if format == FormatCSV {
		cw = csv.NewWriter(bw)
		if err := cw.Write(CSVColumns); err != nil {
			return 0, err
		}
	}
	n := 0
	var chain, event, prev, hash string
	var seq int64
	cells := make([]string, len(CSVColumns))
	for rows.Next() {
		if err := rows.Scan(&chain, &seq, &event, &prev, &hash); err != nil {
			return n, fmt.Errorf("recordings: export: %w", err)
		}
		if format == FormatJSONL {
			if err := writeJSONL(bw, chain, seq, prev, hash, event); err != nil {
				return n, err
			}
		} else {
			var ev broker.Event
			if err := json.Unmarshal([]byte(event), &ev); err != nil {
				return n, fmt.Errorf("recordings: export: record %s/%d: %w", chain, seq, err)
			}
			csvCells(cells, &ev, chain, seq, hash)
			if err := cw.Write(cells); err != nil {
				return n, err
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("recordings: export: %w", err)
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// selectEvents queries columns of the records f selects, oldest first (by
// time, then chain and seq).
func (s *Store) selectEvents(ctx context.Context, f Filter, columns string) (*sql.Rows, error) {
	where, args := f.where()
	q := "SELECT " + columns + " FROM audit_events" + where + " ORDER BY time_ns, chain, seq"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return s.db.SQL().QueryContext(ctx, s.db.Rebind(q), args...)
}

func writeJSONL(w *bufio.Writer, chain string, seq int64, prev, hash, event string) error {
	c, _ := json.Marshal(chain)
	w.WriteString(`{"chain":`)
	w.Write(c)
	w.WriteString(`,"seq":`)
	w.WriteString(strconv.FormatInt(seq, 10))
	w.WriteString(`,"prev_hash":"`)
	w.WriteString(prev)
	w.WriteString(`","hash":"`)
	w.WriteString(hash)
	w.WriteString(`","event":`)
	w.WriteString(event)
	_, err := w.WriteString("}\n")
	return err
}

func csvCells(cells []string, ev *broker.Event, chain string, seq int64, hash string) {
	num := func(v int) string {
		if v == 0 {
			return ""
		}
		return strconv.Itoa(v)
	}
	ms := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	vals := []string{
		ev.ID, ev.Time.UTC().Format(time.RFC3339Nano), chain, strconv.FormatInt(seq, 10), string(ev.Kind),
		ev.Principal, ev.AuthMethod, ev.Graph, ev.Node, ev.Run, ev.Thread,
		ev.ToolCallID, ev.Tool, ev.Target, ev.Door, ev.ArgsHash, ev.Decision, ev.Rule, ev.PolicyVersion,
		ev.ApprovalID, string(ev.Status), ev.ErrorCode, ev.Error, num(ev.Rows), num(ev.Bytes), ms(ev.DurationMS), ms(ev.ExecMS), ev.TraceID, hash,
	}
	for i, v := range vals {
		cells[i] = csvSafe(v)
	}
}

// csvSafe defuses a cell a spreadsheet would read as a formula.
func csvSafe(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + v
	}
	return v
}
