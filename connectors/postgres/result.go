package postgres

import (
	"bytes"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// resultWriter writes {"rows":[...],"row_count":n,"truncated":b} by hand,
// so each row's keys keep the SELECT column order.
type resultWriter struct {
	buf    bytes.Buffer
	fields []pgconn.FieldDescription
	keys   [][]byte // pre-encoded `"name":`
	rows   int
}

func newResultWriter(fields []pgconn.FieldDescription) *resultWriter {
	w := &resultWriter{fields: fields, keys: make([][]byte, len(fields))}
	for i, f := range fields {
		k, _ := json.Marshal(f.Name)
		w.keys[i] = append(k, ':')
	}
	w.buf.WriteString(`{"rows":[`)
	return w
}

func (w *resultWriter) writeRow(rows pgx.Rows) error {
	vals, err := rows.Values()
	if err != nil {
		return err
	}
	raws := rows.RawValues()
	if w.rows > 0 {
		w.buf.WriteByte(',')
	}
	w.rows++
	w.buf.WriteByte('{')
	for i, f := range w.fields {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.buf.Write(w.keys[i])
		switch {
		case vals[i] == nil:
			w.buf.WriteString("null")
		case (f.DataTypeOID == pgtype.JSONOID || f.DataTypeOID == pgtype.JSONBOID) && f.Format == pgtype.TextFormatCode && json.Valid(raws[i]):
			// Embed the document as the server sent it, keys in order.
			w.buf.Write(raws[i])
		default:
			if err := writeValue(&w.buf, f.DataTypeOID, vals[i]); err != nil {
				return fmt.Errorf("column %s: %w", f.Name, err)
			}
		}
	}
	w.buf.WriteByte('}')
	return nil
}

// rowsArray returns the rows written so far as a JSON array.
func (w *resultWriter) rowsArray() json.RawMessage {
	rows := w.buf.Bytes()[len(`{"rows":`):]
	out := make([]byte, 0, len(rows)+1)
	return append(append(out, rows...), ']')
}

func (w *resultWriter) finish(count int, truncated bool) json.RawMessage {
	w.buf.WriteString(`],"row_count":`)
	w.buf.WriteString(strconv.Itoa(count))
	w.buf.WriteString(`,"truncated":`)
	w.buf.WriteString(strconv.FormatBool(truncated))
	w.buf.WriteByte('}')
	return w.buf.Bytes()
}

// writeValue writes one decoded value as JSON.
func writeValue(buf *bytes.Buffer, oid uint32, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case int16:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int32:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case uint32:
		buf.WriteString(strconv.FormatUint(uint64(x), 10))
	case float32:
		writeFloat(buf, float64(x), 32)
	case float64:
		writeFloat(buf, x, 64)
	case string:
		writeString(buf, x)
	case []byte:
		writeString(buf, base64.StdEncoding.EncodeToString(x))
	case time.Time:
		if oid == pgtype.DateOID {
			writeString(buf, x.Format("2006-01-02"))
		} else {
			writeString(buf, x.Format(time.RFC3339Nano))
		}
	case [16]byte: // uuid
		writeString(buf, fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16]))
	case netip.Prefix:
		writeString(buf, x.String())
	case netip.Addr:
		writeString(buf, x.String())
	case pgtype.Numeric:
		// Numeric is written as a string: exact, whatever its precision.
		s, err := x.Value()
		if err != nil {
			return err
		}
		if s == nil {
			buf.WriteString("null")
			return nil
		}
		writeString(buf, fmt.Sprint(s))
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeValue(buf, elemOID(oid), e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		buf.Write(b)
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return err
		}
		if _, again := dv.(driver.Valuer); again {
			writeString(buf, fmt.Sprint(dv))
			return nil
		}
		return writeValue(buf, oid, dv)
	case fmt.Stringer:
		writeString(buf, x.String())
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("unsupported type %T", v)
		}
		buf.Write(b)
	}
	return nil
}

// elemOID maps an array type to its element type where the element type
// changes how values are written (dates).
func elemOID(oid uint32) uint32 {
	if oid == pgtype.DateArrayOID {
		return pgtype.DateOID
	}
	return oid
}

func writeFloat(buf *bytes.Buffer, f float64, bits int) {
	switch {
	case math.IsNaN(f):
		buf.WriteString(`"NaN"`)
	case math.IsInf(f, 1):
		buf.WriteString(`"Infinity"`)
	case math.IsInf(f, -1):
		buf.WriteString(`"-Infinity"`)
	default:
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	}
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}
