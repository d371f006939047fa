package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Call is one tool call as a front door hands it to the broker.
type Call struct {
	Caller Caller
	// Door names the front door: "mcp", "http", "stdio".
	Door string
	Tool string
	// Args is the raw JSON arguments object; empty means {}.
	Args json.RawMessage
	// ApprovalID is the approval the caller resumes (X-Toolgate-Approval).
	ApprovalID string
	// MCP describes the MCP request the call came in, for its span; other
	// doors leave it empty. The caller's trace context (W3C traceparent)
	// travels in the ctx passed to Call, put there by the door.
	MCP MCPRequest
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
	// Blocks is set when Value is an MCP tool result document: the tool's
	// Blocks.
	Blocks bool
}

// Call runs one call through the whole pipeline: the gate (gate.go), the
// connector, masking, and finish, which records it. Refusals and failures
// are *Error values with a stable code and a safe message; an internal
// failure's message names the incident it was logged under.
func (b *Broker) Call(ctx context.Context, call Call) (Result, error) {
	ctx, sp := b.callSpan(ctx, call)
	p := b.begin(&toolCall, call.Caller, call.Door)
	p.ev.Tool, p.ev.TraceID = call.Tool, traceOf(ctx)
	res, err := b.call(ctx, p, call)
	if err = b.finish(p, err); err != nil {
		res = Result{}
	}
	if p.ev.TraceID == "" {
		p.ev.TraceID = newTraceID() // every call's record has one
	}
	if p.claimed {
		// This call held the approval: report how it ended (an internal
		// failure with its incident), so repeats answer the recorded
		// result instead of running again.
		b.completeCall(ctx, p.ev.ApprovalID, res.Value, err)
	}
	sp.passageDone(&p.ev)
	if rerr := b.recordTraced(ctx, p); rerr != nil {
		sp.end(rerr)
		return Result{CallID: p.ev.ID}, rerr
	}
	sp.end(nil)
	res.CallID = p.ev.ID
	return res, err
}

// call is the gate, then execute (connector and mask).
func (b *Broker) call(ctx context.Context, p *passage, call Call) (Result, error) {
	if err := p.identified(); err != nil {
		return Result{}, err
	}
	pt, err := p.resolve(call.Tool)
	if err != nil {
		return Result{}, err
	}
	args, err := b.arguments(p, pt.tool, call.Args)
	if err != nil {
		return Result{}, err
	}
	req := Request{Caller: p.caller, Node: p.node, Tool: pt.tool, Args: args, Now: b.now()}
	pctx, sp := b.startSpan(ctx, SpanPolicy)
	dec, err := p.snap.live.Policy.Decide(pctx, req)
	err = p.decided(dec, err, fmt.Sprintf("tool %q for node %q", pt.tool.Name, p.caller.Node))
	if sp.end(err); err != nil {
		return Result{}, err
	}
	if dec.Effect == EffectApprove {
		actx, sp := b.startSpan(ctx, SpanApproval)
		answer, run, err := b.approve(actx, p, ApprovalRequest{Caller: p.caller, Tool: pt.tool, Args: args, ArgsHash: p.ev.ArgsHash, Decision: dec,
			ResumeID: call.ApprovalID, Preview: b.toolPreview(p, pt, req)})
		sp.approved(p.ev.ApprovalID, err)
		if !run || err != nil {
			answer.Blocks = pt.tool.Blocks && answer.Value != nil
			return answer, err
		}
	}
	res, err := b.execute(ctx, p, pt, req)
	res.Blocks = pt.tool.Blocks && res.Value != nil
	return res, err
}

// completeCall tells the approval gate how the call it approved ended.
func (b *Broker) completeCall(ctx context.Context, approvalID string, value json.RawMessage, callErr error) {
	if b.completer == nil {
		return
	}
	if err := b.completer.Complete(context.WithoutCancel(ctx), approvalID, value, callErr); err != nil {
		b.log.Error("approval outcome not recorded", zap.String("approval", approvalID), zap.Error(err))
	}
}

// execute runs an allowed (or approved) call: rows reserved, the connector,
// the reservation settled to the rows the call returned, the result checked
// and masked. Once the connector ran, its result is never withheld for a
// budget: what the target did and what the audit record says agree.
func (b *Broker) execute(ctx context.Context, p *passage, pt *prepared, req Request) (Result, error) {
	op, err := operation(pt.tool, req)
	if err != nil {
		return Result{}, err
	}
	exec, ok := b.cfg.Targets[pt.tool.Target]
	if !ok {
		return Result{}, Errorf(CodeTargetUnavailable, "target %q of tool %q is not configured", pt.tool.Target, pt.tool.Name)
	}
	rsv, err := reserveRows(ctx, p.snap, req, exec, &op)
	if err != nil {
		p.ev.Status = StatusDenied
		return Result{}, err
	}
	start := b.now()
	ectx, sp := b.startClientSpan(ctx, SpanConnector)
	out, err := run(ectx, p, exec, op)
	sp.end(err)
	p.ev.ExecMS = msSince(b.now(), start)
	if rsv.Settle != nil {
		rows := 0
		if err == nil {
			rows = out.Rows
		}
		rsv.Settle(context.WithoutCancel(ctx), rows)
	}
	if err != nil {
		if CodeOf(err) == CodeApprovalStale {
			p.ev.Status = StatusDenied
		}
		return Result{}, maskTargetError(p.snap.live.Masker, err)
	}
	_, sp = b.startSpan(ctx, SpanMask)
	res, err := b.answer(p, pt, out)
	sp.end(err)
	return res, err
}

// run executes op on exec. A call approved on a preview that counted the
// rows it would change runs matched: in one transaction that commits only
// when it changes as many rows (within the tool's tolerance), else is
// rolled back and refused with approval_stale.
func run(ctx context.Context, p *passage, exec Executor, op Operation) (Output, error) {
	if p.expect == nil {
		return exec.Execute(ctx, op)
	}
	matched, ok := exec.(ExpectingExecutor)
	if !ok {
		return Output{}, Errorf(CodeTargetUnavailable, "target %s cannot check the approved run against its preview (%s), so nothing was run", op.Target, rowCount(p.expect.RowsAffected))
	}
	return matched.ExecuteExpecting(ctx, op, *p.expect)
}

// operation binds the validated arguments into the tool's operation, with
// the caller's context as a comment for the target's own logs. The trace
// context is not in it: connectors propagate the connector span's
// context, which Execute's ctx carries.
func operation(t *Tool, req Request) (Operation, error) {
	op, err := t.Spec.Operation(req.Args)
	if err != nil {
		return Operation{}, err
	}
	op.Target, op.Comment = t.Target, opComment(req)
	return op, nil
}

// opComment is the caller's context as an operation's comment. The trace
// context is not in it: connectors propagate the span context their ctx
// carries.
func opComment(req Request) map[string]string {
	return map[string]string{"graph": req.Caller.Graph, "node": req.Caller.Node, "run": req.Caller.Run}
}

// answer checks the connector's result against the tool's output schema
// (before masking: a mask may change a value's type), masks it, and writes
// the outcome into the event.
func (b *Broker) answer(p *passage, pt *prepared, out Output) (Result, error) {
	if pt.output != nil {
		if err := pt.output.CheckOutput(out.Value); err != nil {
			return Result{}, Wrap(CodeInternal, err, "the target's result does not match the tool's output schema, so it is withheld")
		}
	}
	masked, stats, err := pt.mask.Mask(out.Value)
	if err != nil {
		return Result{}, Wrap(CodeInternal, err, "the result could not be masked, so it is withheld")
	}
	p.ev.Status = StatusOK
	p.ev.Rows, p.ev.Bytes, p.ev.Masked = out.Rows, len(masked), stats
	if b.cfg.RecordResults {
		if p.ev.Result, err = p.snap.live.Masker.MaskRecord(masked); err != nil {
			return Result{}, Wrap(CodeInternal, err, "the result could not be masked for the audit record, so it is withheld")
		}
	}
	return Result{Value: masked, Rows: out.Rows}, nil
}

// maskTargetError masks a target's refusal, which can echo values, before
// anyone sees it. A foreign error is left to finish, which reports it.
func maskTargetError(m Masker, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	out := &Error{Code: e.Code, Message: m.MaskText(e.Message), Field: e.Field, Cause: e.Cause}
	for _, pr := range e.Problems {
		out.Problems = append(out.Problems, Problem{Field: pr.Field, Message: m.MaskText(pr.Message)})
	}
	return out
}

// reserveRows reserves the call's rows with the policy's rows budgets
// before it runs, and lowers the operation's row cap to the reservation.
func reserveRows(ctx context.Context, s *Snapshot, req Request, exec Executor, op *Operation) (RowReservation, error) {
	if s.rows == nil {
		return RowReservation{}, nil
	}
	want := -1
	if rc, ok := exec.(RowCapper); ok {
		want = rc.RowCap(*op)
	}
	rsv, err := s.rows.ReserveRows(ctx, req, want)
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

// msSince is the milliseconds from start to now, to the microsecond.
func msSince(now, start time.Time) float64 {
	return float64(now.Sub(start).Microseconds()) / 1000
}
