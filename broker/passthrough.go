package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The passthrough statement kinds.
const (
	KindSQL  = "sql"
	KindHTTP = "http"
)

// The statement classes a SQL statement is classified into (DESIGN §9).
const (
	ClassRead  = "read"
	ClassWrite = "write"
	ClassDDL   = "ddl"
	ClassOther = "other"
)

// Statement is one raw-protocol statement or request as a passthrough proxy
// classified it. The proxy only describes; the broker and policy decide.
type Statement struct {
	// Kind is KindSQL or KindHTTP.
	Kind string `json:"kind"`
	// Class is one of ClassRead, ClassWrite, ClassDDL, ClassOther (SQL).
	Class string `json:"class,omitempty"`
	// Command is the statement's command tag, e.g. "SELECT", "SET".
	Command string `json:"command,omitempty"`
	// Tables are the relations the statement names, schema-qualified
	// where the text qualified them, lower case.
	Tables []string `json:"tables,omitempty"`
	// Functions are the functions, casts and operators the statement
	// calls that are not on the proxy's list of side-effect-free built-ins
	// ("ts_stat", "util.slugify", "regclass", "operator ==="), and markers
	// such as "copy file or program". Policy refuses them unless the
	// node's passthrough entry lists them or a rule allows the statement.
	Functions []string `json:"functions,omitempty"`
	// Text is the statement text (SQL). It is masked before it is recorded
	// or shown to approvers.
	Text string `json:"text,omitempty"`
	// Method and Path describe an HTTP request; Path is the decoded path
	// relative to the target.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Unclassified is why the proxy could not classify the statement ("the
	// parser failed: ..."); such a statement is always refused.
	Unclassified string `json:"unclassified,omitempty"`
}

// PlainIdentifier reports whether a part of a name in Statement.Functions
// is written without double quotes: [a-z_][a-z0-9_$]*. Other parts are
// double-quoted, inner quotes doubled, as PostgreSQL spells them.
func PlainIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}

// StatementCall is one statement handed to the broker by a passthrough
// proxy.
type StatementCall struct {
	Caller Caller
	// Door is the front door: "pgwire" or "httpproxy".
	Door   string
	Target string
	// Session is the session id OpenSession returned ("" for HTTP).
	Session   string
	Statement Statement
	// ApprovalID is the approval the caller resumes, "" when none.
	ApprovalID string
	// Done are outcomes of earlier statements of the session not recorded
	// yet: this statement's record carries them (outcomes.go).
	Done []StatementOutcome
	// Preview, when the proxy can, previews the statement's effect for
	// approvers (called only when the statement is held for a new
	// approval): it runs the statement in a transaction that is always
	// rolled back, on a connection of the session's own database role,
	// never the target's admin login (postgres.PreviewConn). It returns the
	// rows unmasked; the broker masks them. nil: no preview.
	Preview func(ctx context.Context) (Preview, error)
}

// StatementDecision is the broker's answer to an allowed statement.
type StatementDecision struct {
	// ID names the statement's audit record; StatementDone refers to it.
	ID       string
	Decision Decision
}

// StatementRequest is what passthrough policy decides on.
type StatementRequest struct {
	Caller    Caller
	Target    string
	Statement Statement
	Now       time.Time
}

// PassthroughDecider is an optional ability of the broker's Policy: raw
// protocol policy (graphs.<g>.nodes.<n>.passthrough.<target>). Without
// it, every passthrough session is refused.
type PassthroughDecider interface {
	// DecideStatement decides one statement. An error means policy could
	// not answer; the statement is refused.
	DecideStatement(ctx context.Context, req StatementRequest) (Decision, error)
	// MayConnect reports whether the caller's node has a passthrough
	// entry for the target.
	MayConnect(c Caller, target string) bool
}

// CellMasker is an optional ability of the broker's Masker: masking one
// DataRow cell of a passthrough result. column is "table.column". A nil
// result with true means the cell becomes SQL NULL.
type CellMasker interface {
	MaskCell(target, column string, value []byte) ([]byte, bool)
}

// ColumnMasker is an optional ability of a CellMasker: the masking of one
// result column resolved once for all its cells. nil means no cell of the
// column can change; shortInteger vouches that every cell is an
// optionally signed integer of at most 10 digits, or t or f.
type ColumnMasker interface {
	MaskColumn(target, column string, shortInteger bool) func(value []byte) ([]byte, bool)
}

// Session describes a passthrough session being opened.
type Session struct {
	Caller Caller
	Door   string
	Target string
	// Remote is the client's address, for the audit record.
	Remote string
	// Detail is recorded as is (e.g. the startup parameters forwarded).
	Detail map[string]any
}

// SessionStats is how a passthrough session ended.
type SessionStats struct {
	Statements int
	Denied     int
	Duration   time.Duration
	// Reason is why the session ended ("client closed", "grant revoked").
	Reason string
	// Done are outcomes of the session's statements not recorded yet: the
	// close record carries them (outcomes.go).
	Done []StatementOutcome
}

// StatementOutcome is what a proxy reports once an allowed statement ran.
type StatementOutcome struct {
	ID       string
	Caller   Caller
	Door     string
	Target   string
	Session  string
	Rows     int
	Bytes    int
	Duration time.Duration
	// Masked counts the cells or values masked in the result.
	Masked int
	// Err is the target's error, nil when the statement succeeded. Its
	// text is masked before it is recorded.
	Err error
}

// OpenSession authorizes a passthrough session and records it. It refuses
// an unidentified caller, a node without a passthrough entry for the
// target, and (fail closed) any session it cannot record.
func (b *Broker) OpenSession(ctx context.Context, s Session) (string, error) {
	p := b.begin(&sessionOpen, s.Caller, s.Door)
	p.ev.Target, p.ev.Detail = s.Target, map[string]any{}
	for k, v := range s.Detail {
		p.ev.Detail[k] = v
	}
	if s.Remote != "" {
		p.ev.Detail["remote"] = s.Remote
	}
	err := p.identified()
	if err == nil {
		err = p.mayConnect(s.Target)
	}
	if err = b.finish(p, err); err == nil {
		p.ev.Status = StatusOK
	}
	if rerr := b.record(ctx, p); rerr != nil {
		return "", rerr
	}
	if err != nil {
		return "", err
	}
	return p.ev.ID, nil
}

// mayConnect refuses a caller whose node has no passthrough entry for the
// target.
func (p *passage) mayConnect(target string) error {
	c := p.caller
	if p.snap.pass == nil {
		return Errorf(CodeForbidden, "passthrough is not enabled: the policy engine has no passthrough rules")
	}
	if _, err := p.snap.callerNode(c); err != nil {
		return err
	}
	if !p.snap.pass.MayConnect(c, target) {
		return Errorf(CodeForbidden, "node %q of graph %q has no passthrough entry for target %q, so it may not connect", c.Node, c.Graph, target)
	}
	return nil
}

// CloseSession records the end of a passthrough session. A record failure
// is logged: the session is over either way.
func (b *Broker) CloseSession(ctx context.Context, id string, c Caller, door, target string, st SessionStats) {
	now := b.now()
	ev := Event{ID: newID("ses", now), Time: now, Kind: EventSessionClosed, Door: door, Target: target, Status: StatusOK,
		DurationMS: float64(st.Duration.Microseconds()) / 1000,
		Detail:     map[string]any{"session": id, "statements": st.Statements, "denied": st.Denied, "reason": st.Reason}}
	fillCaller(&ev, c)
	foldOutcomes(b.live.Load().live.Masker, ev.Detail, st.Done)
	b.recordAfter(ctx, ev, "passthrough session close")
}

// PassthroughTool is the synthetic tool name passthrough statements carry
// in approvals and audit records: "pg:<target>" or "http:<target>".
func PassthroughTool(kind, target string) string {
	if kind == KindHTTP {
		return "http:" + target
	}
	return "pg:" + target
}

// Statement runs one passthrough statement through the gate: verified
// caller, passthrough policy, approval when policy asks for one, and a
// durable audit record. It answers nil error only when the statement may
// run; every refusal is an *Error whose message says why. Nothing is
// executed here: the proxy executes an allowed statement and reports the
// outcome with StatementDone.
func (b *Broker) Statement(ctx context.Context, sc StatementCall) (StatementDecision, error) {
	d, _, err := b.decideStatement(ctx, sc, false)
	return d, err
}

// StatementDeferred is Statement for a proxy that overlaps the audit write
// with the execution of a plain read: for an allowed statement of class
// read that calls nothing off the built-in function lists and needed no
// approval, it returns before the record is durable, with commit, which
// the proxy must call and see succeed before it releases any of the
// statement's results (DESIGN §8: the record is durable before the result
// is returned). Every other statement, and every refusal, is recorded
// before it returns, and commit is nil.
func (b *Broker) StatementDeferred(ctx context.Context, sc StatementCall) (StatementDecision, func(context.Context) error, error) {
	return b.decideStatement(ctx, sc, true)
}

func (b *Broker) decideStatement(ctx context.Context, sc StatementCall, deferRead bool) (StatementDecision, func(context.Context) error, error) {
	st := sc.Statement
	sctx, sp := b.statementSpan(ctx, sc)
	p := b.begin(&statementCall, sc.Caller, sc.Door)
	p.ev.Target, p.ev.Tool = sc.Target, PassthroughTool(st.Kind, sc.Target)
	p.ev.TraceID = traceOf(sctx)
	dec, err := b.statement(sctx, p, sc)
	err = b.finish(p, err)
	sp.passageDone(&p.ev)
	d := StatementDecision{ID: p.ev.ID, Decision: dec}
	commit := func(ctx context.Context) error { return b.recordTraced(sp.into(ctx), p) }
	if err == nil && deferRead && dec.Effect == EffectAllow && st.Kind == KindSQL && st.Class == ClassRead && len(st.Functions) == 0 {
		sp.end(nil)
		return d, commit, nil
	}
	rerr := commit(ctx)
	sp.end(rerr)
	if rerr != nil {
		return StatementDecision{ID: p.ev.ID}, nil, rerr
	}
	return d, nil, err
}

// statement is a statement's way through the gate.
func (b *Broker) statement(ctx context.Context, p *passage, sc StatementCall) (Decision, error) {
	st := sc.Statement
	p.ev.Detail = statementDetail(p.snap.live.Masker, sc)
	foldOutcomes(p.snap.live.Masker, p.ev.Detail, sc.Done)
	p.hashArgs(argsJSON(st))
	if err := p.identified(); err != nil {
		return Decision{}, err
	}
	if err := p.mayConnect(sc.Target); err != nil {
		return Decision{}, err
	}
	if st.Unclassified != "" {
		p.ev.Decision, p.ev.Rule = string(EffectDeny), "unclassified"
		return Decision{}, Errorf(CodeForbidden, "the statement was refused: %s", p.snap.live.Masker.MaskText(st.Unclassified))
	}
	pctx, sp := b.startSpan(ctx, SpanPolicy)
	dec, err := p.snap.pass.DecideStatement(pctx, StatementRequest{Caller: p.caller, Target: sc.Target, Statement: st, Now: b.now()})
	err = p.decided(dec, err, fmt.Sprintf("this %s for node %q on target %q", describe(st), p.caller.Node, sc.Target))
	if sp.end(err); err != nil {
		return Decision{}, err
	}
	if dec.Effect == EffectApprove {
		actx, sp := b.startSpan(ctx, SpanApproval)
		err := b.approveStatement(actx, p, sc, dec)
		sp.approved(p.ev.ApprovalID, err)
		return dec, err
	}
	return dec, nil
}

// statementDetail is what a statement's record carries beside the common
// fields, its text and path masked.
func statementDetail(m Masker, sc StatementCall) map[string]any {
	st := sc.Statement
	detail := map[string]any{"kind": st.Kind}
	if sc.Session != "" {
		detail["session"] = sc.Session
	}
	if st.Class != "" {
		detail["class"] = st.Class
	}
	if st.Command != "" {
		detail["command"] = st.Command
	}
	if len(st.Tables) > 0 {
		detail["tables"] = st.Tables
	}
	if len(st.Functions) > 0 {
		detail["functions"] = st.Functions
	}
	if st.Method != "" {
		detail["method"], detail["path"] = st.Method, m.MaskText(st.Path)
	}
	if st.Text != "" {
		detail["statement"] = m.MaskText(st.Text)
	}
	return detail
}

// approveStatement holds an approve decision at the approval gate. The
// statement text is the approval's arguments, so repeating the same
// statement finds the same request, and an approval runs it exactly once:
// it is marked used before the statement runs.
func (b *Broker) approveStatement(ctx context.Context, p *passage, sc StatementCall, dec Decision) error {
	tool := &Tool{Name: p.ev.Tool, Target: sc.Target, Description: "passthrough " + sc.Statement.Kind + " on " + sc.Target}
	masked := map[string]any{}
	for k, v := range statementArgs(sc.Statement) {
		if s, ok := v.(string); ok {
			v = p.snap.live.Masker.MaskText(s)
		}
		masked[k] = v
	}
	_, run, err := b.approve(ctx, p, ApprovalRequest{Caller: p.caller, Tool: tool, Args: masked, ArgsHash: p.ev.ArgsHash, Decision: dec,
		ResumeID: sc.ApprovalID, Preview: b.statementPreview(p, sc)})
	if !run || err != nil {
		return err
	}
	if b.completer == nil {
		return nil
	}
	// The statement runs now; a repeat is a new request.
	if err := b.completer.Complete(context.WithoutCancel(ctx), p.ev.ApprovalID, json.RawMessage(`{"status":"executed"}`), nil); err != nil {
		return Wrap(CodeInternal, fmt.Errorf("approval %s: %w", p.ev.ApprovalID, err), "the approval could not be marked as used, so the statement is refused")
	}
	return nil
}

func statementArgs(st Statement) map[string]any {
	if st.Kind == KindHTTP {
		return map[string]any{"method": st.Method, "path": st.Path}
	}
	return map[string]any{"statement": st.Text}
}

// argsJSON is json.Marshal(statementArgs(st)), the bytes the args hash
// covers, without building the map for a SQL statement.
func argsJSON(st Statement) []byte {
	if st.Kind == KindHTTP {
		b, _ := json.Marshal(statementArgs(st))
		return b
	}
	text, _ := json.Marshal(st.Text)
	b := make([]byte, 0, len(text)+14)
	b = append(b, `{"statement":`...)
	b = append(b, text...)
	return append(b, '}')
}

func describe(st Statement) string {
	if st.Kind == KindHTTP {
		return st.Method + " request"
	}
	if st.Class == "" {
		return "statement"
	}
	return st.Class + " statement (" + strings.ToUpper(st.Command) + ")"
}

// StatementDone records how an allowed statement ended: rows, bytes,
// duration and the (masked) error. The result has already reached the
// client, so a record failure is logged, not returned.
func (b *Broker) StatementDone(ctx context.Context, o StatementOutcome) {
	now := b.now()
	ev := Event{ID: newID("stm", now), Time: now, Kind: EventStatement, Door: o.Door, Target: o.Target,
		Status: StatusOK, Rows: o.Rows, Bytes: o.Bytes, ExecMS: msOf(o.Duration),
		Detail: map[string]any{"phase": "done", "statement_id": o.ID}}
	if o.Session != "" {
		ev.Detail["session"] = o.Session
	}
	if o.Masked > 0 {
		ev.Masked = MaskStats{"cells": o.Masked}
	}
	fillCaller(&ev, o.Caller)
	if o.Err != nil {
		ev.Status, ev.ErrorCode, ev.Error = StatusError, string(CodeTargetError), b.live.Load().live.Masker.MaskText(o.Err.Error())
	}
	b.recordAfter(ctx, ev, "passthrough statement outcome")
}

// MaskCell masks one DataRow cell with the target's column rules and the
// detectors. Without a cell-masking Masker every non-empty cell is
// replaced (fail closed).
func (b *Broker) MaskCell(target, column string, value []byte) ([]byte, bool) {
	if cm := b.live.Load().cells; cm != nil {
		return cm.MaskCell(target, column, value)
	}
	return nil, true
}

// MaskColumn resolves the masking of one result column once (a reload
// applies from the next result on): MaskCell for each of its cells, or
// nil when none can change. Without a cell-masking Masker every non-empty
// cell is replaced (fail closed).
func (b *Broker) MaskColumn(target, column string, shortInteger bool) func([]byte) ([]byte, bool) {
	cm := b.live.Load().cells
	switch c := cm.(type) {
	case nil:
		return func([]byte) ([]byte, bool) { return nil, true }
	case ColumnMasker:
		return c.MaskColumn(target, column, shortInteger)
	}
	return func(v []byte) ([]byte, bool) { return cm.MaskCell(target, column, v) }
}

// MaskText masks free text (database error messages) with the detectors.
func (b *Broker) MaskText(s string) string { return b.live.Load().live.Masker.MaskText(s) }

// errNoRoute is a passthrough response on a route the live configuration
// does not serve.
var errNoRoute = errors.New("no masking is prepared for this passthrough route")

// MaskResponse masks a passthrough JSON response with the masking prepared
// for its route (the synthetic tool "<kind>:<target>": the target's rules
// and the detectors). A route the live configuration does not serve is an
// error: the response is withheld.
func (b *Broker) MaskResponse(kind, target string, doc []byte) ([]byte, MaskStats, error) {
	m, ok := b.live.Load().routes[PassthroughTool(kind, target)]
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", PassthroughTool(kind, target), errNoRoute)
	}
	return m.Mask(doc)
}
