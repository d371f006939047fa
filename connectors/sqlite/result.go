package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is how a column's declared type says its values are written.
type kind int

const (
	kindPlain kind = iota
	kindBool
	kindNumeric
	kindDate
	kindTime
	kindJSON
)

// kindOf follows SQLite's affinity rules loosely: the declared type name
// says what the stored value means.
func kindOf(decl string) kind {
	d := strings.ToUpper(decl)
	switch {
	case strings.Contains(d, "BOOL"):
		return kindBool
	case strings.Contains(d, "NUMERIC"), strings.Contains(d, "DECIMAL"):
		return kindNumeric
	case d == "DATE":
		return kindDate
	case strings.Contains(d, "TIMESTAMP"), strings.Contains(d, "DATETIME"):
		return kindTime
	case strings.Contains(d, "JSON"):
		return kindJSON
	}
	return kindPlain
}

// resultWriter writes {"rows":[...],"row_count":n,"truncated":b} by hand,
// so each row's keys keep the SELECT column order.
type resultWriter struct {
	buf   bytes.Buffer
	keys  [][]byte
	kinds []kind
	rows  int
}

func newResultWriter(cols []*sql.ColumnType) *resultWriter {
	w := &resultWriter{keys: make([][]byte, len(cols)), kinds: make([]kind, len(cols))}
	for i, c := range cols {
		k, _ := json.Marshal(c.Name())
		w.keys[i] = append(k, ':')
		w.kinds[i] = kindOf(c.DatabaseTypeName())
	}
	w.buf.WriteString(`{"rows":[`)
	return w
}

func (w *resultWriter) writeRow(vals []any) {
	if w.rows > 0 {
		w.buf.WriteByte(',')
	}
	w.rows++
	w.buf.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.buf.Write(w.keys[i])
		writeValue(&w.buf, w.kinds[i], v)
	}
	w.buf.WriteByte('}')
}

func (w *resultWriter) finish(count int, truncated bool) json.RawMessage {
	w.buf.WriteString(`],"row_count":`)
	w.buf.WriteString(strconv.Itoa(count))
	w.buf.WriteString(`,"truncated":`)
	w.buf.WriteString(strconv.FormatBool(truncated))
	w.buf.WriteByte('}')
	return w.buf.Bytes()
}

// timeLayouts are the text forms SQLite's date functions and common
// applications store timestamps in.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

func writeValue(buf *bytes.Buffer, k kind, v any) {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case int64:
		switch k {
		case kindBool:
			buf.WriteString(strconv.FormatBool(x != 0))
		case kindNumeric:
			writeString(buf, strconv.FormatInt(x, 10))
		default:
			buf.WriteString(strconv.FormatInt(x, 10))
		}
	case float64:
		switch {
		case math.IsNaN(x):
			buf.WriteString(`"NaN"`)
		case math.IsInf(x, 1):
			buf.WriteString(`"Infinity"`)
		case math.IsInf(x, -1):
			buf.WriteString(`"-Infinity"`)
		case k == kindNumeric:
			writeString(buf, strconv.FormatFloat(x, 'f', -1, 64))
		default:
			buf.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case time.Time:
		if k == kindDate {
			writeString(buf, x.Format("2006-01-02"))
		} else {
			writeString(buf, x.Format(time.RFC3339Nano))
		}
	case []byte:
		if k == kindJSON && json.Valid(x) {
			buf.Write(x)
			return
		}
		writeString(buf, base64.StdEncoding.EncodeToString(x))
	case string:
		switch k {
		case kindJSON:
			if json.Valid([]byte(x)) {
				buf.WriteString(x)
				return
			}
		case kindDate, kindTime:
			for _, layout := range timeLayouts {
				if t, err := time.Parse(layout, x); err == nil {
					writeValue(buf, k, t.UTC())
					return
				}
			}
		}
		writeString(buf, x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			writeString(buf, "")
			return
		}
		buf.Write(b)
	}
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}
