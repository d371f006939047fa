package pgwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// column is how one result column is masked and sent.
//
// The masker reads text only. Toolgate asks the server for every column of
// an Execute in text (it rewrites Bind's result formats), masks the text,
// and converts the masked text to binary for the columns the client asked
// for in binary (convert.go); bind refused the request beforehand when the
// type cannot be converted. The only binary cells the server still sends
// are a simple query's FETCH from a BINARY cursor: they are converted to
// text for the masker and back.
type column struct {
	// key is "table.column" for a table column, "" for an expression.
	key string
	// withheld is set when the column's table could not be resolved:
	// every cell is withheld.
	withheld bool
	// mask masks a cell's text: the column's rule or the detectors,
	// resolved once per result; nil when no cell can change.
	mask func([]byte) ([]byte, bool)
	oid  uint32
	// up is the format the server sends, out the one the client asked for.
	up, out int16
}

// columns resolves a row description's columns to masking keys and their
// masking, once per result. formats are the client's result formats of a
// Bind (nil: as described, for a simple query).
func (s *session) columns(fields []pgproto3.FieldDescription, formats []int16) ([]column, error) {
	cols := make([]column, len(fields))
	for i, f := range fields {
		c := column{oid: f.DataTypeOID, up: f.Format, out: f.Format}
		if formats != nil {
			c.out = formatAt(formats, i)
		}
		if f.TableOID != 0 && f.TableAttributeNumber > 0 {
			keys, err := s.srv.catalog.column(context.Background(), f.TableOID, f.TableAttributeNumber)
			if err != nil {
				// Unknown table: fail closed, the column is withheld.
				c.withheld = true
				s.log().Warn("column could not be resolved; its cells are withheld")
			} else {
				c.key = s.ruledKey(keys)
			}
		}
		if !c.withheld {
			c.mask = s.srv.pipe.MaskColumn(s.srv.cfg.Target, c.key, shortInteger(c.oid))
		}
		cols[i] = c
	}
	return cols, nil
}

// ruledKey picks the first of a column's keys (its own, its parent
// tables', a view's sources) that a mask rule names; the column's own key
// when none does.
func (s *session) ruledKey(keys []string) string {
	for _, k := range keys {
		if _, ruled := s.srv.pipe.MaskCell(s.srv.cfg.Target, k, nil); ruled {
			return k
		}
	}
	return keys[0]
}

// shortInteger reports whether every value of a type is an optionally
// signed integer of at most 10 digits, or t or f, in text: no detector
// can match one (broker.ColumnMasker).
func shortInteger(oid uint32) bool {
	switch oid {
	case pgtype.BoolOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.OIDOID:
		return true
	}
	return false
}

// untouched reports whether a result's rows pass as the server sent
// them: no cell can be masked, withheld or converted.
func untouched(cols []column) bool {
	for _, c := range cols {
		if c.withheld || c.mask != nil || c.up != c.out {
			return false
		}
	}
	return true
}

// maskRow masks one DataRow; it returns the message (re-encoded into
// res.out when a cell changed) and the number of cells masked. The rows
// of an untouched result are checked, not decoded.
func (s *session) maskRow(res *result, msg []byte) ([]byte, int, error) {
	if res.untouched {
		if n, err := checkRow(msg[5:], len(res.cols), s.srv.cfg.MaxCellBytes); err != nil {
			if n > 0 {
				return nil, 0, s.resultTooLarge('D', n, s.srv.cfg.MaxCellBytes, "max_cell_bytes")
			}
			return nil, 0, err
		}
		return msg, 0, nil
	}
	dr, cols := &res.row, res.cols
	if err := dr.Decode(msg[5:]); err != nil {
		return nil, 0, err
	}
	if len(dr.Values) != len(cols) {
		return nil, 0, fmt.Errorf("DataRow has %d values for %d columns", len(dr.Values), len(cols))
	}
	n, changed := 0, false
	for i, v := range dr.Values {
		if v == nil {
			continue
		}
		if len(v) > s.srv.cfg.MaxCellBytes {
			return nil, 0, s.resultTooLarge('D', len(v), s.srv.cfg.MaxCellBytes, "max_cell_bytes")
		}
		nv, masked := s.maskCell(cols[i], v)
		if masked {
			n++
		}
		if nv == nil || !bytes.Equal(nv, v) {
			dr.Values[i] = nv
			changed = true
		}
	}
	if !changed {
		return msg, 0, nil
	}
	out, err := dr.Encode(res.out[:0])
	res.out = shrink(out)
	return out, n, err
}

// errTooLargeCell is checkRow's error for a value over the limit.
var errTooLargeCell = errors.New("a DataRow value exceeds max_cell_bytes")

// checkRow checks a DataRow body that passes untouched as pgproto3's
// DataRow.Decode would read it: as many values as columns, each within
// the message. A value over max is reported with its size.
func checkRow(body []byte, cols, max int) (int, error) {
	if len(body) < 2 {
		return 0, errors.New("DataRow too short")
	}
	if n := int(binary.BigEndian.Uint16(body)); n != cols {
		return 0, fmt.Errorf("DataRow has %d values for %d columns", n, cols)
	}
	rp := 2
	for range cols {
		if len(body)-rp < 4 {
			return 0, errors.New("DataRow too short")
		}
		n := int(int32(binary.BigEndian.Uint32(body[rp:])))
		rp += 4
		if n == -1 {
			continue
		}
		if n < 0 || len(body)-rp < n {
			return 0, errors.New("DataRow value length out of range")
		}
		if n > max {
			return n, errTooLargeCell
		}
		rp += n
	}
	return 0, nil
}

// maskCell masks one non-NULL cell and converts it to the client's format;
// nil is SQL NULL. A value the masker cannot read, and a masked value that
// no longer converts to its type's binary form, become NULL.
func (s *session) maskCell(c column, v []byte) ([]byte, bool) {
	if c.withheld {
		return nil, true
	}
	if c.mask == nil && c.up == c.out {
		return v, false
	}
	plain, ok := s.plainValue(c, v)
	if !ok {
		return nil, true
	}
	mv, masked := plain, false
	if c.mask != nil {
		mv, masked = c.mask(plain)
	}
	if !masked {
		if c.up == c.out {
			return v, false
		}
		mv = plain
	}
	if mv == nil {
		return nil, masked
	}
	out, ok := s.encodeValue(c, mv)
	if !ok {
		return nil, true
	}
	return out, masked
}

// plainValue is the form of a cell the masker reads: its text, and for
// bytea the bytes themselves (so convert_to(card_number, ...) is read as
// the digits it holds, not as their hex).
func (s *session) plainValue(c column, v []byte) ([]byte, bool) {
	switch {
	case c.oid == pgtype.ByteaOID && c.up == pgtype.BinaryFormatCode:
		return v, true
	case c.oid == pgtype.ByteaOID:
		if !bytes.HasPrefix(v, []byte(`\x`)) {
			return nil, false
		}
		raw := make([]byte, hex.DecodedLen(len(v)-2))
		_, err := hex.Decode(raw, v[2:])
		return raw, err == nil
	case c.up == pgtype.BinaryFormatCode:
		t, err := s.rowConverter().toText(c.oid, v)
		return t, err == nil
	}
	return v, true
}

// encodeValue turns a plain value into the format the client asked for.
func (s *session) encodeValue(c column, plain []byte) ([]byte, bool) {
	switch {
	case c.oid == pgtype.ByteaOID && c.out == pgtype.BinaryFormatCode:
		return plain, true
	case c.oid == pgtype.ByteaOID:
		return append([]byte(`\x`), hex.EncodeToString(plain)...), true
	case c.out == pgtype.TextFormatCode:
		return plain, true
	}
	b, err := s.rowConverter().toBinary(c.oid, plain)
	return b, err == nil
}

// rowConverter is the upstream relay's converter.
func (s *session) rowConverter() *converter {
	if s.rowConv == nil {
		s.rowConv = newConverter()
	}
	return s.rowConv
}
