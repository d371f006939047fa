package pgwire

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// checkRow, which passes an untouched result's rows without decoding them,
// accepts exactly the DataRows pgproto3 decodes with the expected number
// of values, and reports a value over the limit with its size.
func TestCheckRowAgreesWithDecode(t *testing.T) {
	rows := [][]byte{
		rowBody(nil), rowBody([]byte("1"), nil, []byte("abc")), rowBody([]byte{}, []byte("x")),
		{0, 1, 0xff, 0xff, 0xff, 0xff}, // one NULL
		{0, 1, 0, 0, 0, 9, 'a'},        // length past the end
		{0, 1, 0xff, 0xff, 0xff, 0xfe}, // negative length
		{0, 2, 0, 0, 0, 1, 'a'},        // a value missing
		{0},                            // no count
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := rowBody([]byte("12"), nil, []byte("hello"))
		for range 1 + r.IntN(3) {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		rows = append(rows, b[:r.IntN(len(b)+1)])
	}
	for _, body := range rows {
		var dr pgproto3.DataRow
		derr := dr.Decode(body)
		for cols := 0; cols <= 3; cols++ {
			want := derr == nil && len(dr.Values) == cols
			_, err := checkRow(body, cols, 1<<20)
			if (err == nil) != want {
				t.Fatalf("checkRow(%x, %d cols) = %v; Decode: %v with %d values", body, cols, err, derr, len(dr.Values))
			}
		}
	}
	if n, err := checkRow(rowBody([]byte("1"), []byte("123456")), 2, 5); err == nil || n != 6 {
		t.Fatalf("a 6-byte value over a 5-byte limit: %d, %v", n, err)
	}
}

func rowBody(vals ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}
