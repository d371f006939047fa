package pgwire

import (
	"bufio"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/broker"
)

// Outcomes of statements the server never ran.
var (
	errSkipped = errors.New("not run: the server skipped it after an earlier error in the same batch")
	errNotRun  = errors.New("not run: an earlier statement of the same query failed")
)

// result is the result being relayed: the Execute or Query whose rows
// arrive and how their cells are masked.
type result struct {
	op   *op
	cols []column
	// row and out are reused from row to row.
	row pgproto3.DataRow
	out []byte
	// untouched is set when no cell of cols can change (untouched).
	untouched bool
}

// use sets the columns of the rows that follow.
func (res *result) use(cols []column) {
	res.cols, res.untouched = cols, untouched(cols)
}

// relayUpstream copies server messages to the client: it feeds the
// tracker, masks DataRows, COPY data, notices and error text, and accounts
// results to their statements.
func (s *session) relayUpstream(r *bufio.Reader) error {
	var buf []byte
	var res result
	limit := func(typ byte) int {
		if typ == 'D' || typ == 'd' {
			return s.srv.cfg.MaxRowBytes
		}
		return s.srv.cfg.MaxMessageBytes
	}
	for {
		msg, err := readMessageLimit(r, limit, buf)
		if err != nil {
			var tl errTooLarge
			if errors.As(err, &tl) {
				return s.resultTooLarge(tl.typ, tl.n, tl.max, "max_row_bytes")
			}
			return err
		}
		// A query's answers, its outcome records included, wait until
		// its decision records are durable: an outcome is never recorded
		// before the decision it reports on.
		if !s.wait() {
			return errEOF
		}
		out, err := s.serverMessage(&res, msg)
		if err != nil {
			return err
		}
		buf = shrink(msg)
		if out == nil {
			continue
		}
		if err := s.toClient(out, r.Buffered() == 0); err != nil {
			return err
		}
	}
}

func (s *session) toClient(out []byte, flush bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.cW.Write(out)
	if err == nil && flush {
		err = s.cW.Flush()
	}
	return err
}

// resultTooLarge ends the session for a server message over a limit: it is
// never read into memory.
func (s *session) resultTooLarge(typ byte, n, max int, key string) error {
	what := "a server message"
	if typ == 'D' || typ == 'd' {
		what = "a result row"
	}
	if key == "max_cell_bytes" {
		what = "a result value"
	}
	s.setReason("result too large")
	s.fatal("54000", broker.Errorf(broker.CodePayloadTooLarge, "%s of %d bytes exceeds the %d-byte limit (passthrough.postgres[].%s); select fewer or smaller values", what, n, max, key))
	return errEOF
}

// binaryCopy ends the session for COPY output in binary format, which the
// detectors cannot read (the classifier refuses such a COPY; this holds
// when it did not see one).
func (s *session) binaryCopy() error {
	s.setReason("binary COPY output")
	s.fatal("0A000", broker.Errorf(broker.CodeForbidden, "COPY output in binary format cannot be masked; use text or csv format"))
	return errEOF
}

// serverMessage applies one server message and returns what the client
// gets, nil for nothing.
func (s *session) serverMessage(res *result, msg []byte) ([]byte, error) {
	var st step
	var err error
	out := msg
	switch typ := msg[0]; typ {
	case '1', '2', '3':
		st, err = s.tr.complete(typ)
	case 't':
		st, err = s.tr.paramDescription()
	case 'T':
		out, st, err = s.onRowDescription(res, msg)
	case 'n':
		st, err = s.tr.noData()
	case 'D':
		out, st, err = s.onDataRow(res, msg)
	case 'H', 'c': // CopyOutResponse, CopyDone
		if typ == 'H' && len(msg) > 5 && msg[5] != 0 {
			return nil, s.binaryCopy()
		}
		st, err = s.tr.result("COPY message")
	case 'd':
		out, st, err = s.onCopyData(msg)
	case 'G':
		st, err = s.tr.copyInResponse()
	case 'C', 'I', 's':
		st, err = s.onCommandDone(res)
	case 'E':
		return s.onError(res, msg)
	case 'Z':
		res.op, res.cols = nil, nil
		st, err = s.tr.readyForQuery(msg[len(msg)-1])
	case 'S':
		return s.onParameterStatus(msg)
	case 'N':
		return s.onNotice(msg)
	case 'A':
		return s.onNotification(msg)
	default:
		err = errProtocol{fmt.Sprintf("message %q", typ)}
	}
	if err != nil {
		return nil, err
	}
	for _, o := range st.done {
		s.resolved(o, nil)
	}
	if st.internal {
		return nil, nil
	}
	return out, nil
}

// resolved reports an Execute's or Query's outcome once the tracker
// resolved it; err is the server's error for a failed one.
func (s *session) resolved(o *op, err error) {
	tag, ok := o.tag.(*inflight)
	if !ok {
		return
	}
	switch {
	case o.state == opSkipped:
		s.finishTag(tag, errSkipped)
	case o.kind == opQuery:
		s.finishTag(tag, errNotRun) // what its error or end left unrun
	default:
		s.finishTag(tag, err)
	}
}

// finishOne reports the statement of tag running now and moves on.
func (s *session) finishOne(tag *inflight, err error) {
	if tag == nil || tag.next >= len(tag.ids) {
		return
	}
	s.outcome(broker.StatementOutcome{ID: tag.ids[tag.next], Caller: tag.caller, Door: Door, Target: s.srv.cfg.Target, Session: s.id,
		Rows: tag.rows, Bytes: tag.bytes, Duration: time.Since(tag.start), Masked: tag.mask, Err: err})
	tag.next++
	tag.rows, tag.bytes, tag.mask, tag.start = 0, 0, 0, time.Now()
}

// finishTag reports every statement of tag not reported yet.
func (s *session) finishTag(tag *inflight, err error) {
	for tag != nil && tag.next < len(tag.ids) {
		s.finishOne(tag, err)
	}
}

func (s *session) finishOp(o *op, err error) {
	if tag, ok := o.tag.(*inflight); ok {
		s.finishTag(tag, err)
	}
}

// onRowDescription places a RowDescription: a Describe's answer (the
// formats a portal's client asked for are put back) or a query result's
// columns.
func (s *session) onRowDescription(res *result, msg []byte) ([]byte, step, error) {
	var rd pgproto3.RowDescription
	if err := rd.Decode(msg[5:]); err != nil {
		return nil, step{}, err
	}
	st, err := s.tr.rowDescription(rd.Fields)
	if err != nil {
		return nil, st, err
	}
	switch {
	case st.op.kind == opQuery:
		res.op = st.op
		cols, err := s.columns(rd.Fields, nil)
		res.use(cols)
		return msg, st, err
	case st.op.kind == opDescribePortal && st.op.port != nil && anyBinary(st.op.port.formats):
		for i := range rd.Fields {
			rd.Fields[i].Format = formatAt(st.op.port.formats, i)
		}
		out, err := rd.Encode(nil)
		return out, st, err
	}
	return msg, st, nil
}

// onDataRow masks one row of the running Execute or Query.
func (s *session) onDataRow(res *result, msg []byte) ([]byte, step, error) {
	st, err := s.tr.result("DataRow")
	if err != nil {
		return nil, st, err
	}
	if st.op.kind == opExecute && res.op != st.op {
		res.op = st.op
		cols, err := s.execColumns(st.op.port)
		if err != nil {
			return nil, st, err
		}
		res.use(cols)
	}
	if res.op != st.op || res.cols == nil {
		// Rows nobody described cannot be masked: end the session.
		return nil, st, errors.New("DataRow without a row description; refusing to pass it unmasked")
	}
	out, masked, err := s.maskRow(res, msg)
	if err != nil {
		return nil, st, err
	}
	if tag, ok := st.op.tag.(*inflight); ok {
		tag.rows++
		tag.bytes += len(out)
		tag.mask += masked
	}
	return out, st, nil
}

// execColumns are the columns of an Execute's rows: the portal's own
// Describe answer, else its statement's with the formats of the Bind.
// Toolgate asked the server for text in either case (see bind).
func (s *session) execColumns(p *portal) ([]column, error) {
	s.tr.mu.Lock()
	fields, described := p.fields, p.described
	var stFields []pgproto3.FieldDescription
	stDescribed := false
	if p.stmt != nil {
		stFields, stDescribed = p.stmt.fields, p.stmt.described
	}
	s.tr.mu.Unlock()
	switch {
	case described:
		return s.columns(fields, p.formats)
	case stDescribed:
		return s.columns(stFields, p.formats)
	}
	return nil, errors.New("Execute rows without a description of their portal")
}

// onCommandDone ends a statement: an Execute, or one statement of a Query.
func (s *session) onCommandDone(res *result) (step, error) {
	st, err := s.tr.commandDone()
	if err != nil {
		return st, err
	}
	if st.op.kind == opQuery {
		if tag, ok := st.op.tag.(*inflight); ok {
			s.finishOne(tag, nil)
		}
	}
	res.op, res.cols = nil, nil
	return st, nil
}

// onCopyData passes COPY TO output through the detectors.
func (s *session) onCopyData(msg []byte) ([]byte, step, error) {
	st, err := s.tr.result("CopyData")
	if err != nil {
		return nil, st, err
	}
	data := msg[5:]
	if masked := s.srv.pipe.MaskText(string(data)); masked != string(data) {
		out, err := (&pgproto3.CopyData{Data: []byte(masked)}).Encode(nil)
		return out, st, err
	}
	return msg, st, nil
}

// onError masks a server error (toolgate's own refusals are tidied
// instead), resolves what it failed and skipped, and forwards it.
func (s *session) onError(res *result, msg []byte) ([]byte, error) {
	var e pgproto3.ErrorResponse
	if err := e.Decode(msg[5:]); err != nil {
		return nil, err
	}
	res.op, res.cols = nil, nil
	s.tidyError(&e)
	outcome := errors.New(e.Code + ": " + e.Message)
	st := s.tr.errorResponse()
	if st.op != nil && st.op.kind == opQuery {
		if tag, ok := st.op.tag.(*inflight); ok {
			s.finishOne(tag, outcome)
		}
	}
	for i, o := range st.done {
		if i == 0 {
			s.resolved(o, outcome)
		} else {
			s.resolved(o, nil)
		}
	}
	return e.Encode(nil)
}

// tidyError masks a server error. Anyone may raise an error with
// toolgate's hint (RAISE ... USING HINT): the hint only tidies (no
// PL/pgSQL context), and every error is masked but the message toolgate
// raised itself (refusalSQL), which holds no data of the target.
func (s *session) tidyError(e *pgproto3.ErrorResponse) {
	ours := e.Hint == refusalHint
	own := false
	if ours {
		_, own = s.raised.LoadAndDelete(e.Message)
	}
	raw := e.Message
	s.maskError(e)
	if own {
		e.Message = raw
	}
	if ours {
		e.Hint, e.Where, e.File, e.Line, e.Routine = "", "", "", 0, ""
	}
}

func (s *session) maskError(e *pgproto3.ErrorResponse) {
	m := s.srv.pipe.MaskText
	e.Message, e.Detail, e.Hint, e.Where, e.InternalQuery = m(e.Message), m(e.Detail), m(e.Hint), m(e.Where), m(e.InternalQuery)
	e.SchemaName, e.TableName, e.ColumnName, e.DataTypeName, e.ConstraintName = m(e.SchemaName), m(e.TableName), m(e.ColumnName), m(e.DataTypeName), m(e.ConstraintName)
}

// onParameterStatus records a server parameter and ends the session when
// one the proxy depends on changed.
func (s *session) onParameterStatus(msg []byte) ([]byte, error) {
	var p pgproto3.ParameterStatus
	if err := p.Decode(msg[5:]); err != nil {
		return nil, err
	}
	s.tr.parameterStatus(p.Name, p.Value)
	if err := s.watchParam(p.Name, p.Value); err != nil {
		s.endForParam(err)
		return nil, errEOF
	}
	// A session may put any value in a reported setting
	// (set_config('application_name', card_number, false)).
	if masked := s.srv.pipe.MaskText(p.Value); masked != p.Value {
		p.Value = masked
		return p.Encode(nil)
	}
	return msg, nil
}

// onNotice masks a notice or warning like an error.
func (s *session) onNotice(msg []byte) ([]byte, error) {
	var n pgproto3.NoticeResponse
	if err := n.Decode(msg[5:]); err != nil {
		return nil, err
	}
	e := pgproto3.ErrorResponse(n)
	s.maskError(&e)
	n = pgproto3.NoticeResponse(e)
	return n.Encode(nil)
}

// onNotification masks a NOTIFY payload.
func (s *session) onNotification(msg []byte) ([]byte, error) {
	var n pgproto3.NotificationResponse
	if err := n.Decode(msg[5:]); err != nil {
		return nil, err
	}
	n.Payload = s.srv.pipe.MaskText(n.Payload)
	return n.Encode(nil)
}
