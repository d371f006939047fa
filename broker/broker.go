package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config wires a Broker. Every field but Approvals, Binder, Logger, Now and
// MaxArgsBytes is required: a broker without policy, masking or a recorder
// does not start.
type Config struct {
	Catalog  Catalog
	Targets  map[string]Executor
	Auth     Authenticator
	Graphs   GraphAccess
	Policy   Decider
	Binder   Binder
	Masker   Masker
	Recorder Recorder
	// Approvals gates approve decisions. Without it, an approve decision
	// is refused (fail closed), never run.
	Approvals Approvals
	Logger    *zap.Logger
	Now       func() time.Time
	// RecordResults stores the (masked) result in the audit record
	// (recordings.results: masked).
	RecordResults bool
	// MaxArgsBytes caps the size of a call's arguments; 0 means 1 MiB.
	MaxArgsBytes int
	// MaxArgsDepth caps the nesting of a call's arguments; 0 means 32.
	MaxArgsDepth int
}

// Validate reports what is missing.
func (c Config) Validate() error {
	var missing []string
	if c.Catalog == nil {
		missing = append(missing, "Catalog")
	}
	if c.Auth == nil {
		missing = append(missing, "Auth")
	}
	if c.Graphs == nil {
		missing = append(missing, "Graphs")
	}
	if c.Policy == nil {
		missing = append(missing, "Policy")
	}
	if c.Masker == nil {
		missing = append(missing, "Masker")
	}
	if c.Recorder == nil {
		missing = append(missing, "Recorder")
	}
	if len(missing) > 0 {
		return fmt.Errorf("broker config: missing %v", missing)
	}
	return nil
}

// Broker is the pipeline. It is safe for concurrent use; Reload swaps its
// configuration atomically, so a call sees one whole configuration.
type Broker struct {
	cfg atomic.Pointer[Config]
}

// New returns a Broker for a valid config.
func New(cfg Config) (*Broker, error) {
	b := &Broker{}
	if err := b.Reload(cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// Reload replaces the configuration atomically. An invalid config is
// refused and the old one keeps serving.
func (b *Broker) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxArgsBytes <= 0 {
		cfg.MaxArgsBytes = 1 << 20
	}
	if cfg.MaxArgsDepth <= 0 {
		cfg.MaxArgsDepth = 32
	}
	b.cfg.Store(&cfg)
	return nil
}

func (b *Broker) config() *Config { return b.cfg.Load() }

// Identify authenticates credentials and establishes the caller's LangGraph
// context. It is the only way to make a Caller that Call accepts.
func (b *Broker) Identify(ctx context.Context, cr Credentials) (Caller, error) {
	cfg := b.config()
	if cr.Malformed {
		return Caller{}, Errorf(CodeUnauthenticated, "the Authorization header must be \"Bearer <token>\"")
	}
	if cr.Token == "" {
		return Caller{}, Errorf(CodeUnauthenticated, "a bearer token is required (an API key, an OIDC token or a grant token)")
	}
	p, binding, err := cfg.Auth.Authenticate(ctx, cr.Token)
	if err != nil {
		if code := CodeOf(err); code == CodeUnauthenticated || code == CodeOwnerDisabled {
			return Caller{}, err
		}
		e, id := AsError(err)
		cfg.Logger.Error("authentication failed", zap.String("incident", id), zap.Error(e.Cause))
		return Caller{}, Wrap(CodeUnauthenticated, err, "the credential could not be verified")
	}
	c := Caller{Principal: p, verified: true}
	if binding != nil {
		if err := checkBinding(cr.Claimed, binding); err != nil {
			return Caller{}, err
		}
		c.Binding = binding
		c.Context = Context{Graph: binding.Graph, Node: binding.Node, Run: binding.Run, Thread: binding.Thread, ToolCallID: cr.Claimed.ToolCallID}
		if c.Thread == "" {
			c.Thread = cr.Claimed.Thread
		}
		return admitted(ctx, cfg.Auth, c)
	}
	c.Context = cr.Claimed
	if c.Node != "" && c.Graph == "" {
		return Caller{}, Errorf(CodeInvalidRequest, "%s requires %s", HeaderNode, HeaderGraph)
	}
	if c.Graph != "" && !cfg.Graphs.MayActAs(p, c.Graph) {
		return Caller{}, Errorf(CodeForbidden, "principal %s may not act as graph %q", p.Subject, c.Graph)
	}
	return admitted(ctx, cfg.Auth, c)
}

// checkBinding refuses headers that contradict a grant token.
func checkBinding(claimed Context, bd *Binding) error {
	for _, f := range []struct{ header, claimed, bound string }{
		{HeaderGraph, claimed.Graph, bd.Graph},
		{HeaderNode, claimed.Node, bd.Node},
		{HeaderRun, claimed.Run, bd.Run},
		{HeaderThread, claimed.Thread, bd.Thread},
	} {
		if f.claimed != "" && f.bound != "" && f.claimed != f.bound {
			return Errorf(CodeForbidden, "%s %q contradicts the grant token, which is bound to %q", f.header, f.claimed, f.bound)
		}
	}
	return nil
}

// ListTools returns the tools the caller may call, sorted by name.
func (b *Broker) ListTools(ctx context.Context, c Caller) ([]*Tool, error) {
	if !c.verified {
		return nil, Errorf(CodeUnauthenticated, "caller was not identified")
	}
	cfg := b.config()
	var out []*Tool
	for _, t := range cfg.Catalog.Tools() {
		if !cfg.Policy.Visible(c, t) {
			continue
		}
		if cfg.Binder != nil {
			// Arguments forced from the grant scope are hidden, so the model
			// is never asked for them.
			if bound, err := cfg.Binder.Bound(c, t); err == nil && len(bound) > 0 {
				t = withoutArgs(t, bound)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// withoutArgs returns a copy of t whose input schema lacks the named
// properties (and their required entries).
func withoutArgs(t *Tool, names map[string]any) *Tool {
	var schema map[string]any
	if err := json.Unmarshal(t.InputSchema, &schema); err != nil {
		return t
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for n := range names {
			delete(props, n)
		}
	}
	if req, ok := schema["required"].([]any); ok {
		kept := req[:0]
		for _, r := range req {
			if _, bound := names[fmt.Sprint(r)]; !bound {
				kept = append(kept, r)
			}
		}
		schema["required"] = kept
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return t
	}
	cp := *t
	cp.InputSchema = raw
	return &cp
}

// Call is one tool call as a front door hands it to the broker.
type Call struct {
	Caller Caller
	// Door names the front door: "mcp", "http", "stdio".
	Door string
	Tool string
	// Args is the raw JSON arguments object; empty means {}.
	Args json.RawMessage
	// ApprovalID is the approval the caller resumes (X-Toolgate-Approval).
	ApprovalID  string
	TraceParent string
}

// Pending describes a call held for approval. The action was NOT performed.
type Pending struct {
	Status     string    `json:"status"`
	ApprovalID string    `json:"approval_id"`
	ExpiresAt  time.Time `json:"expires_at"`
	Message    string    `json:"message"`
}

// Result is a call's answer: exactly one of Value or Pending is set.
type Result struct {
	CallID string
	// Value is the masked result document.
	Value   json.RawMessage
	Rows    int
	Pending *Pending
}

// Call runs one call through the whole pipeline. Refusals and failures are
// *Error values with a stable code and a safe message.
func (b *Broker) Call(ctx context.Context, call Call) (Result, error) {
	cfg := b.config()
	start := cfg.Now()
	ev := Event{
		ID:      newID("call"),
		Time:    start,
		Kind:    EventToolCall,
		Door:    call.Door,
		Tool:    call.Tool,
		TraceID: traceID(call.TraceParent),
	}
	res, err := b.run(ctx, cfg, call, &ev)
	ev.DurationMS = float64(cfg.Now().Sub(start).Microseconds()) / 1000
	res.CallID = ev.ID
	if err != nil {
		e, incident := AsError(err)
		if incident != "" {
			cfg.Logger.Error("call failed", zap.String("incident", incident), zap.String("tool", call.Tool), zap.String("error", cfg.Masker.MaskText(e.Cause.Error())))
		}
		ev.ErrorCode = string(e.Code)
		ev.Error = cfg.Masker.MaskText(e.Message)
		if ev.Status == "" {
			ev.Status = StatusError
		}
		err = e
		res = Result{CallID: ev.ID}
	}
	if rerr := cfg.Recorder.Record(ctx, ev); rerr != nil {
		cfg.Logger.Error("audit record failed; refusing to answer", zap.String("call", ev.ID), zap.Error(rerr))
		return Result{CallID: ev.ID}, Wrap(CodeAuditUnavailable, rerr, "the audit store is unavailable, so the call's result is withheld; retry later")
	}
	return res, err
}

func (b *Broker) run(ctx context.Context, cfg *Config, call Call, ev *Event) (res Result, err error) {
	c := call.Caller
	if !c.verified {
		ev.Status = StatusDenied
		return Result{}, Errorf(CodeUnauthenticated, "caller was not identified")
	}
	ev.Principal, ev.AuthMethod, ev.TokenID = c.Principal.Subject, string(c.Principal.Method), c.Principal.TokenID
	ev.Graph, ev.Node, ev.Run, ev.Thread, ev.ToolCallID = c.Graph, c.Node, c.Run, c.Thread, c.ToolCallID

	tool, ok := cfg.Catalog.Lookup(call.Tool)
	if !ok || !cfg.Policy.Visible(c, tool) {
		// A tool the caller may not see is reported as unknown only when it
		// does not exist at all; otherwise the refusal says it is forbidden.
		ev.Status = StatusDenied
		if !ok {
			return Result{}, Errorf(CodeUnknownTool, "no tool named %q", call.Tool)
		}
		ev.Target = tool.Target
		ev.Decision, ev.Rule = string(EffectDeny), "default"
		return Result{}, Errorf(CodeForbidden, "node %q of graph %q may not call tool %q", c.Node, c.Graph, call.Tool)
	}
	ev.Target = tool.Target

	args, err := decodeArgs(call.Args, cfg.MaxArgsBytes, cfg.MaxArgsDepth)
	if err != nil {
		ev.Status = StatusDenied
		return Result{}, err
	}
	if cfg.Binder != nil {
		bound, err := cfg.Binder.Bound(c, tool)
		if err != nil {
			ev.Status = StatusDenied
			return Result{}, err
		}
		for name, v := range bound {
			if given, ok := args[name]; ok && !sameJSON(given, v) {
				ev.Status = StatusDenied
				return Result{}, &Error{Code: CodeForbidden, Field: name, Message: fmt.Sprintf("argument %q is bound to the grant scope and may not be set to another value", name)}
			}
			args[name] = v
		}
	}
	canonical, _ := json.Marshal(args) // map keys sort: canonical for our purposes
	sum := sha256.Sum256(canonical)
	ev.ArgsHash = hex.EncodeToString(sum[:])
	if ev.Args, err = cfg.Masker.MaskRecord(canonical); err != nil {
		return Result{}, Wrap(CodeInternal, err, "the arguments could not be masked for the audit record, so the call is refused")
	}

	if err := tool.Spec.ValidateArgs(args); err != nil {
		ev.Status = StatusDenied
		return Result{}, err
	}

	req := Request{Caller: c, Tool: tool, Args: args, Now: cfg.Now()}
	dec, err := cfg.Policy.Decide(ctx, req)
	if err != nil {
		ev.Status = StatusDenied
		if CodeOf(err) == CodeInternal {
			return Result{}, Wrap(CodeForbidden, err, "policy could not decide this call, so it is refused")
		}
		return Result{}, err
	}
	ev.Decision, ev.Rule, ev.PolicyVersion = string(dec.Effect), dec.Rule, dec.PolicyVersion
	switch dec.Effect {
	case EffectAllow:
	case EffectApprove:
		held, done, aerr := b.approval(ctx, cfg, call, req, dec, ev)
		if done || aerr != nil {
			return held, aerr
		}
		// This call holds the approval: report how it ends, so repeats
		// answer the recorded result instead of running again.
		if rec, ok := cfg.Approvals.(ApprovalRecorder); ok {
			defer func() {
				if cerr := rec.Complete(context.WithoutCancel(ctx), ev.ApprovalID, res.Value, err); cerr != nil {
					cfg.Logger.Error("approval outcome not recorded", zap.String("approval", ev.ApprovalID), zap.Error(cerr))
				}
			}()
		}
	default:
		ev.Status = StatusDenied
		msg := fmt.Sprintf("policy %s denies tool %q for node %q", dec.Rule, tool.Name, c.Node)
		if dec.Reason != "" {
			msg += ": " + dec.Reason
		}
		return Result{}, Errorf(CodeForbidden, "%s", msg)
	}
	return b.execute(ctx, cfg, call, req, ev)
}

// approval holds an approve decision at the approval gate. done is false
// only when this call claimed the approval and must run now; otherwise the
// answer (pending, the recorded result, a refusal) is final.
func (b *Broker) approval(ctx context.Context, cfg *Config, call Call, req Request, dec Decision, ev *Event) (res Result, done bool, err error) {
	tool := req.Tool
	if cfg.Approvals == nil {
		ev.Status = StatusDenied
		return Result{}, true, Errorf(CodeForbidden, "tool %q needs approval (%s) but no approval channel is configured, so the call is refused", tool.Name, dec.Rule)
	}
	out, err := cfg.Approvals.Await(ctx, ApprovalRequest{Caller: req.Caller, Tool: tool, Args: req.Args, ArgsHash: ev.ArgsHash, Decision: dec, ResumeID: call.ApprovalID})
	if err != nil {
		ev.Status = StatusDenied
		return Result{}, true, err
	}
	ev.ApprovalID = out.ID
	switch out.Status {
	case ApprovalApproved:
		return Result{}, false, nil
	case ApprovalConsumed:
		// The approved call already ran: answer its recorded result.
		ev.Status = StatusOK
		ev.Bytes = len(out.Result)
		return Result{Value: out.Result}, true, nil
	case ApprovalPending:
		ev.Status = StatusPending
		return Result{Pending: &Pending{
			Status:     string(CodeApprovalPending),
			ApprovalID: out.ID,
			ExpiresAt:  out.ExpiresAt,
			Message:    fmt.Sprintf("The action was NOT performed: tool %s is waiting for approval %s (until %s). Call again with the same arguments once it is approved.", tool.Name, out.ID, out.ExpiresAt.UTC().Format(time.RFC3339)),
		}}, true, nil
	case ApprovalExpired:
		ev.Status = StatusDenied
		return Result{}, true, Errorf(CodeApprovalExpired, "approval %s expired before a decision; the action was not performed", out.ID)
	case ApprovalStale:
		ev.Status = StatusDenied
		return Result{}, true, Errorf(CodeApprovalStale, "approval %s no longer counts because its rule changed; the action was not performed. Call again to request a new approval", out.ID)
	default:
		ev.Status = StatusDenied
		msg := fmt.Sprintf("approval %s was %s; the action was not performed", out.ID, out.Status)
		if out.Reason != "" {
			msg += ": " + out.Reason
		}
		return Result{}, true, &Error{Code: CodeApprovalDenied, Message: cfg.Masker.MaskText(msg)}
	}
}

// execute runs an allowed (or approved) call: rows reserved, the connector,
// the reservation settled to the rows the call returned, the result masked.
// Once the connector ran, its result is never withheld for a budget: what
// the target did and what the audit record says agree.
func (b *Broker) execute(ctx context.Context, cfg *Config, call Call, req Request, ev *Event) (Result, error) {
	tool, c := req.Tool, req.Caller
	op, err := tool.Spec.Operation(req.Args)
	if err != nil {
		return Result{}, err
	}
	op.Target = tool.Target
	op.Comment = map[string]string{"graph": c.Graph, "node": c.Node, "run": c.Run}
	if call.TraceParent != "" {
		op.Comment["traceparent"] = call.TraceParent
	}
	exec, ok := cfg.Targets[tool.Target]
	if !ok {
		return Result{}, Errorf(CodeTargetUnavailable, "target %q of tool %q is not configured", tool.Target, tool.Name)
	}
	rsv, err := reserveRows(ctx, cfg, req, exec, &op)
	if err != nil {
		ev.Status = StatusDenied
		return Result{}, err
	}
	execStart := cfg.Now()
	out, err := exec.Execute(ctx, op)
	ev.ExecMS = float64(cfg.Now().Sub(execStart).Microseconds()) / 1000
	if rsv.Settle != nil {
		rows := 0
		if err == nil {
			rows = out.Rows
		}
		rsv.Settle(context.WithoutCancel(ctx), rows)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			// Target errors can echo values: mask before anyone sees them.
			return Result{}, &Error{Code: e.Code, Message: cfg.Masker.MaskText(e.Message), Field: e.Field, Problems: maskProblems(cfg.Masker, e.Problems), Cause: e.Cause}
		}
		return Result{}, err
	}
	masked, stats, err := cfg.Masker.MaskResult(tool, out.Value)
	if err != nil {
		return Result{}, Wrap(CodeInternal, err, "the result could not be masked, so it is withheld")
	}
	ev.Status = StatusOK
	ev.Rows, ev.Bytes, ev.Masked = out.Rows, len(masked), stats
	if cfg.RecordResults {
		if ev.Result, err = cfg.Masker.MaskRecord(masked); err != nil {
			return Result{}, Wrap(CodeInternal, err, "the result could not be masked for the audit record, so it is withheld")
		}
	}
	return Result{Value: masked, Rows: out.Rows}, nil
}

// reserveRows reserves the call's rows with the policy's rows budgets
// before it runs, and lowers the operation's row cap to the reservation.
func reserveRows(ctx context.Context, cfg *Config, req Request, exec Executor, op *Operation) (RowReservation, error) {
	rb, ok := cfg.Policy.(RowBudget)
	if !ok {
		return RowReservation{}, nil
	}
	want := -1
	if rc, ok := exec.(RowCapper); ok {
		want = rc.RowCap(*op)
	}
	rsv, err := rb.ReserveRows(ctx, req, want)
	if err != nil || !rsv.Limited || op.SQL == nil {
		return rsv, err
	}
	if rsv.Rows < 1 {
		if rsv.Settle != nil {
			rsv.Settle(context.WithoutCancel(ctx), 0)
		}
		return RowReservation{}, Errorf(CodeBudgetExceeded, "a rows budget of this call is used up, so it was not run")
	}
	if want < 0 || rsv.Rows < want {
		sq := *op.SQL
		sq.MaxRows = rsv.Rows
		op.SQL = &sq
	}
	return rsv, nil
}

// decodeArgs decodes a JSON object of arguments, numbers as json.Number.
func decodeArgs(raw json.RawMessage, maxBytes, maxDepth int) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	if len(raw) > maxBytes {
		return nil, Errorf(CodePayloadTooLarge, "arguments are %d bytes; the limit is %d", len(raw), maxBytes)
	}
	if raw[0] != '{' {
		return nil, Errorf(CodeInvalidArguments, "arguments must be a JSON object")
	}
	if d := jsonDepth(raw); d > maxDepth {
		return nil, Errorf(CodeInvalidArguments, "arguments nest deeper than %d levels", maxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args map[string]any
	if err := dec.Decode(&args); err != nil {
		return nil, Errorf(CodeInvalidArguments, "arguments are not valid JSON: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalidArguments, "arguments have trailing data after the JSON object")
	}
	return args, nil
}

// jsonDepth returns the maximum nesting of brackets outside strings.
func jsonDepth(raw []byte) int {
	depth, max, inStr, esc := 0, 0, false, false
	for _, ch := range raw {
		switch {
		case esc:
			esc = false
		case inStr && ch == '\\':
			esc = true
		case ch == '"':
			inStr = !inStr
		case inStr:
		case ch == '{' || ch == '[':
			depth++
			if depth > max {
				max = depth
			}
		case ch == '}' || ch == ']':
			depth--
		}
	}
	return max
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s cannot hold %s", te.Field, te.Value)
	}
	return "malformed JSON"
}

// sameJSON reports whether two decoded JSON values are equal, comparing
// numbers by value.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b)
	}
	var na, nb any
	_ = json.Unmarshal(ja, &na)
	_ = json.Unmarshal(jb, &nb)
	return reflect.DeepEqual(na, nb)
}

// newID returns a random id with a prefix that sorts by creation time:
// 6 bytes of Unix milliseconds, then 12 random bytes, hex-encoded. The time
// prefix makes the audit store's unique id index grow at its right edge
// instead of splitting random B-tree pages on every write.
func newID(prefix string) string {
	var b [18]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// NewID returns a random id with a prefix, for packages that mint records.
func NewID(prefix string) string { return newID(prefix) }

// traceID extracts the trace id from a W3C traceparent, or starts one.
func traceID(traceparent string) string {
	// traceparent: version-traceid-parentid-flags
	if len(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Pipeline is the broker as front doors and passthrough proxies see it.
type Pipeline interface {
	Identify(ctx context.Context, cr Credentials) (Caller, error)
	ListTools(ctx context.Context, c Caller) ([]*Tool, error)
	Call(ctx context.Context, call Call) (Result, error)
}

var _ Pipeline = (*Broker)(nil)

// maskProblems masks the messages of a target error's problems.
func maskProblems(m Masker, ps []Problem) []Problem {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, len(ps))
	for i, p := range ps {
		out[i] = Problem{Field: p.Field, Message: m.MaskText(p.Message)}
	}
	return out
}
