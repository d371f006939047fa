package broker

import "time"

// Folded outcomes. A passthrough session hands the outcomes of its
// statements that ran (rows, bytes, time, error) to the record of its next
// statement (StatementCall.Done) or to its close record
// (SessionStats.Done) instead of writing a record for each, so a busy
// session writes one durable record per statement. Each folded outcome is
// an element of the record's detail "done" and names its statement's
// record by statement_id; being inside a record, it is covered by the
// chain's hash like the rest. An outcome is never held back from the
// client: a statement's decision is durable before its results are
// released, its outcome follows with the next record.

// outcomeDetail is one folded outcome, with its error masked.
func outcomeDetail(m Masker, o StatementOutcome) map[string]any {
	d := map[string]any{"statement_id": o.ID, "status": string(StatusOK), "rows": o.Rows, "bytes": o.Bytes,
		"exec_ms": float64(o.Duration.Microseconds()) / 1000}
	if o.Masked > 0 {
		d["masked_cells"] = o.Masked
	}
	if o.Err != nil {
		d["status"], d["error_code"], d["error"] = string(StatusError), string(CodeTargetError), m.MaskText(o.Err.Error())
	}
	return d
}

// foldOutcomes adds outcomes to a record's detail.
func foldOutcomes(m Masker, detail map[string]any, outcomes []StatementOutcome) {
	if len(outcomes) == 0 {
		return
	}
	done := make([]map[string]any, len(outcomes))
	for i, o := range outcomes {
		done[i] = outcomeDetail(m, o)
	}
	detail["done"] = done
}

// RecordedOutcome is a statement's outcome as an audit record holds it.
type RecordedOutcome struct {
	// StatementID is the id of the statement's decision record.
	StatementID string
	Status      Status
	ErrorCode   string
	Error       string
	Rows, Bytes int
	ExecMS      float64
}

// Outcomes returns the statement outcomes ev holds: its own when it is a
// statement's outcome record (detail phase "done"), and those folded into
// it (detail "done"). ev may come from a Recorder or from the store
// (numbers decoded as float64).
func Outcomes(ev Event) []RecordedOutcome {
	var out []RecordedOutcome
	if ev.Kind == EventStatement && ev.Detail["phase"] == "done" {
		id, _ := ev.Detail["statement_id"].(string)
		out = append(out, RecordedOutcome{StatementID: id, Status: ev.Status, ErrorCode: ev.ErrorCode, Error: ev.Error,
			Rows: ev.Rows, Bytes: ev.Bytes, ExecMS: ev.ExecMS})
	}
	var done []map[string]any
	switch d := ev.Detail["done"].(type) {
	case []map[string]any:
		done = d
	case []any:
		for _, e := range d {
			if m, ok := e.(map[string]any); ok {
				done = append(done, m)
			}
		}
	}
	for _, d := range done {
		str := func(k string) string { s, _ := d[k].(string); return s }
		out = append(out, RecordedOutcome{StatementID: str("statement_id"), Status: Status(str("status")), ErrorCode: str("error_code"),
			Error: str("error"), Rows: int(number(d["rows"])), Bytes: int(number(d["bytes"])), ExecMS: number(d["exec_ms"])})
	}
	return out
}

// number reads a JSON number as a Recorder (int, float64) or the store
// (float64) hands it over.
func number(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

// msOf is d in milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
