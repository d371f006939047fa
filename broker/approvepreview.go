package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// Effect previews at the approve step (DESIGN §6): before a held call's
// approval request is made, the call's effect is previewed (preview.go),
// masked like its result and capped, and the request stores it; the call
// that runs on the approval must then match it (ExecuteExpecting).

// Preview bounds, when the configuration sets none.
const (
	// DefaultPreviewRows caps the sample rows of a preview.
	DefaultPreviewRows = 20
	// DefaultPreviewBytes caps the size of a preview's masked sample.
	DefaultPreviewBytes = 64 << 10
)

// ApprovalPreview is what an approval request shows of its call's effect:
// the masked Preview (Hash set over it) and the tolerance its tool declared
// for the matched run; or, when no preview could be taken, why not
// (Unavailable, a sentence safe to show) and the code of the failure
// (CodePreviewUnavailable, CodeTimeout, CodeTargetError, ...).
type ApprovalPreview struct {
	Preview
	Tolerance   Tolerance
	Unavailable string
	Code        Code
}

// Expectation is what the approved run must match: ok is false when the
// preview counted nothing (unavailable, or an HTTP preview whose count is
// unknown), and the run is then not matched.
func (p ApprovalPreview) Expectation() (Expectation, bool) {
	if p.Unavailable != "" || p.RowsAffected < 0 {
		return Expectation{}, false
	}
	return Expectation{RowsAffected: p.RowsAffected, Tolerance: p.Tolerance}, true
}

// Intact reports whether the preview is the one its hash was taken over
// (an unavailable preview has no hash).
func (p ApprovalPreview) Intact() bool {
	return p.Unavailable != "" || p.Hash != "" && p.Hash == p.Sum()
}

// approvalPreviewJSON is an ApprovalPreview with a preview, as shown: the
// Preview's members, then the tolerance.
type approvalPreviewJSON struct {
	Preview
	Tolerance *Tolerance `json:"tolerance,omitempty"`
}

// noPreviewJSON is an ApprovalPreview without a preview, as shown.
type noPreviewJSON struct {
	Unavailable string `json:"unavailable"`
	Code        Code   `json:"code,omitempty"`
}

// MarshalJSON writes {"rows_affected", "sample", "truncated", "image",
// "note", "hash", "tolerance"} or, without a preview, {"unavailable",
// "code"}.
func (p ApprovalPreview) MarshalJSON() ([]byte, error) {
	if p.Unavailable != "" {
		return json.Marshal(noPreviewJSON{Unavailable: p.Unavailable, Code: p.Code})
	}
	out := approvalPreviewJSON{Preview: p.Preview}
	if p.Tolerance != (Tolerance{}) {
		out.Tolerance = &p.Tolerance
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *ApprovalPreview) UnmarshalJSON(b []byte) error {
	var missing noPreviewJSON
	if err := json.Unmarshal(b, &missing); err != nil {
		return err
	}
	if missing.Unavailable != "" {
		*p = ApprovalPreview{Unavailable: missing.Unavailable, Code: missing.Code}
		return nil
	}
	var shown approvalPreviewJSON
	if err := json.Unmarshal(b, &shown); err != nil {
		return err
	}
	*p = ApprovalPreview{Preview: shown.Preview}
	if bytes.Equal(bytes.TrimSpace(p.Sample), []byte("null")) {
		p.Sample = nil
	}
	if shown.Tolerance != nil {
		p.Tolerance = *shown.Tolerance
	}
	return nil
}

// toolPreview is how the approval gate previews a held tool call: the
// tool's PreviewPlan run by its target's Previewer, masked with the tool's
// prepared mask and capped. It never fails: a preview that cannot be taken
// says why.
func (b *Broker) toolPreview(p *passage, pt *prepared, req Request) func(context.Context) ApprovalPreview {
	return func(ctx context.Context) ApprovalPreview {
		pv, tol, err := b.previewTool(ctx, pt, req)
		if err != nil {
			return b.noPreview(p, err)
		}
		return ApprovalPreview{Preview: pv, Tolerance: tol}
	}
}

func (b *Broker) previewTool(ctx context.Context, pt *prepared, req Request) (Preview, Tolerance, error) {
	t := pt.tool
	planner, ok := t.Spec.(PreviewPlanner)
	if !ok {
		return Preview{}, Tolerance{}, NoPreview(CodePreviewUnavailable, "tool %s has no effect preview", t.Name)
	}
	plan, err := planner.PreviewPlan(req.Args)
	if err != nil {
		return Preview{}, Tolerance{}, err
	}
	previewer, ok := b.cfg.Targets[t.Target].(Previewer)
	if !ok {
		return Preview{}, Tolerance{}, NoPreview(CodePreviewUnavailable, "target %s cannot preview a call's effect", t.Target)
	}
	plan.Op.Target, plan.Op.Comment = t.Target, opComment(req)
	raw, err := previewer.Preview(ctx, plan.Op, b.cfg.PreviewRows)
	if err != nil {
		return Preview{}, Tolerance{}, err
	}
	masked, err := raw.Masked(plan.Op, func(doc []byte) ([]byte, error) {
		out, _, err := pt.mask.Mask(doc)
		return out, err
	})
	if err != nil {
		return Preview{}, Tolerance{}, Wrap(CodeInternal, err, "no preview available: the preview could not be masked, so it is not shown")
	}
	return capSample(masked, b.cfg.PreviewBytes), plan.Tolerance, nil
}

// noPreview is the ApprovalPreview of a preview that failed with err: its
// message, masked, without the "no preview available: " every NoPreview
// starts with. An internal failure is reported (logged once, under the
// incident its message names).
func (b *Broker) noPreview(p *passage, err error) ApprovalPreview {
	e := b.report(p.snap, err, p.ev.TraceID, zap.String("step", "preview"), zap.String("tool", p.ev.Tool), zap.String("target", p.ev.Target))
	msg := strings.TrimPrefix(p.snap.live.Masker.MaskText(e.Message), "no preview available: ")
	return ApprovalPreview{Unavailable: msg, Code: e.Code}
}

// capSample keeps the longest prefix of p's sample rows that fits in max
// bytes; a sample cut short is Truncated and says so in its Note. The hash
// is taken again.
func capSample(p Preview, max int) Preview {
	if len(p.Sample) <= max {
		return p
	}
	var items []json.RawMessage
	if err := json.Unmarshal(p.Sample, &items); err != nil {
		items = nil
	}
	out := []byte{'['}
	kept := 0
	for _, it := range items {
		if len(out)+len(it)+2 > max {
			break
		}
		if kept > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
		kept++
	}
	p.Sample, p.Truncated = append(out, ']'), true
	note := fmt.Sprintf("the sample is cut to %d of its %d entries to stay within %d bytes", kept, len(items), max)
	if p.Note != "" {
		note = p.Note + "; " + note
	}
	p.Note = note
	p.Hash = p.Sum()
	return p
}

// statementPreview is how the approval gate previews a held passthrough
// statement: the proxy's Preview hook (run on a connection of the
// session's own database role), each cell masked as the proxy masks a
// DataRow of the tables the statement names, then the route's masking
// (the detectors), capped. Without the hook there is no preview.
func (b *Broker) statementPreview(p *passage, sc StatementCall) func(context.Context) ApprovalPreview {
	return func(ctx context.Context) ApprovalPreview {
		if sc.Preview == nil {
			why := "the sql passthrough does not preview statements"
			if sc.Statement.Kind == KindHTTP {
				why = "the http passthrough does not preview requests"
			}
			return ApprovalPreview{Unavailable: why, Code: CodePreviewUnavailable}
		}
		raw, err := sc.Preview(ctx)
		if err != nil {
			return b.noPreview(p, err)
		}
		masked, err := raw.Masked(Operation{SQL: &SQLOperation{}}, func(doc []byte) ([]byte, error) {
			return maskStatementRows(p.snap, sc, doc)
		})
		if err != nil {
			return b.noPreview(p, Wrap(CodeInternal, err, "no preview available: the preview could not be masked, so it is not shown"))
		}
		return ApprovalPreview{Preview: capSample(masked, b.cfg.PreviewBytes)}
	}
}

// maskStatementRows masks doc ({"rows": [{column: value}, ...]}) of a
// passthrough preview: every cell by the target's column rules for each
// table the statement names (as "table.column", also with and without the
// schema public), then the whole document with the route's masking.
func maskStatementRows(s *Snapshot, sc StatementCall, doc []byte) ([]byte, error) {
	route, ok := s.routes[PassthroughTool(sc.Statement.Kind, sc.Target)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", PassthroughTool(sc.Statement.Kind, sc.Target), errNoRoute)
	}
	var in struct {
		Rows []json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(doc, &in); err != nil {
		return nil, err
	}
	tables := qualifiedNames(sc.Statement.Tables)
	for i, row := range in.Rows {
		masked, err := rewriteMembers(row, func(column string, v json.RawMessage) json.RawMessage {
			return maskCellJSON(s.cells, sc.Target, tables, column, v)
		})
		if err != nil {
			return nil, err
		}
		in.Rows[i] = masked
	}
	cells, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out, _, err := route.Mask(cells)
	return out, err
}

// qualifiedNames lists each table as written, and also without the schema
// public or with it, as column rules may name it either way.
func qualifiedNames(tables []string) []string {
	var out []string
	for _, t := range tables {
		out = append(out, t)
		if bare, ok := strings.CutPrefix(t, "public."); ok {
			out = append(out, bare)
		} else if !strings.Contains(t, ".") {
			out = append(out, "public."+t)
		}
	}
	return out
}

// maskCellJSON masks one JSON cell value as a DataRow cell of column in
// each of tables: a string by its text, anything else by its JSON text.
// Without a CellMasker every non-null cell is withheld (fail closed).
func maskCellJSON(cm CellMasker, target string, tables []string, column string, v json.RawMessage) json.RawMessage {
	if bytes.Equal(v, []byte("null")) {
		return v
	}
	if cm == nil {
		return json.RawMessage(`"[REDACTED]"`)
	}
	text := []byte(v)
	var s string
	if json.Unmarshal(v, &s) == nil {
		text = []byte(s)
	}
	changed := false
	for _, t := range tables {
		out, ok := cm.MaskCell(target, t+"."+column, text)
		if !ok {
			continue
		}
		if out == nil {
			return json.RawMessage("null")
		}
		text, changed = out, true
	}
	if !changed {
		return v
	}
	quoted, _ := json.Marshal(string(text))
	return quoted
}

// rewriteMembers returns the JSON object obj with each member's value
// replaced by f(name, value), in the original order.
func rewriteMembers(obj json.RawMessage, f func(name string, v json.RawMessage) json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("a preview row is not a JSON object")
	}
	out := []byte{'{'}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(name)
		out = append(append(append(out, key...), ':'), f(name, v)...)
	}
	return append(out, '}'), nil
}
