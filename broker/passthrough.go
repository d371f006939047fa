package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
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

// PassthroughDecider is an optional ability of the broker's Decider: raw
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
	cfg := b.config()
	ev := Event{ID: newID("ses"), Time: cfg.Now(), Kind: EventSessionOpened, Door: s.Door, Target: s.Target, Detail: map[string]any{}}
	for k, v := range s.Detail {
		ev.Detail[k] = v
	}
	if s.Remote != "" {
		ev.Detail["remote"] = s.Remote
	}
	err := b.mayConnect(cfg, s.Caller, s.Target)
	fillCaller(&ev, s.Caller)
	if err != nil {
		ev.Status, ev.ErrorCode, ev.Error = StatusDenied, string(CodeOf(err)), cfg.Masker.MaskText(err.Error())
	} else {
		ev.Status = StatusOK
	}
	if rerr := cfg.Recorder.Record(ctx, ev); rerr != nil {
		cfg.Logger.Error("audit record failed; refusing the session", zap.String("session", ev.ID), zap.Error(rerr))
		return "", Wrap(CodeAuditUnavailable, rerr, "the audit store is unavailable, so the passthrough session is refused; retry later")
	}
	if err != nil {
		return "", err
	}
	return ev.ID, nil
}

func (b *Broker) mayConnect(cfg *Config, c Caller, target string) error {
	if !c.verified {
		return Errorf(CodeUnauthenticated, "caller was not identified")
	}
	pd, ok := cfg.Policy.(PassthroughDecider)
	if !ok {
		return Errorf(CodeForbidden, "passthrough is not enabled: the policy engine has no passthrough rules")
	}
	if !pd.MayConnect(c, target) {
		return Errorf(CodeForbidden, "node %q of graph %q has no passthrough entry for target %q, so it may not connect", c.Node, c.Graph, target)
	}
	return nil
}

// CloseSession records the end of a passthrough session. A record failure
// is logged: the session is over either way.
func (b *Broker) CloseSession(ctx context.Context, id string, c Caller, door, target string, st SessionStats) {
	cfg := b.config()
	ev := Event{ID: newID("ses"), Time: cfg.Now(), Kind: EventSessionClosed, Door: door, Target: target, Status: StatusOK,
		DurationMS: float64(st.Duration.Microseconds()) / 1000,
		Detail:     map[string]any{"session": id, "statements": st.Statements, "denied": st.Denied, "reason": st.Reason}}
	fillCaller(&ev, c)
	if err := cfg.Recorder.Record(context.WithoutCancel(ctx), ev); err != nil {
		cfg.Logger.Error("passthrough session close not recorded", zap.String("session", id), zap.Error(err))
	}
}

func fillCaller(ev *Event, c Caller) {
	ev.Principal, ev.AuthMethod, ev.TokenID = c.Principal.Subject, string(c.Principal.Method), c.Principal.TokenID
	ev.Graph, ev.Node, ev.Run, ev.Thread, ev.ToolCallID = c.Graph, c.Node, c.Run, c.Thread, c.ToolCallID
}

// PassthroughTool is the synthetic tool name passthrough statements carry
// in approvals and audit records: "pg:<target>" or "http:<target>".
func PassthroughTool(kind, target string) string {
	if kind == KindHTTP {
		return "http:" + target
	}
	return "pg:" + target
}

// Statement runs one passthrough statement through the pipeline: verified
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
	cfg := b.config()
	start := cfg.Now()
	st := sc.Statement
	ev := Event{ID: newID("stm"), Time: start, Kind: EventStatement, Door: sc.Door, Target: sc.Target,
		Tool: PassthroughTool(st.Kind, sc.Target)}
	dec, err := b.statement(ctx, cfg, sc, &ev)
	ev.DurationMS = float64(cfg.Now().Sub(start).Microseconds()) / 1000
	if err != nil {
		e, incident := AsError(err)
		if incident != "" {
			cfg.Logger.Error("statement failed", zap.String("incident", incident), zap.String("target", sc.Target), zap.String("error", cfg.Masker.MaskText(e.Cause.Error())))
		}
		ev.ErrorCode, ev.Error = string(e.Code), cfg.Masker.MaskText(e.Message)
		if ev.Status == "" {
			ev.Status = StatusDenied
		}
		err = e
	}
	record := func(ctx context.Context) error {
		if rerr := cfg.Recorder.Record(ctx, ev); rerr != nil {
			cfg.Logger.Error("audit record failed; refusing the statement", zap.String("statement", ev.ID), zap.Error(rerr))
			return Wrap(CodeAuditUnavailable, rerr, "the audit store is unavailable, so the statement is refused; retry later")
		}
		return nil
	}
	if err == nil && deferRead && dec.Effect == EffectAllow && st.Kind == KindSQL && st.Class == ClassRead && len(st.Functions) == 0 {
		return StatementDecision{ID: ev.ID, Decision: dec}, record, nil
	}
	if rerr := record(ctx); rerr != nil {
		return StatementDecision{ID: ev.ID}, nil, rerr
	}
	return StatementDecision{ID: ev.ID, Decision: dec}, nil, err
}

func (b *Broker) statement(ctx context.Context, cfg *Config, sc StatementCall, ev *Event) (Decision, error) {
	c, st := sc.Caller, sc.Statement
	fillCaller(ev, c)
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
		detail["method"], detail["path"] = st.Method, cfg.Masker.MaskText(st.Path)
	}
	if st.Text != "" {
		detail["statement"] = cfg.Masker.MaskText(st.Text)
	}
	ev.Detail = detail
	sum := sha256.Sum256(argsJSON(st))
	ev.ArgsHash = hex.EncodeToString(sum[:])

	if !c.verified {
		return Decision{}, Errorf(CodeUnauthenticated, "caller was not identified")
	}
	if err := b.mayConnect(cfg, c, sc.Target); err != nil {
		return Decision{}, err
	}
	if st.Unclassified != "" {
		ev.Decision, ev.Rule = string(EffectDeny), "unclassified"
		return Decision{}, Errorf(CodeForbidden, "the statement was refused: %s", cfg.Masker.MaskText(st.Unclassified))
	}
	pd := cfg.Policy.(PassthroughDecider) // mayConnect checked it
	dec, err := pd.DecideStatement(ctx, StatementRequest{Caller: c, Target: sc.Target, Statement: st, Now: cfg.Now()})
	if err != nil {
		if CodeOf(err) == CodeInternal {
			return Decision{}, Wrap(CodeForbidden, err, "policy could not decide this statement, so it is refused")
		}
		return Decision{}, err
	}
	ev.Decision, ev.Rule, ev.PolicyVersion = string(dec.Effect), dec.Rule, dec.PolicyVersion
	switch dec.Effect {
	case EffectAllow:
		return dec, nil
	case EffectApprove:
		return dec, b.approveStatement(ctx, cfg, sc, dec, statementArgs(st), ev)
	default:
		msg := fmt.Sprintf("policy %s denies this %s for node %q on target %q", dec.Rule, describe(st), c.Node, sc.Target)
		if dec.Reason != "" {
			msg += ": " + dec.Reason
		}
		return Decision{}, Errorf(CodeForbidden, "%s", cfg.Masker.MaskText(msg))
	}
}

// approveStatement holds an approve decision at the approval gate. The
// statement text is the approval's arguments, so repeating the same
// statement finds the same request, and an approval runs it exactly once.
func (b *Broker) approveStatement(ctx context.Context, cfg *Config, sc StatementCall, dec Decision, args map[string]any, ev *Event) error {
	tool := &Tool{Name: ev.Tool, Target: sc.Target, Description: "passthrough " + sc.Statement.Kind + " on " + sc.Target}
	if cfg.Approvals == nil {
		return Errorf(CodeForbidden, "this statement needs approval (%s) but no approval channel is configured, so it is refused", dec.Rule)
	}
	masked := map[string]any{}
	for k, v := range args {
		if s, ok := v.(string); ok {
			v = cfg.Masker.MaskText(s)
		}
		masked[k] = v
	}
	out, err := cfg.Approvals.Await(ctx, ApprovalRequest{Caller: sc.Caller, Tool: tool, Args: masked, ArgsHash: ev.ArgsHash, Decision: dec, ResumeID: sc.ApprovalID})
	if err != nil {
		return err
	}
	ev.ApprovalID = out.ID
	switch out.Status {
	case ApprovalApproved:
		if rec, ok := cfg.Approvals.(ApprovalRecorder); ok {
			// The statement runs now; a repeat is a new request.
			if cerr := rec.Complete(context.WithoutCancel(ctx), out.ID, json.RawMessage(`{"status":"executed"}`), nil); cerr != nil {
				cfg.Logger.Error("approval outcome not recorded", zap.String("approval", out.ID), zap.Error(cerr))
				return Wrap(CodeInternal, cerr, "the approval could not be marked as used, so the statement is refused")
			}
		}
		return nil
	case ApprovalConsumed:
		return Errorf(CodeApprovalDenied, "approval %s was already used by an earlier run of this statement; it runs once per approval. Send the statement again to request a new approval", out.ID)
	case ApprovalPending:
		ev.Status = StatusPending
		return Errorf(CodeApprovalPending, "the statement was NOT run: it is waiting for approval %s (until %s); send it again once it is approved", out.ID, out.ExpiresAt.UTC().Format(time.RFC3339))
	case ApprovalExpired:
		return Errorf(CodeApprovalExpired, "approval %s expired before a decision; the statement was not run", out.ID)
	case ApprovalStale:
		return Errorf(CodeApprovalStale, "approval %s no longer counts because its rule changed; the statement was not run. Send it again to request a new approval", out.ID)
	default:
		msg := fmt.Sprintf("approval %s was %s; the statement was not run", out.ID, out.Status)
		if out.Reason != "" {
			msg += ": " + out.Reason
		}
		return &Error{Code: CodeApprovalDenied, Message: cfg.Masker.MaskText(msg)}
	}
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
	cfg := b.config()
	ev := Event{ID: newID("stm"), Time: cfg.Now(), Kind: EventStatement, Door: o.Door, Target: o.Target,
		Status: StatusOK, Rows: o.Rows, Bytes: o.Bytes, ExecMS: float64(o.Duration.Microseconds()) / 1000,
		Detail: map[string]any{"phase": "done", "statement_id": o.ID}}
	if o.Session != "" {
		ev.Detail["session"] = o.Session
	}
	if o.Masked > 0 {
		ev.Masked = MaskStats{"cells": o.Masked}
	}
	fillCaller(&ev, o.Caller)
	if o.Err != nil {
		ev.Status, ev.ErrorCode, ev.Error = StatusError, string(CodeTargetError), cfg.Masker.MaskText(o.Err.Error())
	}
	if err := cfg.Recorder.Record(context.WithoutCancel(ctx), ev); err != nil {
		cfg.Logger.Error("passthrough statement outcome not recorded", zap.String("statement", o.ID), zap.Error(err))
	}
}

// MaskCell masks one DataRow cell with the target's column rules and the
// detectors. Without a cell-masking Masker every non-empty cell is
// replaced (fail closed).
func (b *Broker) MaskCell(target, column string, value []byte) ([]byte, bool) {
	if cm, ok := b.config().Masker.(CellMasker); ok {
		return cm.MaskCell(target, column, value)
	}
	return nil, true
}

// MaskText masks free text (database error messages) with the detectors.
func (b *Broker) MaskText(s string) string { return b.config().Masker.MaskText(s) }

// MaskResponse masks a passthrough JSON response with the target's rules
// and the detectors, as the result of the synthetic tool "<kind>:<target>".
func (b *Broker) MaskResponse(kind, target string, doc []byte) ([]byte, MaskStats, error) {
	return b.config().Masker.MaskResult(&Tool{Name: PassthroughTool(kind, target), Target: target}, doc)
}
