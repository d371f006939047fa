package pgwire

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// converter turns the text form of a value, which the masker reads, into
// the binary form a client asked for, with pgx's type map; and back, for
// the binary cells of a BINARY cursor. It is not safe for concurrent use.
type converter struct {
	m *pgtype.Map
}

func newConverter() *converter { return &converter{m: pgtype.NewMap()} }

// sameTypes are the types whose binary format is their text.
var sameTypes = map[uint32]bool{
	pgtype.TextOID: true, pgtype.VarcharOID: true, pgtype.BPCharOID: true,
	pgtype.NameOID: true, pgtype.JSONOID: true, pgtype.UnknownOID: true,
}

// styledTypes are the types whose text form follows DateStyle and
// IntervalStyle; toolgate parses only ISO and postgres.
var styledTypes = map[uint32]bool{
	pgtype.DateOID: true, pgtype.TimeOID: true, pgtype.TimetzOID: true, pgtype.TimestampOID: true,
	pgtype.TimestamptzOID: true, pgtype.IntervalOID: true, pgtype.DateArrayOID: true,
	pgtype.TimestampArrayOID: true, pgtype.TimestamptzArrayOID: true, pgtype.IntervalArrayOID: true,
	pgtype.TimeArrayOID: true, pgtype.TimetzArrayOID: true, pgtype.DaterangeOID: true,
	pgtype.TsrangeOID: true, pgtype.TstzrangeOID: true,
}

// binaryTypes are the types toolgate converts between text and binary,
// each checked byte for byte against the server (TestConverterMatchesServer).
// Every other type asked for in binary is refused: composite types and
// records, ranges, json arrays, money, extension types.
var binaryTypes = map[uint32]bool{
	pgtype.Int2OID: true, pgtype.Int4OID: true, pgtype.Int8OID: true, pgtype.OIDOID: true, pgtype.BoolOID: true,
	pgtype.Float4OID: true, pgtype.Float8OID: true, pgtype.NumericOID: true, pgtype.DateOID: true, pgtype.TimeOID: true,
	pgtype.TimestampOID: true, pgtype.TimestamptzOID: true, pgtype.IntervalOID: true, pgtype.UUIDOID: true,
	pgtype.ByteaOID: true, pgtype.JSONBOID: true, pgtype.InetOID: true, pgtype.CIDROID: true, pgtype.MacaddrOID: true,
	pgtype.QCharOID: true, pgtype.BitOID: true, pgtype.VarbitOID: true,
	pgtype.Int2ArrayOID: true, pgtype.Int4ArrayOID: true, pgtype.Int8ArrayOID: true, pgtype.OIDArrayOID: true,
	pgtype.BoolArrayOID: true, pgtype.Float4ArrayOID: true, pgtype.Float8ArrayOID: true, pgtype.TextArrayOID: true,
	pgtype.VarcharArrayOID: true, pgtype.BPCharArrayOID: true, pgtype.NameArrayOID: true, pgtype.UUIDArrayOID: true,
	pgtype.ByteaArrayOID: true,
}

// supports reports whether values of oid can be converted both ways.
func (c *converter) supports(oid uint32) bool {
	return sameTypes[oid] || binaryTypes[oid]
}

// explain says why the columns asked for in binary cannot all be served;
// "" when they can. param reads the session's reported parameters.
func (c *converter) explain(fields []pgproto3.FieldDescription, formats []int16, param func(string) string) string {
	for i, f := range fields {
		if formatAt(formats, i) == pgtype.TextFormatCode {
			continue
		}
		if !c.supports(f.DataTypeOID) {
			return fmt.Sprintf("result column %q (type OID %d) cannot be sent in binary format through toolgate, which must read every value as text to mask it; ask for text format (result format code 0) for it",
				f.Name, f.DataTypeOID)
		}
		ds, is := param("DateStyle"), param("IntervalStyle")
		if styledTypes[f.DataTypeOID] && (!strings.HasPrefix(ds, "ISO") || is != "postgres") {
			return fmt.Sprintf("result column %q cannot be sent in binary format while the session's DateStyle is %q and IntervalStyle %q (toolgate converts from ISO and postgres); ask for text format",
				f.Name, ds, is)
		}
	}
	return ""
}

// formatAt is the format code of column i under Bind's rules: none means
// text, one applies to every column.
func formatAt(formats []int16, i int) int16 {
	switch {
	case len(formats) == 0:
		return pgtype.TextFormatCode
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return pgtype.TextFormatCode
}

// toBinary converts a text value of type oid to its binary form.
func (c *converter) toBinary(oid uint32, text []byte) ([]byte, error) {
	switch {
	case sameTypes[oid]:
		return text, nil
	case !binaryTypes[oid]:
		return nil, fmt.Errorf("type OID %d is not converted", oid)
	case oid == pgtype.JSONBOID:
		return append([]byte{1}, text...), nil // version 1, then the server's own text
	}
	if b, ok := fastBinary(oid, text); ok {
		return b, nil
	}
	v, err := c.decode(oid, pgtype.TextFormatCode, text)
	if err != nil {
		return nil, err
	}
	b, err := c.m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		return nil, err
	}
	switch oid {
	case pgtype.NumericOID:
		b = stripNumeric(b)
	case pgtype.CIDROID:
		b[2] = 1 // is_cidr; pgx encodes every network as inet
	}
	return b, nil
}

// decode reads a value into a Go value the map encodes back unchanged:
// pgx's own structs where its default Go value loses something (infinite
// dates, array dimensions).
func (c *converter) decode(oid uint32, format int16, src []byte) (any, error) {
	var dst any
	switch oid {
	case pgtype.DateOID:
		dst = &pgtype.Date{}
	case pgtype.TimestampOID:
		dst = &pgtype.Timestamp{}
	case pgtype.TimestamptzOID:
		dst = &pgtype.Timestamptz{}
	case pgtype.NumericOID:
		dst = &pgtype.Numeric{}
	default:
		t, _ := c.m.TypeForOID(oid)
		if _, isArray := t.Codec.(*pgtype.ArrayCodec); isArray {
			dst = &pgtype.Array[any]{}
		} else {
			return t.Codec.DecodeValue(c.m, oid, format, src)
		}
	}
	if err := c.m.Scan(oid, format, src, dst); err != nil {
		return nil, err
	}
	return reflect.ValueOf(dst).Elem().Interface(), nil
}

// toText converts a binary value of type oid to text.
func (c *converter) toText(oid uint32, bin []byte) ([]byte, error) {
	switch {
	case sameTypes[oid]:
		return bin, nil
	case !binaryTypes[oid]:
		return nil, fmt.Errorf("type OID %d is not converted", oid)
	case oid == pgtype.JSONBOID:
		if len(bin) == 0 || bin[0] != 1 {
			return nil, fmt.Errorf("unknown jsonb version")
		}
		return bin[1:], nil
	}
	v, err := c.decode(oid, pgtype.BinaryFormatCode, bin)
	if err != nil {
		return nil, err
	}
	return c.m.Encode(oid, pgtype.TextFormatCode, v, nil)
}

// stripNumeric drops the leading and trailing zero digit groups pgx may
// write, as the server's numeric_send never does.
func stripNumeric(b []byte) []byte {
	if len(b) < 8 {
		return b
	}
	n := int(binary.BigEndian.Uint16(b[0:2]))
	weight := int16(binary.BigEndian.Uint16(b[2:4]))
	digits := b[8:]
	if len(digits) != 2*n {
		return b
	}
	for n > 0 && digits[0] == 0 && digits[1] == 0 {
		digits, n, weight = digits[2:], n-1, weight-1
	}
	for n > 0 && digits[2*n-2] == 0 && digits[2*n-1] == 0 {
		n--
	}
	if n == 0 {
		weight = 0
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(n))
	out = binary.BigEndian.AppendUint16(out, uint16(weight))
	out = append(out, b[4:8]...)
	return append(out, digits[:2*n]...)
}

// fastBinary converts the commonest scalar types without the type map.
func fastBinary(oid uint32, text []byte) ([]byte, bool) {
	s := string(text)
	switch oid {
	case pgtype.Int2OID:
		n, err := strconv.ParseInt(s, 10, 16)
		return binary.BigEndian.AppendUint16(nil, uint16(n)), err == nil
	case pgtype.Int4OID:
		n, err := strconv.ParseInt(s, 10, 32)
		return binary.BigEndian.AppendUint32(nil, uint32(n)), err == nil
	case pgtype.Int8OID:
		n, err := strconv.ParseInt(s, 10, 64)
		return binary.BigEndian.AppendUint64(nil, uint64(n)), err == nil
	case pgtype.OIDOID:
		n, err := strconv.ParseUint(s, 10, 32)
		return binary.BigEndian.AppendUint32(nil, uint32(n)), err == nil
	case pgtype.BoolOID:
		switch s {
		case "t":
			return []byte{1}, true
		case "f":
			return []byte{0}, true
		}
	case pgtype.Float8OID:
		if f, ok := parseFloat(s, 64); ok {
			return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)), true
		}
	}
	return nil, false
}

// parseFloat reads PostgreSQL's float text, Infinity and NaN included.
func parseFloat(s string, bits int) (float64, bool) {
	switch s {
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	case "NaN":
		return math.Float64frombits(0x7ff8000000000000), true // the server's NaN
	}
	f, err := strconv.ParseFloat(s, bits)
	return f, err == nil
}
