package pgwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/toolgate/toolgate/broker"
)

// refusalHint marks the ErrorResponses toolgate raises upstream for a
// refused statement, so the relay can tidy them (no PL/pgSQL context).
const refusalHint = "toolgate refused this statement"

// refusalSQL raises a refusal on the server itself (a DO block that raises
// SQLSTATE 42501), so the error arrives after every earlier result and
// aborts the server's transaction exactly as a real error would.
//
// The relay masks every error the server sends, since anyone may raise one
// with toolgate's hint; the message toolgate raised itself is remembered
// (raised) and passes unmasked, so an approval id whose hex happens to hold
// a card-like digit run still reaches the client whole.
func (s *session) refusalSQL(err error) string {
	e, _ := broker.AsError(err)
	msg := strings.ReplaceAll(e.Message, "$", "\uff04")
	s.raised.Store(msg, struct{}{})
	detail := "toolgate code: " + string(e.Code)
	return "DO $tg$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = $m$" + msg + "$m$, DETAIL = $m$" + detail + "$m$, HINT = $m$" + refusalHint + "$m$; END$tg$"
}

// relayClient reads client messages, sends each statement through the
// pipeline and forwards what it allows.
func (s *session) relayClient(ctx context.Context, r *bufio.Reader) error {
	var buf []byte
	for {
		msg, err := readMessage(r, s.srv.cfg.MaxMessageBytes, buf)
		var tl errTooLarge
		if errors.As(err, &tl) {
			err = s.tooLarge(ctx, r, tl)
		} else if err == nil {
			err = s.clientMessage(ctx, msg)
			buf = shrink(msg)
		}
		if err != nil {
			return err
		}
		if r.Buffered() == 0 {
			if err := s.upW.Flush(); err != nil {
				return err
			}
		}
	}
}

// shrink keeps a read buffer for reuse unless it grew large.
func shrink(b []byte) []byte {
	if cap(b) > 1<<20 {
		return nil
	}
	return b
}

// tooLarge refuses a client message over MaxMessageBytes without reading
// it into memory: its bytes are skipped and the refusal recorded. A
// message that is not a statement ends the session.
func (s *session) tooLarge(ctx context.Context, r *bufio.Reader, tl errTooLarge) error {
	if _, err := r.Discard(tl.n + 1); err != nil {
		return err
	}
	err := broker.Errorf(broker.CodePayloadTooLarge, "a %s of %d bytes exceeds the %d-byte limit (passthrough.postgres[].max_message_bytes)", messageName(tl.typ), tl.n, tl.max)
	switch tl.typ {
	case 'Q', 'F':
		return s.refuseQuery(ctx, protocolStatement(safeMessage(err)))
	case 'P', 'B', 'D', 'E', 'C':
		if s.refusal != "" || s.tr.skipping() {
			return nil // the rest of the batch is dropped anyway
		}
		return s.refuseExtended(ctx, protocolStatement(safeMessage(err)))
	}
	_, _ = s.decide(ctx, []broker.Statement{protocolStatement(safeMessage(err))}, false)
	s.setReason("message too large")
	s.fatal("54000", err)
	return errEOF
}

// protocolStatement describes a refused protocol message to the pipeline,
// which records it and refuses it.
func protocolStatement(why string) broker.Statement {
	return broker.Statement{Kind: broker.KindSQL, Command: "PROTOCOL", Unclassified: why}
}

func messageName(typ byte) string {
	switch typ {
	case 'Q':
		return "query"
	case 'P':
		return "Parse message"
	case 'B':
		return "Bind message"
	case 'F':
		return "function call"
	case 'd':
		return "COPY data message"
	}
	return fmt.Sprintf("message %q", typ)
}

// errMalformed is a client message that does not decode.
type errMalformed struct {
	typ byte
	err error
}

func (e errMalformed) Error() string {
	return fmt.Sprintf("malformed %s: %v", messageName(e.typ), e.err)
}

func malformed(typ byte, err error) error { return errMalformed{typ: typ, err: err} }

// clientMessage handles one client message.
func (s *session) clientMessage(ctx context.Context, msg []byte) error {
	typ := msg[0]
	if s.tr.copying() {
		return s.copyMessage(ctx, msg)
	}
	if s.refusal != "" && typ != 'S' && typ != 'X' {
		return nil // the refused batch: the server never sees the rest
	}
	if s.barrier && typ != 'S' && typ != 'H' && typ != 'X' {
		s.barrier = false
		st := protocolStatement("a statement that may change session settings (SET, CALL, DO, ...) must be followed by Sync before the next message")
		if typ == 'Q' || typ == 'F' {
			return s.refuseQuery(ctx, st)
		}
		return s.refuseExtended(ctx, st)
	}
	switch typ {
	case 'Q':
		return s.query(ctx, msg)
	case 'P':
		return s.parse(ctx, msg)
	case 'B':
		return s.bind(ctx, msg)
	case 'D':
		return s.describe(ctx, msg)
	case 'E':
		return s.execute(ctx, msg)
	case 'C':
		return s.closeMessage(msg)
	case 'S':
		return s.syncMessage(msg)
	case 'H':
		return s.forward(msg)
	case 'F':
		return s.fastpath(ctx)
	case 'd', 'c', 'f':
		return nil // COPY data outside a COPY: the server would drop it too
	case 'X':
		s.setReason("client terminated")
		return errEOF
	}
	_, _ = s.decide(ctx, []broker.Statement{protocolStatement(fmt.Sprintf("message type %q is not a frontend message toolgate relays", typ))}, false)
	s.setReason("protocol violation")
	s.fatal("08P01", broker.Errorf(broker.CodeInvalidRequest, "message type %q is not a frontend message toolgate relays", typ))
	return errEOF
}

func (s *session) forward(msg []byte) error {
	_, err := s.upW.Write(msg)
	return err
}

// query decides every statement of a simple Query and forwards it.
func (s *session) query(ctx context.Context, msg []byte) error {
	if s.tr.skipping() {
		return nil // the server skips it: an earlier message failed
	}
	var q pgproto3.Query
	if err := q.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	sts := s.srv.classify(q.String)
	for i := range sts {
		s.bound(&sts[i])
	}
	ids, err := s.decide(ctx, sts, true)
	if err != nil {
		if isFatal(err) {
			return err
		}
		s.commits = s.commits[:0] // nothing of a refused query runs
		return s.sendRefusalQuery(err)
	}
	o := s.tr.query(&inflight{caller: s.caller, ids: ids, start: time.Now()}, taints(sts...), copiesIn(sts))
	if o == nil {
		_ = s.release(ctx)
		s.finishTag(&inflight{caller: s.caller, ids: ids}, errSkipped)
		return nil
	}
	s.mu.Lock()
	s.held = len(s.commits) > 0
	s.mu.Unlock()
	if err := s.forward(msg); err != nil {
		return err
	}
	if err := s.release(ctx); err != nil {
		return err
	}
	if barrier(sts...) {
		return s.settle()
	}
	return nil
}

// settle sends everything upstream and waits for every answer, so a
// change of session settings is seen before the next client message.
func (s *session) settle() error {
	if err := s.upW.Flush(); err != nil {
		return err
	}
	if !s.tr.awaitIdle() {
		return errEOF
	}
	return nil
}

// parse forwards a Parse; a statement toolgate cannot classify is refused
// here, everything else is decided when it is executed.
func (s *session) parse(ctx context.Context, msg []byte) error {
	if s.tr.skipping() {
		return nil
	}
	var p pgproto3.Parse
	if err := p.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	sts := s.srv.classify(p.Query)
	st := sts[0]
	if len(sts) > 1 {
		st = broker.Statement{Kind: broker.KindSQL, Text: p.Query, Unclassified: "a prepared statement may hold only one statement"}
	}
	if st.Unclassified == "" && !s.srv.lock1Off {
		st.Unclassified = s.paramTypes(p.ParameterOIDs)
	}
	if st.Unclassified != "" {
		return s.refuseExtended(ctx, st)
	}
	if s.tr.parse(p.Name, p.Query, st, false) == nil {
		return nil
	}
	return s.forward(msg)
}

// paramTypes explains why a Parse's parameter types must be refused: a
// Bind converts its values with each type's input function, and a domain's
// CHECK, before any Execute is decided, so a type must be a built-in one
// on the list, as a cast to it must ("" when all are, or left to the
// server to infer).
func (s *session) paramTypes(oids []uint32) string {
	for _, oid := range oids {
		if oid == 0 || oid == pgtype.UnknownOID {
			continue
		}
		if s.binConv == nil {
			s.binConv = newConverter()
		}
		t, ok := s.binConv.m.TypeForOID(oid)
		if !ok || !builtin([]string{strings.TrimPrefix(t.Name, "_")}, builtinFunctions) {
			return fmt.Sprintf("the Parse gives parameter type OID %d, which is not a built-in type toolgate knows (its input function or a domain's CHECK would run at Bind); leave the type to the server (OID 0) or cast in the statement", oid)
		}
	}
	return ""
}

// stmtFor is tracker.stmtFor that waits for an undecided earlier batch.
func (s *session) stmtFor(name string) (*prepared, error) {
	return awaitLookup(s, func() (*prepared, *op) { return s.tr.stmtFor(name) })
}

// portalFor is tracker.portalFor that waits for an undecided earlier batch.
func (s *session) portalFor(name string) (*portal, error) {
	return awaitLookup(s, func() (*portal, *op) { return s.tr.portalFor(name) })
}

// awaitLookup runs a tracker lookup until no earlier batch's unanswered
// message decides it, sending what is buffered upstream first.
func awaitLookup[T any](s *session, lookup func() (T, *op)) (T, error) {
	for {
		v, wait := lookup()
		if wait == nil {
			return v, nil
		}
		if err := s.upW.Flush(); err != nil {
			return v, err
		}
		if !s.tr.await(wait) {
			return v, errEOF
		}
	}
}

// statementOf is the classification a prepared statement carries, false
// for one toolgate did not parse (its own refusal).
func statementOf(st *prepared) (broker.Statement, bool) {
	if st == nil {
		return broker.Statement{}, false
	}
	c, ok := st.info.(broker.Statement)
	return c, ok
}

// bind forwards a Bind of a statement the server accepted; result columns
// the client wants in binary are asked for in text and converted back.
func (s *session) bind(ctx context.Context, msg []byte) error {
	var b pgproto3.Bind
	if err := b.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	st, err := s.stmtFor(b.PreparedStatement)
	if err != nil || s.tr.skipping() {
		return err
	}
	if _, ok := statementOf(st); !ok && !s.srv.lock1Off {
		return s.refuseExtended(ctx, protocolStatement(fmt.Sprintf("prepared statement %q is not one toolgate saw the server accept; Parse it first", b.PreparedStatement)))
	}
	if st == nil {
		st = &prepared{name: b.PreparedStatement} // lock 1 switched off: one from SQL
	}
	if why := s.paramsTooLarge(b.Parameters); why != "" {
		return s.refuseExtended(ctx, protocolStatement(why))
	}
	formats := b.ResultFormatCodes
	if anyBinary(formats) {
		ok, why, err := s.binaryPlan(b.PreparedStatement, st, formats)
		if err != nil || !ok {
			return err // skipped: an earlier message failed
		}
		if why != "" {
			return s.refuseExtended(ctx, protocolStatement(why))
		}
		b.ResultFormatCodes = nil // every column in text; see results.go
		if msg, err = b.Encode(nil); err != nil {
			return err
		}
	}
	if s.tr.bind(b.DestinationPortal, st, formats, false) == nil {
		return nil
	}
	return s.forward(msg)
}

// paramsTooLarge explains why a Bind parameter is over MaxCellBytes.
func (s *session) paramsTooLarge(params [][]byte) string {
	for i, p := range params {
		if len(p) > s.srv.cfg.MaxCellBytes {
			return fmt.Sprintf("parameter $%d of %d bytes exceeds the %d-byte limit (passthrough.postgres[].max_cell_bytes)", i+1, len(p), s.srv.cfg.MaxCellBytes)
		}
	}
	return ""
}

// binaryPlan learns the result columns of st (asking the server when no
// Describe of it was answered yet) and explains why a column asked for in
// binary cannot be served ("" when all can). ok is false when the server
// skips the batch: the Bind is then skipped too.
func (s *session) binaryPlan(name string, st *prepared, formats []int16) (ok bool, why string, err error) {
	for {
		fields, known := s.tr.describedFields(st)
		if known {
			if s.binConv == nil {
				s.binConv = newConverter()
			}
			return true, s.binConv.explain(fields, formats, s.tr.param), nil
		}
		if s.tr.skipping() {
			return false, "", nil
		}
		if err := s.describeFirst(name, st); err != nil {
			return false, "", err
		}
	}
}

// describeFirst asks the server to describe st unless a Describe of it is
// on its way, and waits for the answer.
func (s *session) describeFirst(name string, st *prepared) error {
	if !s.tr.isDescribing(st) && s.tr.describeStmt(name, st, true) {
		b, _ := (&pgproto3.Describe{ObjectType: 'S', Name: name}).Encode(nil)
		if err := s.forward(b); err != nil {
			return err
		}
	}
	if err := s.forward([]byte{'H', 0, 0, 0, 4}); err != nil { // Flush
		return err
	}
	if err := s.upW.Flush(); err != nil {
		return err
	}
	if !s.tr.awaitDescribed(st) {
		return errEOF
	}
	return nil
}

// describe forwards a Describe of what the server will hold by that name.
func (s *session) describe(ctx context.Context, msg []byte) error {
	var d pgproto3.Describe
	if err := d.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	if d.ObjectType == 'S' {
		st, err := s.stmtFor(d.Name)
		if err != nil || !s.tr.describeStmt(d.Name, st, false) {
			return err
		}
		return s.forward(msg)
	}
	p, err := s.portalFor(d.Name)
	if err != nil || !s.tr.describePortal(d.Name, p, false) {
		return err
	}
	return s.forward(msg)
}

// execute decides the statement of the portal the server will run.
func (s *session) execute(ctx context.Context, msg []byte) error {
	var e pgproto3.Execute
	if err := e.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	p, err := s.portalFor(e.Portal)
	if err != nil || s.tr.skipping() {
		return err
	}
	st := s.portalStatement(e.Portal, p)
	ids, err := s.decide(ctx, []broker.Statement{st}, false)
	if err != nil {
		if isFatal(err) {
			return err
		}
		return s.refuseDecided(err)
	}
	tag := &inflight{caller: s.caller, ids: ids, start: time.Now()}
	if p == nil {
		p = &portal{name: e.Portal} // lock 1 switched off: a portal from SQL
	}
	if s.tr.needsDescribe(p) && s.tr.describePortal(e.Portal, p, true) {
		b, _ := (&pgproto3.Describe{ObjectType: 'P', Name: e.Portal}).Encode(nil)
		if err := s.forward(b); err != nil {
			return err
		}
	}
	if s.tr.execute(p, tag, false, taints(st)) == nil {
		s.finishTag(tag, errSkipped)
		return nil
	}
	s.barrier = barrier(st)
	return s.forward(msg)
}

// portalStatement is what the pipeline decides for an Execute of p.
func (s *session) portalStatement(name string, p *portal) broker.Statement {
	st, ok := broker.Statement{}, false
	if p != nil {
		st, ok = statementOf(p.stmt)
	}
	if !ok && s.srv.lock1Off {
		return s.srv.classify("")[0] // lock 1 switched off (tests only)
	}
	if p == nil {
		// A portal toolgate did not see bound (e.g. from SQL DECLARE) is
		// refused: nothing runs unclassified.
		return protocolStatement(fmt.Sprintf("portal %q is not bound to a statement toolgate saw the server accept", name))
	}
	if !ok {
		return protocolStatement(fmt.Sprintf("portal %q is bound to a statement toolgate did not parse", name))
	}
	if st.Command == "COPY FROM" && st.Unclassified == "" {
		st.Unclassified = "COPY FROM through the extended protocol is not supported; send it as a simple query (psql \\copy)"
	}
	s.bound(&st)
	return st
}

// bound refuses a statement the target's bounds forbid (a write or DDL on
// a read-only target).
func (s *session) bound(st *broker.Statement) {
	if s.srv.cfg.ReadOnly && st.Unclassified == "" && (st.Class == broker.ClassWrite || st.Class == broker.ClassDDL) {
		st.Unclassified = fmt.Sprintf("target %s is read-only", s.srv.cfg.Target)
	}
}

// closeMessage forwards a Close.
func (s *session) closeMessage(msg []byte) error {
	var c pgproto3.Close
	if err := c.Decode(msg[5:]); err != nil {
		return malformed(msg[0], err)
	}
	ok := false
	if c.ObjectType == 'S' {
		ok = s.tr.closeStmt(c.Name)
	} else {
		ok = s.tr.closePortal(c.Name)
	}
	if !ok {
		return nil
	}
	return s.forward(msg)
}

// syncMessage ends a batch: a refused one with toolgate's refusal, raised
// on the server in protocol order.
func (s *session) syncMessage(msg []byte) error {
	if s.refusal != "" {
		if err := s.injectRefusal(s.refusal); err != nil {
			return err
		}
		s.refusal = ""
	}
	s.tr.sync()
	if err := s.forward(msg); err != nil {
		return err
	}
	if s.barrier {
		s.barrier = false
		return s.settle()
	}
	return nil
}

// injectRefusal sends the refusal as an unnamed statement, whose
// ParseComplete and BindComplete the upstream relay swallows.
func (s *session) injectRefusal(sql string) error {
	st := s.tr.parse("", sql, nil, true)
	if st == nil {
		return nil // the server skips to the Sync: an earlier error stands
	}
	p := s.tr.bind("", st, nil, true)
	s.tr.execute(p, nil, true, false)
	b, _ := (&pgproto3.Parse{Query: sql}).Encode(nil)
	b, _ = (&pgproto3.Bind{}).Encode(b)
	b, _ = (&pgproto3.Execute{}).Encode(b)
	return s.forward(b)
}

// refuseExtended records a refused extended-protocol message through the
// pipeline; the rest of its batch is dropped and the refusal raised at
// Sync.
func (s *session) refuseExtended(ctx context.Context, st broker.Statement) error {
	_, err := s.decide(ctx, []broker.Statement{st}, false)
	if err == nil {
		err = broker.Errorf(broker.CodeForbidden, "the message was refused")
	}
	if isFatal(err) {
		return err
	}
	return s.refuseDecided(err)
}

func (s *session) refuseDecided(err error) error {
	s.refusal = s.refusalSQL(err)
	return nil
}

// refuseQuery records a refused simple query or function call and raises
// the refusal in its place.
func (s *session) refuseQuery(ctx context.Context, st broker.Statement) error {
	if s.tr.skipping() {
		return nil
	}
	_, err := s.decide(ctx, []broker.Statement{st}, false)
	if err == nil {
		err = broker.Errorf(broker.CodeForbidden, "the message was refused")
	}
	if isFatal(err) {
		return err
	}
	return s.sendRefusalQuery(err)
}

// fastpath refuses the fastpath function call, which runs any function by
// OID, and records the refusal.
func (s *session) fastpath(ctx context.Context) error {
	return s.refuseQuery(ctx, broker.Statement{Kind: broker.KindSQL, Command: "FUNCTION CALL",
		Unclassified: "the fastpath function call protocol is not allowed through toolgate; call the function in a SELECT"})
}

// sendRefusalQuery raises a refusal in place of a simple Query.
func (s *session) sendRefusalQuery(err error) error {
	if s.tr.query(nil, false, false) == nil {
		return nil
	}
	b, _ := (&pgproto3.Query{String: s.refusalSQL(err)}).Encode(nil)
	return s.forward(b)
}

// copyMessage relays a COPY FROM STDIN's data. Anything but CopyData,
// CopyDone and CopyFail while the server may be reading COPY data would
// be read by the server as part of the COPY: the session ends.
func (s *session) copyMessage(ctx context.Context, msg []byte) error {
	switch msg[0] {
	case 'd':
	case 'c', 'f':
		s.tr.copyEnded()
	default:
		_, _ = s.decide(ctx, []broker.Statement{protocolStatement(fmt.Sprintf("message %q during COPY FROM STDIN", msg[0]))}, false)
		s.setReason("protocol violation")
		s.fatal("08P01", broker.Errorf(broker.CodeInvalidRequest, "only CopyData, CopyDone and CopyFail may follow COPY FROM STDIN until it ends"))
		return errEOF
	}
	return s.forward(msg)
}

// taints reports whether a statement may create or drop prepared
// statements or portals through SQL, so the tracker forgets them.
func taints(sts ...broker.Statement) bool {
	for _, st := range sts {
		switch st.Command {
		case "PREPARE", "DEALLOCATE", "DISCARD", "DECLARECURSOR", "CLOSEPORTAL", "DO", "CALL":
			return true
		}
	}
	return false
}

// barrier reports whether a statement may change session settings
// (client_encoding, standard_conforming_strings, ...): SET and other
// statements of class other, or a call of a function off the built-in list.
// Nothing after it is forwarded before its answers are in.
func barrier(sts ...broker.Statement) bool {
	for _, st := range sts {
		if st.Class == broker.ClassOther || len(st.Functions) > 0 {
			return true
		}
	}
	return false
}

func copiesIn(sts []broker.Statement) bool {
	for _, st := range sts {
		if st.Command == "COPY FROM" {
			return true
		}
	}
	return false
}

func anyBinary(formats []int16) bool {
	for _, f := range formats {
		if f != 0 {
			return true
		}
	}
	return false
}
