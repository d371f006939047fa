package pgwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/broker"
)

// maxServerMessage bounds one server message (PostgreSQL's own limit is 1 GB).
const maxServerMessage = 1 << 30

// column is how one result column is masked.
type column struct {
	// key is "table.column" for a table column, "" for an expression.
	key string
	// textual is set when the cell bytes are text (text format, or a
	// binary-format text type).
	textual bool
	// ruled is set when a column rule applies (or the column's table could
	// not be resolved): a non-text cell then becomes NULL.
	ruled bool
}

// textTypes are types whose binary format is their text.
var textTypes = map[uint32]bool{25: true, 1043: true, 1042: true, 19: true, 114: true, 142: true}

// relayUpstream copies server messages to the client, masking DataRows,
// masking error text and accounting results to their statements.
func (s *session) relayUpstream(r *bufio.Reader) error {
	var buf []byte
	// cols masks the current simple-query result; execCols the current
	// Execute's. stmtFields and portalCols hold Describe answers.
	var cols, execCols []column
	stmtFields := map[string][]pgproto3.FieldDescription{}
	portalCols := map[string][]column{}
	var held [][]byte
	rfq := 0
	target := s.srv.cfg.Target
	for {
		msg, err := readMessage(r, maxServerMessage, buf)
		if err != nil {
			return err
		}
		buf = msg
		out := msg
		typ := msg[0]
		batch := rfq + 1 // the batch this message answers
		s.mu.Lock()
		injecting := len(s.injects) > 0 && s.injects[0] == rfq+1
		s.mu.Unlock()
		switch typ {
		case '1', '2': // ParseComplete, BindComplete
			if injecting {
				held = append(held, append([]byte(nil), msg...))
				continue
			}
		case 'T':
			var rd pgproto3.RowDescription
			if err := rd.Decode(msg[5:]); err != nil {
				return err
			}
			head := s.head()
			switch head.op {
			case 'S':
				stmtFields[head.name] = append([]pgproto3.FieldDescription(nil), rd.Fields...)
				for i := range stmtFields[head.name] {
					stmtFields[head.name][i].Name = append([]byte(nil), rd.Fields[i].Name...)
				}
				s.pop()
			case 'P':
				if portalCols[head.name], err = s.columns(rd.Fields, nil); err != nil {
					return err
				}
				s.pop()
			default:
				if cols, err = s.columns(rd.Fields, nil); err != nil {
					return err
				}
			}
		case 'n': // NoData answers a Describe
			if head := s.head(); head.op == 'S' || head.op == 'P' {
				delete(stmtFields, head.name)
				portalCols[head.name] = nil
				s.pop()
			}
		case 'D':
			masked := 0
			rowCols := cols
			if head := s.head(); head.op == 'E' {
				if execCols == nil {
					if head.bind.described {
						execCols = portalCols[head.name]
					} else if f, ok := stmtFields[head.bind.stmt]; ok {
						if execCols, err = s.columns(f, head.bind.formats); err != nil {
							return err
						}
					}
				}
				rowCols = execCols
			}
			if rowCols == nil {
				// Rows nobody described cannot be masked: end the session.
				return errors.New("DataRow without a row description; refusing to pass it unmasked")
			}
			out, masked, err = maskRow(s.srv.pipe, target, msg, rowCols)
			if err != nil {
				return err
			}
			s.mu.Lock()
			if len(s.inflight) > 0 && s.inflight[0].batch == rfq+1 {
				s.inflight[0].rows++
				s.inflight[0].bytes += len(out)
				s.inflight[0].mask += masked
			}
			s.mu.Unlock()
		case 'd': // CopyData of a COPY TO: the detectors apply
			data := msg[5:]
			if masked := s.srv.pipe.MaskText(string(data)); masked != string(data) {
				out, _ = (&pgproto3.CopyData{Data: []byte(masked)}).Encode(nil)
			}
		case 'C', 'I', 's': // CommandComplete, EmptyQueryResponse, PortalSuspended
			s.finish(rfq+1, nil)
			if s.head().op == 'E' {
				s.pop()
				execCols = nil
			} else {
				cols = nil
			}
		case 'E':
			var e pgproto3.ErrorResponse
			if err := e.Decode(msg[5:]); err != nil {
				return err
			}
			ours := e.Hint == refusalHint
			if ours && injecting && len(held) > 0 {
				n := len(held) - 2
				if n < 0 {
					n = 0
				}
				held = held[:n]
			}
			if ours {
				e.Hint, e.Where, e.File, e.Line, e.Routine = "", "", "", 0, ""
			} else {
				s.finish(rfq+1, errors.New(e.Code+": "+s.srv.pipe.MaskText(e.Message)))
				e.Message = s.srv.pipe.MaskText(e.Message)
				e.Detail = s.srv.pipe.MaskText(e.Detail)
				e.Hint = s.srv.pipe.MaskText(e.Hint)
				e.Where = s.srv.pipe.MaskText(e.Where)
				e.InternalQuery = s.srv.pipe.MaskText(e.InternalQuery)
			}
			if out, err = e.Encode(nil); err != nil {
				return err
			}
			cols, execCols = nil, nil
			s.popUntilSync()
		case 'Z':
			rfq++
			s.popThroughSync()
			cols, execCols = nil, nil
			s.mu.Lock()
			i := 0
			for i < len(s.inflight) && s.inflight[i].batch <= rfq {
				i++ // statements a failed batch skipped never ran
			}
			s.inflight = s.inflight[i:]
			if len(s.injects) > 0 && s.injects[0] == rfq {
				s.injects = s.injects[1:]
			}
			s.mu.Unlock()
		}
		if !s.wait(batch) {
			return errEOF
		}
		s.wmu.Lock()
		for _, h := range held {
			if _, err := s.cW.Write(h); err != nil {
				s.wmu.Unlock()
				return err
			}
		}
		held = held[:0]
		_, err = s.cW.Write(out)
		if err == nil && r.Buffered() == 0 {
			err = s.cW.Flush()
		}
		s.wmu.Unlock()
		if err != nil {
			return err
		}
	}
}

// finish reports the head statement of batch as done.
func (s *session) finish(batch int, err error) {
	s.mu.Lock()
	if len(s.inflight) == 0 || s.inflight[0].batch != batch {
		s.mu.Unlock()
		return
	}
	f := s.inflight[0]
	s.inflight = s.inflight[1:]
	s.mu.Unlock()
	s.done <- broker.StatementOutcome{ID: f.id, Caller: s.caller, Door: Door, Target: s.srv.cfg.Target, Session: s.id,
		Rows: f.rows, Bytes: f.bytes, Duration: time.Since(f.start), Masked: f.mask, Err: err}
}

// head is the oldest expectation, zero when none.
func (s *session) head() expectation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.expect) == 0 {
		return expectation{}
	}
	return s.expect[0]
}

func (s *session) pop() {
	s.mu.Lock()
	if len(s.expect) > 0 {
		s.expect = s.expect[1:]
	}
	s.mu.Unlock()
}

// popUntilSync drops the extended-protocol messages an error made the
// server skip (up to, not including, the Sync).
func (s *session) popUntilSync() {
	s.mu.Lock()
	for len(s.expect) > 0 && s.expect[0].op != 'Y' && s.expect[0].op != 'Q' {
		s.expect = s.expect[1:]
	}
	s.mu.Unlock()
}

// popThroughSync drops everything up to and including the Sync or Query a
// ReadyForQuery answers.
func (s *session) popThroughSync() {
	s.mu.Lock()
	for len(s.expect) > 0 {
		op := s.expect[0].op
		s.expect = s.expect[1:]
		if op == 'Y' || op == 'Q' {
			break
		}
	}
	s.mu.Unlock()
}

// columns resolves a row description's columns to masking keys. formats
// are a Bind's result format codes (nil: as described).
func (s *session) columns(fields []pgproto3.FieldDescription, formats []int16) ([]column, error) {
	cols := make([]column, len(fields))
	for i, f := range fields {
		switch {
		case len(formats) == 1:
			f.Format = formats[0]
		case len(formats) > i:
			f.Format = formats[i]
		}
		c := column{textual: f.Format == 0 || textTypes[f.DataTypeOID]}
		if f.TableOID != 0 && f.TableAttributeNumber > 0 {
			key, err := s.srv.catalog.column(context.Background(), f.TableOID, f.TableAttributeNumber)
			if err != nil {
				// Unknown table: fail closed, the column is masked whole.
				c.ruled, c.key = true, ""
				s.log().Warn("column could not be resolved; its cells are withheld")
			} else {
				c.key = key
				_, c.ruled = s.srv.pipe.MaskCell(s.srv.cfg.Target, key, nil)
			}
		}
		cols[i] = c
	}
	return cols, nil
}

// maskRow masks one DataRow; it returns the message (re-encoded when a cell
// changed) and the number of cells masked.
func maskRow(p Pipeline, target string, msg []byte, cols []column) ([]byte, int, error) {
	var dr pgproto3.DataRow
	if err := dr.Decode(msg[5:]); err != nil {
		return nil, 0, err
	}
	if len(dr.Values) != len(cols) {
		return nil, 0, fmt.Errorf("DataRow has %d values for %d columns", len(dr.Values), len(cols))
	}
	n := 0
	for i, v := range dr.Values {
		if v == nil {
			continue
		}
		c := cols[i]
		switch {
		case c.textual && (c.key != "" || !c.ruled):
			if nv, changed := p.MaskCell(target, c.key, v); changed {
				dr.Values[i] = nv
				n++
			}
		case c.ruled:
			dr.Values[i] = nil
			n++
		}
	}
	if n == 0 {
		return msg, 0, nil
	}
	out, err := dr.Encode(nil)
	return out, n, err
}

// catalog resolves table OIDs to names over its own connection to the
// target, and caches them.
type catalog struct {
	up     *pgconn.Config
	mu     sync.Mutex
	conn   *pgconn.PgConn
	tables map[uint32]*tableInfo
}

type tableInfo struct {
	name string
	cols map[uint16]string
}

const catalogSQL = `SELECT n.nspname, c.relname, a.attnum::text, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.oid = $1::oid`

// column returns "table.column" ("schema.table.column" outside public).
func (c *catalog) column(ctx context.Context, oid uint32, att uint16) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tables[oid]
	if t == nil || t.cols[att] == "" {
		var err error
		if t, err = c.load(ctx, oid); err != nil {
			return "", err
		}
	}
	col, ok := t.cols[att]
	if !ok {
		return "", fmt.Errorf("table %d has no column %d", oid, att)
	}
	return t.name + "." + col, nil
}

// tableColumns returns the masking keys of every column of a table, named
// as a statement named it.
func (c *catalog) tableColumns(ctx context.Context, name string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := c.conn.ExecParams(ctx, "SELECT $1::regclass::oid::text", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		return nil, fmt.Errorf("table %s not found", name)
	}
	oid, err := strconv.ParseUint(string(res.Rows[0][0]), 10, 32)
	if err != nil {
		return nil, err
	}
	t, err := c.load(ctx, uint32(oid))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(t.cols))
	for _, col := range t.cols {
		keys = append(keys, t.name+"."+col)
	}
	return keys, nil
}

// connect opens the catalog connection; c.mu is held.
func (c *catalog) connect(ctx context.Context) error {
	if c.conn != nil && !c.conn.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, c.up)
	if err != nil {
		return err
	}
	c.conn = conn
	return nil
}

// load reads one table's name and columns; c.mu is held.
func (c *catalog) load(ctx context.Context, oid uint32) (*tableInfo, error) {
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := c.conn.ExecParams(ctx, catalogSQL, [][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	t := &tableInfo{cols: map[uint16]string{}}
	for _, row := range res.Rows {
		schema, rel := string(row[0]), string(row[1])
		t.name = rel
		if schema != "public" {
			t.name = schema + "." + rel
		}
		n, err := strconv.Atoi(string(row[2]))
		if err != nil {
			continue
		}
		t.cols[uint16(n)] = string(row[3])
	}
	c.tables[oid] = t
	return t, nil
}

func (c *catalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.conn.Close(ctx)
		cancel()
		c.conn = nil
	}
}
