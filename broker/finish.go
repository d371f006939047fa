package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"go.uber.org/zap"
)

// finish ends a passage, whatever its outcome: it writes how long it took
// and why it failed into the audit event, reporting an internal failure
// (logged here, once, under an incident id). It returns the error the
// caller sees, nil when err is nil. The event is recorded by record.
func (b *Broker) finish(p *passage, err error) error {
	if p.kind.timed {
		p.ev.DurationMS = msSince(b.now(), p.start)
	}
	if err == nil {
		return nil
	}
	e := b.report(p.snap, err, p.ev.TraceID, zap.String("event", p.ev.ID), zap.String("kind", string(p.ev.Kind)), zap.String("tool", p.ev.Tool), zap.String("target", p.ev.Target))
	p.ev.ErrorCode, p.ev.Error = string(e.Code), p.snap.live.Masker.MaskText(e.Message)
	if p.ev.Status == "" {
		p.ev.Status = p.kind.failStatus
	}
	return e
}

// record makes the passage's event durable before the caller is answered
// (DESIGN §8). When the audit store cannot take it, the answer is withheld:
// audit_unavailable (fail closed).
func (b *Broker) record(ctx context.Context, p *passage) error {
	if err := b.cfg.Recorder.Record(ctx, p.ev); err != nil {
		b.log.Error("audit record failed; "+p.kind.withheld, zap.String("event", p.ev.ID), zap.Error(err))
		return Wrap(CodeAuditUnavailable, err, "the audit store is unavailable, so "+p.kind.withheld+"; retry later")
	}
	return nil
}

// recordAfter records an event whose outcome has already reached the
// client (a statement's result, a session's end): a failure is logged, as
// it can no longer change the answer.
func (b *Broker) recordAfter(ctx context.Context, ev Event, what string) {
	if err := b.cfg.Recorder.Record(context.WithoutCancel(ctx), ev); err != nil {
		b.log.Error(what+" not recorded", zap.String("event", ev.ID), zap.Error(err))
	}
}

// report makes err safe to show, and is the one place an internal failure
// is logged. An *Error that is not internal is returned as is. An internal
// failure (a foreign error, or an *Error with CodeInternal) gets an incident
// id, and its cause, masked, is logged under it once; the message the
// caller sees names the id, and the trace the failure happened in when
// traceID is not "". An error already reported is returned as is.
func (b *Broker) report(s *Snapshot, err error, traceID string, fields ...zap.Field) *Error {
	e, id := AsError(err)
	if e.Code != CodeInternal || e.incident != "" {
		return e
	}
	if id == "" {
		id = newIncidentID()
		ref := " (incident " + id + ")"
		if traceID != "" {
			ref = " (incident " + id + ", trace " + traceID + ")"
		}
		e = &Error{Code: e.Code, Message: e.Message + ref, Field: e.Field, Problems: e.Problems, Cause: e.Cause}
	}
	e.incident = id
	cause := e.Message
	if e.Cause != nil {
		cause = e.Cause.Error()
	}
	if traceID != "" {
		fields = append(fields, zap.String("trace_id", traceID))
	}
	b.log.Error("internal failure", append(fields, zap.String("incident", id), zap.String("error", s.live.Masker.MaskText(cause)))...)
	return e
}

// Report is report for the front doors: a failure of a service they serve
// beside the pipeline (grants, approvals, audit) goes through it, so that
// every internal failure is logged here, once, and the doors only
// translate.
func (b *Broker) Report(err error) *Error {
	if err == nil {
		return nil
	}
	return b.report(b.live.Load(), err, "")
}

// newIncidentID returns a random id that finds a failure in the log.
func newIncidentID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
