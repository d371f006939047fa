package tools

import (
	"encoding/json"
	"strings"

	"github.com/toolgate/toolgate/broker"

	"github.com/toolgate/toolgate/internal/config"
)

// Keys of a preview declaration.
var (
	previewKeys    = []string{"sql", "http", "tolerance"}
	previewSQLKeys = []string{"statement", "args"}
	toleranceKeys  = []string{"rows", "percent"}
)

// previewSpec is a checked preview declaration: how an approver sees what
// a call would change.
type previewSpec struct {
	// off is the declared reason of a tool that opts out ("preview":
	// false); "" otherwise.
	off string
	// sql is a declared preview query (SQL tools): it replaces the dry
	// run of the tool's statement.
	sql *sqlSpec
	// http is a declared preview request (HTTP tools).
	http      *httpSpec
	tolerance broker.Tolerance
}

// parsePreview checks "preview" and "preview_reason". op is "sql" or
// "http" (the tool's operation; "" when it has none or both).
func parsePreview(ps *problems, top map[string]json.RawMessage, op, targetKind string, args argNames) *previewSpec {
	raw, has := top["preview"]
	_, hasReason := top["preview_reason"]
	reason, isString := stringField(ps, top, "", "preview_reason", false)
	if isString && strings.TrimSpace(reason) == "" {
		ps.addf("/preview_reason", "must not be empty: say why the tool's effect cannot be previewed")
	}
	switch {
	case !has:
		if hasReason {
			ps.addf("/preview_reason", `goes with "preview": false, where it says why the tool has no preview`)
		}
		return nil
	case jsonKind(raw) == "a boolean":
		var on bool
		_ = strict(raw, &on)
		if on {
			ps.addf("/preview", `"preview": true is not needed: SQL tools preview by default; write false to opt out, or an object to declare a preview query or request`)
			return nil
		}
		if !hasReason {
			ps.addf("/preview", `"preview": false needs "preview_reason": say why this tool's effect cannot be previewed (for example, it calls a function whose effect a rollback does not undo), so approvers know why they see none`)
		}
		if strings.TrimSpace(reason) == "" {
			reason = "no reason is given"
		}
		return &previewSpec{off: reason}
	case jsonKind(raw) != "an object":
		ps.addf("/preview", "must be false or an object, got %s", jsonKind(raw))
		return nil
	}
	if hasReason {
		ps.addf("/preview_reason", `goes with "preview": false only; a declared preview needs no reason`)
	}
	fields, ok := object(ps, raw, "/preview", previewKeys)
	if !ok {
		return nil
	}
	pv := &previewSpec{}
	if rawTol, ok := fields["tolerance"]; ok {
		pv.tolerance = parseTolerance(ps, rawTol)
	}
	switch op {
	case "sql":
		pv.sql = parsePreviewSQL(ps, fields, targetKind, args)
	case "http":
		pv.http = parsePreviewHTTP(ps, fields, args)
	}
	return pv
}

func parsePreviewSQL(ps *problems, fields map[string]json.RawMessage, targetKind string, args argNames) *sqlSpec {
	if targetKind == config.KindSQLite {
		ps.addf("/preview", `sqlite targets have no effect previews: remove "preview", or write "preview": false with a "preview_reason"`)
	}
	if _, ok := fields["http"]; ok {
		ps.addf("/preview/http", `an sql tool declares its preview query under "sql"`)
	}
	raw, ok := fields["sql"]
	if !ok {
		return nil
	}
	q := parseSQL(ps, raw, "/preview/sql", previewSQLKeys, args)
	if q != nil && q.statement != "" {
		switch strings.ToLower(firstWord(q.statement)) {
		case "select", "with", "values", "table":
		default:
			ps.addf("/preview/sql/statement", "a preview query reads the rows the statement would change: start it with SELECT")
		}
	}
	return q
}

func parsePreviewHTTP(ps *problems, fields map[string]json.RawMessage, args argNames) *httpSpec {
	if _, ok := fields["sql"]; ok {
		ps.addf("/preview/sql", `an http tool declares its preview request under "http"`)
	}
	if _, ok := fields["tolerance"]; ok {
		ps.addf("/preview/tolerance", "http tools have no matched run (the approved request is sent as approved), so a tolerance has nothing to compare")
	}
	raw, ok := fields["http"]
	if !ok {
		ps.addf("/preview", `an http tool's preview needs "http": the GET request whose answer shows what the call would change`)
		return nil
	}
	req := parseHTTP(ps, raw, "/preview/http", args)
	if req != nil && req.method != "" && req.method != "GET" {
		ps.addf("/preview/http/method", "a preview request must be a GET: it is sent before anyone approves, so it must change nothing")
	}
	return req
}

func parseTolerance(ps *problems, raw json.RawMessage) broker.Tolerance {
	var tol broker.Tolerance
	fields, ok := object(ps, raw, "/preview/tolerance", toleranceKeys)
	if !ok {
		return tol
	}
	if v, ok := fields["rows"]; ok {
		if rows, ok := wholeNumber(v, 64); ok {
			tol.Rows = rows
		} else {
			ps.addf("/preview/tolerance/rows", "must be a whole number ≥ 0: how many rows more or fewer than previewed the approved run may change")
		}
	}
	if v, ok := fields["percent"]; ok {
		var n json.Number
		pct, err := 0.0, strict(v, &n)
		if err == nil {
			pct, err = n.Float64()
		}
		if err != nil || pct < 0 || pct > 100 {
			ps.addf("/preview/tolerance/percent", "must be a number from 0 to 100: the share of the previewed row count the approved run may differ by")
		} else {
			tol.Percent = pct
		}
	}
	return tol
}

// firstWord is the first keyword of a statement, after white space,
// comments and opening parentheses.
func firstWord(stmt string) string {
	s := stmt
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v(")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return ""
			}
			s = s[i+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
			if end < 0 {
				return s
			}
			return s[:end]
		}
	}
}

// PreviewPlan says how a call is previewed (broker.PreviewPlanner): the
// tool's declared preview query or request bound to args, else for an SQL
// tool its own statement (a dry run), with the declared tolerance. A tool
// that opts out, and an HTTP tool without a preview request, answer a
// preview_unavailable error saying why.
func (s *Spec) PreviewPlan(args map[string]any) (broker.PreviewPlan, error) {
	var pv previewSpec
	if s != nil && s.preview != nil {
		pv = *s.preview
	}
	switch {
	case s == nil || s.sql == nil && s.http == nil:
		return broker.PreviewPlan{}, broker.Errorf(broker.CodeInternal, "the tool has no compiled operation")
	case pv.off != "":
		return broker.PreviewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "the tool opts out: %s", pv.off)
	case s.http != nil && pv.http == nil:
		return broker.PreviewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "the tool declares no preview request")
	case s.http != nil:
		req, err := pv.http.bind(args)
		if err != nil {
			return broker.PreviewPlan{}, err
		}
		return broker.PreviewPlan{Op: broker.Operation{HTTP: req}}, nil
	case pv.sql != nil:
		q, err := pv.sql.bind(args)
		if err != nil {
			return broker.PreviewPlan{}, err
		}
		return broker.PreviewPlan{Op: broker.Operation{SQL: q}, Tolerance: pv.tolerance}, nil
	}
	op, err := s.Operation(args)
	if err != nil {
		return broker.PreviewPlan{}, err
	}
	return broker.PreviewPlan{Op: op, Tolerance: pv.tolerance}, nil
}

var _ broker.PreviewPlanner = (*Spec)(nil)

// PreviewSQL returns the declared preview query and the argument names its
// $n bind, or ok false when the tool declares none.
func (s *Spec) PreviewSQL() (statement string, args []string, ok bool) {
	if s == nil || s.preview == nil || s.preview.sql == nil {
		return "", nil, false
	}
	return s.preview.sql.statement, append([]string(nil), s.preview.sql.args...), true
}
